package letters

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
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

// organiser is the key every test letter lists: the view follows the
// rules of a letter, under which only a listed key acts for it (it checks
// no signature: the audit does).
var organiser = &pb.Signature{PublicKey: make([]byte, 32)}

func byOrganiser() *pb.Authorisation {
	return &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: organiser}}
}

// randomLog writes a log of letters and the records that change their
// rosters, each as the rules of a letter allow it, and returns the
// letters' ids.
func randomLog(t *testing.T, rng *rand.Rand, n int) (*memory, []string) {
	m := &memory{}
	var ids []string
	closed := map[string]bool{}
	type live struct {
		index           uint64
		letter          string
		withdrawn, gone bool // gone: withdrawn or superseded
		redacted        bool
	}
	var endorsements []*live
	random := func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	leaf := func(i uint64) []byte { return rfc6962.DefaultHasher.HashLeaf(m.entries[i].GetRecord()) }
	pick := func(ok func(*live) bool) *live {
		for range min(20, len(endorsements)) {
			if e := endorsements[rng.IntN(len(endorsements))]; ok(e) {
				return e
			}
		}
		return nil
	}
	for len(m.entries) < n {
		k := rng.IntN(20)
		open := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return closed[id] })
		switch {
		case k == 0 || len(open) == 0:
			id := fmt.Sprintf("letter-%d", len(ids))
			ids = append(ids, id)
			m.add(t, &pb.Record{AcceptedAt: int64(len(m.entries)), Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: id, Title: id,
				OrganiserKeys: [][]byte{organiser.GetPublicKey()}}}}, nil, false)
		case k < 12 || len(endorsements) == 0:
			id := open[rng.IntN(len(open))]
			e := &pb.Endorsement{LetterId: id, Visibility: pb.Visibility_VISIBILITY_PUBLIC, Commitment: random(), WithdrawalLock: random(),
				Organiser: organiser}
			var d *pb.Disclosure
			if rng.IntN(5) == 0 {
				e.Visibility = pb.Visibility_VISIBILITY_PRIVATE
			} else {
				d = &pb.Disclosure{Name: fmt.Sprintf("Signer %d", len(m.entries))}
			}
			var target *live
			if rng.IntN(8) == 0 {
				target = pick(func(l *live) bool { return !l.gone && l.letter == id })
				if target != nil {
					e.Supersedes = proto.Uint64(target.index)
				}
			}
			// Now and then the store already knows of a redaction that
			// comes later in the log.
			redacted := d != nil && rng.IntN(30) == 0
			if redacted {
				d = nil
			}
			i := m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}}, d, redacted)
			if target != nil {
				target.gone = true
			}
			endorsements = append(endorsements, &live{index: i, letter: id, redacted: e.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE})
		case k < 15:
			if target := pick(func(l *live) bool { return !l.gone }); target != nil {
				m.add(t, &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: target.index, TargetLeafHash: leaf(target.index),
					Reason: pb.Reason_REASON_ORGANISER_ERROR, Authorisation: byOrganiser()}}}, nil, false)
				target.gone, target.withdrawn = true, true
			}
		case k < 18:
			if target := pick(func(l *live) bool { return !l.redacted }); target != nil {
				m.add(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: target.index, TargetLeafHash: leaf(target.index),
					Reason: pb.Reason_REASON_SAFETY, Authorisation: byOrganiser()}}}, nil, false)
				target.redacted = true
			}
		default:
			id := ids[rng.IntN(len(ids))]
			st := pb.Status_STATUS_DELIVERED
			if !closed[id] && rng.IntN(2) == 0 {
				st, closed[id] = pb.Status_STATUS_CLOSED, true
			}
			m.add(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: id, Status: st,
				Note: fmt.Sprint(len(m.entries)), Organiser: organiser}}}, nil, false)
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
		stepped := New(nil)
		for m.size < uint64(len(m.entries)) {
			m.size = min(uint64(len(m.entries)), m.size+uint64(1+rng.IntN(40)))
			if err := stepped.Update(ctx, m); err != nil {
				t.Fatal(err)
			}
			whole := New(nil)
			if err := whole.Update(ctx, m); err != nil {
				t.Fatal(err)
			}
			if a, b := state(stepped), state(whole); a != b {
				t.Fatalf("seed %d, size %d: the view brought up in steps says\n%s\nbuilt at once\n%s", seed, m.size, a, b)
			}
			if n := stepped.Broken(); n != 0 {
				t.Fatalf("seed %d: %d records of a log written by the rules break them", seed, n)
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
	m.add(t, &pb.Record{Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "a", OrganiserKeys: [][]byte{organiser.GetPublicKey()}}}}, nil, false)
	pub := m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "a", Commitment: []byte("c1"), WithdrawalLock: []byte("l1"),
		Visibility: pb.Visibility_VISIBILITY_PUBLIC, Organiser: organiser}}}, &pb.Disclosure{Name: "Ales"}, false)
	m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "a", Visibility: pb.Visibility_VISIBILITY_PRIVATE,
		Commitment: []byte("c2"), WithdrawalLock: []byte("l2"), Organiser: organiser}}}, &pb.Disclosure{Name: "Hanna"}, false)
	status := func(s pb.Status, note string) uint64 {
		return m.add(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: "a", Status: s, Note: note, Organiser: organiser}}}, nil, false)
	}
	delivered := status(pb.Status_STATUS_DELIVERED, "first")
	closed := status(pb.Status_STATUS_CLOSED, "")
	m.size = uint64(len(m.entries))
	v := New(nil)
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
	status(pb.Status_STATUS_DELIVERED, "again")
	m.add(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: pub, TargetLeafHash: rfc6962.DefaultHasher.HashLeaf(m.entries[pub].GetRecord()),
		Reason: pb.Reason_REASON_SAFETY, Authorisation: byOrganiser()}}}, nil, false)
	m.size = uint64(len(m.entries))
	check("a second delivery, a redaction", pb.Status_STATUS_CLOSED, "again", Counts{Redacted: 1, Private: 1})
}

// TestForeignSkipped: an entry the server marks as foreign (no server of
// the log admitted it: queued on Trillian directly) is not counted, names
// no one and takes its index, as the admission and the audit skip it; the
// record after it is followed at its own index.
func TestForeignSkipped(t *testing.T) {
	m := &memory{}
	m.add(t, &pb.Record{Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "a", OrganiserKeys: [][]byte{organiser.GetPublicKey()}}}}, nil, false)
	endorse := func(c, name string) uint64 {
		return m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "a", Commitment: []byte(c), WithdrawalLock: []byte("l" + c),
			Visibility: pb.Visibility_VISIBILITY_PUBLIC, Organiser: organiser}}}, &pb.Disclosure{Name: name}, false)
	}
	foreign := endorse("c1", "Intruder")
	m.entries[foreign].Foreign = true
	ales := endorse("c2", "Ales")
	m.add(t, &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: ales,
		TargetLeafHash: rfc6962.DefaultHasher.HashLeaf(m.entries[ales].GetRecord()), Authorisation: byOrganiser()}}}, nil, false)
	endorse("c3", "Hanna")
	m.size = uint64(len(m.entries))
	v := New(nil)
	if err := v.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if n := v.Broken(); n != 0 {
		t.Fatalf("%d records break the rules", n)
	}
	v.Read(func(s *Snapshot) {
		l := s.Letter("a")
		var named []string
		for _, e := range l.Named() {
			named = append(named, e.Name)
		}
		if l.Counts != (Counts{Public: 1, Withdrawn: 1}) || fmt.Sprint(named) != "[Hanna]" {
			t.Errorf("counts %+v, named %v: want one public (Hanna) and one withdrawn, the foreign entry not counted", l.Counts, named)
		}
	})
}
