package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
)

// liveLog is a real server on loopback listeners, with a client holding
// its organiser token.
type liveLog struct {
	c       *client.Client
	key     ed25519.PrivateKey
	httpURL string
	logDir  string
	letter  *pb.Letter
}

// startServer starts a server; tampered says the test alters its files.
func startServer(t *testing.T, tampered bool) *liveLog {
	t.Helper()
	s := servertest.Start(t, servertest.Options{Origin: "audit.test/undersigned", Tampered: tampered})
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &liveLog{c: s.Dial(t, s.Token), key: key, httpURL: s.HTTP, logDir: s.LogDir}
}

func (l *liveLog) publish(t *testing.T, id string) *pb.Letter {
	t.Helper()
	lt := client.NewLetter(l.c.Origin(), client.LetterDraft{ID: id, Title: "A letter", Text: "We ask for longer library hours.\n"}, l.key)
	if _, err := l.c.PublishLetter(context.Background(), lt, ""); err != nil {
		t.Fatal(err)
	}
	return lt
}

func (l *liveLog) endorse(t *testing.T, lt *pb.Letter, s client.Signer) *client.Result {
	t.Helper()
	if s.OrganiserKey == nil {
		s.OrganiserKey = l.key
	}
	r, err := l.c.Endorse(context.Background(), client.NewEndorsement(l.c.Origin(), lt, s), "")
	if err != nil {
		t.Fatalf("endorse %q: %v", s.Fields.Name, err)
	}
	return r
}

// countingSource counts the entries a source is asked for.
type countingSource struct {
	audit.Source
	mu     sync.Mutex
	ranges [][2]uint64
}

func (s *countingSource) Entries(ctx context.Context, start, end uint64, fn func([]audit.Entry) error) error {
	s.mu.Lock()
	s.ranges = append(s.ranges, [2]uint64{start, end})
	s.mu.Unlock()
	return s.Source.Entries(ctx, start, end, fn)
}

func (s *countingSource) take() [][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ranges
	s.ranges = nil
	return r
}

func newAuditor(t *testing.T, src audit.Source, key, dir string) *audit.Auditor {
	t.Helper()
	st, err := audit.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, err := audit.New(audit.Config{Source: src, VerifierKey: key, State: st})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustRun(t *testing.T, a *audit.Auditor) *audit.Report {
	t.Helper()
	rep, err := a.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("violation: %v", v)
	}
	return rep
}

// serverCounts returns the server's counts for a letter at a size.
func serverCounts(t *testing.T, c *client.Client, id string, size uint64) *pb.Counts {
	t.Helper()
	resp, err := c.API().GetRoster(context.Background(), &pb.GetRosterRequest{LetterId: id, TreeSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCounts()
}

// TestHonestLog audits an honest log with every kind of record over gRPC
// and over HTTP alone: both pass, agree with the server's counts, and a
// second audit after more writes asks only for the new entries.
func TestHonestLog(t *testing.T) {
	ctx := context.Background()
	l := startServer(t, false)
	lt := l.publish(t, "library-hours")
	var res []*client.Result
	names := []string{"Тацяна Уладзіміраўна", "Łapińska Hanna", "Müller Sören", "Natallia", "natallia", "Ivan Petrov"}
	for _, n := range names {
		res = append(res, l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: n, Affiliation: "Library friends"}}))
	}
	seed := make([]byte, 32)
	rand.Read(seed)
	signerKey := client.SignerKey(seed, l.c.Origin(), lt.GetId())
	signed := l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: "Zofia Straŭs"}, SignerKey: signerKey})
	l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: "Hidden Person"}, Visibility: pb.Visibility_VISIBILITY_PRIVATE})
	// A correction by the same signer key, a withdrawal and a redaction by
	// the organiser, the letter delivered, then one more endorsement.
	sup := signed.Verified.Index
	l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: "Zofia Strauss"}, SignerKey: signerKey, Supersedes: &sup})
	rc := res[2]
	if _, err := l.c.Withdraw(ctx, client.Action{TargetIndex: rc.Verified.Index, TargetLeafHash: rc.Verified.LeafHash, OrganiserKey: l.key}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.c.Redact(ctx, client.Action{TargetIndex: res[0].Verified.Index, TargetLeafHash: res[0].Verified.LeafHash, OrganiserKey: l.key, Reason: pb.Reason_REASON_SAFETY}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.c.SetLetterStatus(ctx, lt.GetId(), pb.Status_STATUS_DELIVERED, "handed over at the town hall", l.key); err != nil {
		t.Fatal(err)
	}
	l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: "Late Comer"}})

	grpcSrc := &countingSource{Source: audit.NewGRPCSource(l.c.API())}
	httpBase, err := audit.NewHTTPSource(l.httpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	httpSrc := &countingSource{Source: httpBase}
	for _, tc := range []struct {
		name string
		src  *countingSource
	}{{"grpc", grpcSrc}, {"http", httpSrc}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			a := newAuditor(t, tc.src, l.c.VerifierKey(), dir)
			rep := mustRun(t, a)
			size := rep.To
			if rep.From != 0 || size == 0 || rep.Fetched != size {
				t.Fatalf("first audit: from %d to %d, fetched %d", rep.From, rep.To, rep.Fetched)
			}
			if got := tc.src.take(); len(got) != 1 || got[0] != [2]uint64{0, size} {
				t.Errorf("first audit asked for %v, want [[0 %d]]", got, size)
			}
			if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].Message, "probable duplicate") {
				t.Errorf("warnings %v, want one probable duplicate (Natallia)", rep.Warnings)
			}
			if len(rep.Letters) != 1 || rep.Letters[0].AddedAfterDelivery < 1 || rep.Letters[0].Withdrawn != 1 ||
				rep.Letters[0].Redacted != 1 || rep.Letters[0].Corrected != 1 {
				t.Errorf("changes %+v", rep.Letters)
			}
			r, err := a.State().Roster(lt.GetId(), 0)
			if err != nil {
				t.Fatal(err)
			}
			want := serverCounts(t, l.c, lt.GetId(), size)
			got := r.Counts
			if got.Public != want.GetPublic() || got.Private != want.GetPrivate() || got.Redacted != want.GetRedacted() ||
				got.Withdrawn != want.GetWithdrawn() || got.Superseded != want.GetSuperseded() || got.Withheld != 0 {
				t.Errorf("audited counts %+v, the server's %v", got, want)
			}

			// More writes: the next audit asks only for them, and a reopened
			// state agrees.
			l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: "Another One " + tc.name}})
			rep = mustRun(t, a)
			if rep.From != size || rep.To <= size {
				t.Fatalf("second audit: from %d to %d", rep.From, rep.To)
			}
			if got := tc.src.take(); len(got) != 1 || got[0] != [2]uint64{size, rep.To} {
				t.Errorf("second audit asked for %v, want [[%d %d]]", got, size, rep.To)
			}
			st, err := audit.ReadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			r2, err := st.Roster(lt.GetId(), size)
			if err != nil {
				t.Fatal(err)
			}
			if r2.Counts != r.Counts || len(r2.Entries) != len(r.Entries) {
				t.Errorf("reopened state: %+v, want %+v", r2.Counts, r.Counts)
			}
		})
	}
}

// flipStored flips a byte near the end of entry index (in its signature)
// in the entry bundle a server stored in its log's folder.
func flipStored(t *testing.T, logDir string, index, size uint64) {
	t.Helper()
	n := index / layout.EntryBundleWidth
	path := filepath.Join(logDir, filepath.FromSlash(layout.EntriesPath(n, layout.PartialTileSize(0, n, size))))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := n * layout.EntryBundleWidth; ; i++ {
		l := int(binary.BigEndian.Uint16(b[off:]))
		if i == index {
			b[off+2+l-5] ^= 0x01
			break
		}
		off += 2 + l
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTamperedServerFiles flips a byte of an entry in the real server's
// data folder: a new audit over gRPC and one over HTTP both name it.
func TestTamperedServerFiles(t *testing.T) {
	l := startServer(t, true)
	lt := l.publish(t, "library-hours")
	var last *client.Result
	for _, n := range []string{"Łapińska Hanna", "Тацяна Уладзіміраўна", "Müller Sören"} {
		last = l.endorse(t, lt, client.Signer{Fields: records.Fields{Name: n}})
	}
	size := last.Verified.Checkpoint.Size
	flipStored(t, l.logDir, 2, size)
	httpSrc, err := audit.NewHTTPSource(l.httpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  audit.Source
	}{{"grpc", audit.NewGRPCSource(l.c.API())}, {"http", httpSrc}} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuditor(t, tc.src, l.c.VerifierKey(), t.TempDir())
			rep, err := a.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.Violations[0].Index != 2 || rep.Violations[0].Rule != audit.RuleTree || rep.Saved {
				t.Fatalf("violations %v (saved %v), want a tree violation at index 2 and no save", rep.Violations, rep.Saved)
			}
		})
	}
}
