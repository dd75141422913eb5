package letters

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// memory is a log in memory.
type memory struct {
	entries []*pb.Entry
	size    uint64 // the published size
}

func (m *memory) Checkpoint(context.Context) ([]byte, uint64, error) {
	return fmt.Appendf(nil, "memory\n%d\n", m.size), m.size, nil
}

func (m *memory) Entries(_ context.Context, start, end uint64, fn func([]*pb.Entry) error) error {
	for from := start; from < end; from += 7 {
		if err := fn(m.entries[from:min(from+7, end)]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memory) add(t *testing.T, r *pb.Record, d *pb.Disclosure, redacted bool) uint64 {
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	i := uint64(len(m.entries))
	m.entries = append(m.entries, &pb.Entry{Index: i, Record: b, Disclosure: d, Redacted: redacted})
	return i
}

// randomLog writes a log of letters and the records that change their
// rosters, as the rules allow them, and returns the letters' ids.
func randomLog(t *testing.T, rng *rand.Rand, n int) (*memory, []string) {
	m := &memory{}
	var ids []string
	type live struct {
		index  uint64
		letter string
	}
	var endorsements []live
	for len(m.entries) < n {
		switch k := rng.IntN(20); {
		case k == 0 || len(ids) == 0:
			id := fmt.Sprintf("letter-%d", len(ids))
			ids = append(ids, id)
			m.add(t, &pb.Record{AcceptedAt: int64(len(m.entries)), Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: id, Title: id}}}, nil, false)
		case k < 12 || len(endorsements) == 0:
			id := ids[rng.IntN(len(ids))]
			e := &pb.Endorsement{LetterId: id, Visibility: pb.Visibility_VISIBILITY_PUBLIC}
			var d *pb.Disclosure
			if rng.IntN(5) == 0 {
				e.Visibility = pb.Visibility_VISIBILITY_PRIVATE
			} else {
				d = &pb.Disclosure{Name: fmt.Sprintf("Signer %d", len(m.entries))}
			}
			if len(endorsements) > 0 && rng.IntN(8) == 0 {
				target := endorsements[rng.IntN(len(endorsements))]
				e.LetterId, e.Supersedes = target.letter, proto.Uint64(target.index)
			}
			// Now and then the store already knows of a redaction that
			// comes later in the log.
			redacted := d != nil && rng.IntN(30) == 0
			if redacted {
				d = nil
			}
			i := m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}}, d, redacted)
			endorsements = append(endorsements, live{i, e.GetLetterId()})
		case k < 15:
			target := endorsements[rng.IntN(len(endorsements))].index
			m.add(t, &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: target}}}, nil, false)
		case k < 18:
			target := endorsements[rng.IntN(len(endorsements))].index
			m.add(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: target}}}, nil, false)
		default:
			st := []pb.Status{pb.Status_STATUS_CLOSED, pb.Status_STATUS_DELIVERED}[rng.IntN(2)]
			m.add(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: ids[rng.IntN(len(ids))], Status: st}}}, nil, false)
		}
	}
	return m, ids
}

// recount counts a letter's endorsements from their state.
func recount(l *Letter) Counts {
	var c Counts
	for _, e := range l.All {
		switch {
		case e.Withdrawn:
			c.Withdrawn++
		case e.Replaced:
			c.Superseded++
		case e.Private:
			c.Private++
		case e.Redacted:
			c.Redacted++
		default:
			c.Public++
		}
	}
	return c
}

// state is what a view says of its letters.
func state(v *View) string {
	var s string
	v.Read(func(sn *Snapshot) {
		s = fmt.Sprint(sn.Size)
		for _, l := range sn.Letters {
			s += fmt.Sprintf("\n%s %v %v %d %d %q named %d", l.Letter.GetId(), l.Counts, l.Status, l.ClosedIndex, l.DeliveredIndex, l.Note, len(l.Named()))
		}
	})
	return s
}

// TestCountsKeptAsRecordsApply: a view brought up to a log in steps of
// every size keeps the same counts, statuses and rosters as a view built
// at once, and its kept counts are the recount of its endorsements.
func TestCountsKeptAsRecordsApply(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		m, _ := randomLog(t, rng, 300)
		ctx := context.Background()
		stepped := New()
		for m.size < uint64(len(m.entries)) {
			m.size = min(uint64(len(m.entries)), m.size+uint64(1+rng.IntN(40)))
			if err := stepped.Update(ctx, m); err != nil {
				t.Fatal(err)
			}
			whole := New()
			if err := whole.Update(ctx, m); err != nil {
				t.Fatal(err)
			}
			if a, b := state(stepped), state(whole); a != b {
				t.Fatalf("seed %d, size %d: the view brought up in steps says\n%s\nbuilt at once\n%s", seed, m.size, a, b)
			}
			stepped.Read(func(s *Snapshot) {
				for _, l := range s.Letters {
					if got, want := l.Counts, recount(l); got != want {
						t.Fatalf("seed %d, size %d, letter %s: kept counts %+v, recounted %+v", seed, m.size, l.Letter.GetId(), got, want)
					}
				}
			})
		}
	}
}

// TestLetterState: the status is the later of the close and the first
// delivery, with the latest note; a redaction drops the name; a private
// endorsement is never named.
func TestLetterState(t *testing.T) {
	m := &memory{}
	m.add(t, &pb.Record{Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "a"}}}, nil, false)
	pub := m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "a"}}}, &pb.Disclosure{Name: "Ales"}, false)
	m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "a", Visibility: pb.Visibility_VISIBILITY_PRIVATE}}},
		&pb.Disclosure{Name: "Hanna"}, false)
	delivered := m.add(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: "a", Status: pb.Status_STATUS_DELIVERED, Note: "first"}}}, nil, false)
	closed := m.add(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: "a", Status: pb.Status_STATUS_CLOSED}}}, nil, false)
	m.size = uint64(len(m.entries))
	v := New()
	ctx := context.Background()
	check := func(what string, status pb.Status, note string, c Counts, named ...string) {
		t.Helper()
		if err := v.Update(ctx, m); err != nil {
			t.Fatal(err)
		}
		v.Read(func(s *Snapshot) {
			l := s.Letter("a")
			if l.Status != status || l.Note != note || l.Counts != c || l.ClosedIndex != int64(closed) || l.DeliveredIndex != int64(delivered) {
				t.Errorf("%s: status %v, note %q, counts %+v, closed %d, delivered %d", what, l.Status, l.Note, l.Counts, l.ClosedIndex, l.DeliveredIndex)
			}
			var got []string
			for _, e := range l.Named() {
				got = append(got, e.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(named) {
				t.Errorf("%s: named %v, want %v", what, got, named)
			}
		})
	}
	check("closed after delivery", pb.Status_STATUS_CLOSED, "", Counts{Public: 1, Private: 1}, "Ales")
	m.add(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: "a", Status: pb.Status_STATUS_DELIVERED, Note: "again"}}}, nil, false)
	m.add(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: pub}}}, nil, false)
	m.size = uint64(len(m.entries))
	check("a second delivery, a redaction", pb.Status_STATUS_CLOSED, "again", Counts{Redacted: 1, Private: 1})
}
