package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// testLog is a log written directly with Tessera, bypassing every check
// of the server, and served over HTTP as a mirror would serve it: the
// tlog-tiles files of its folder, and disclosure bundles from a map the
// test controls.
type testLog struct {
	t        *testing.T
	origin   string
	dir      string
	signer   note.Signer
	key      string // verifier key
	orgKey   ed25519.PrivateKey
	records  [][]byte
	minute   int64
	mu       sync.Mutex
	disc     map[uint64]*pb.Disclosure
	override []byte // a checkpoint served instead of the file's
	noDisc   bool   // serve no disclosure bundles, as a plain mirror
	// foreign are the indexes served as foreign marks; noForeign serves
	// none, as a plain mirror; foreignBody, when set, is served as the
	// foreign marks of every bundle.
	foreign     map[uint64]bool
	noForeign   bool
	foreignBody func(w http.ResponseWriter, r *http.Request)
	srv         *httptest.Server
}

func newTestLog(t *testing.T) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "tampered.test/log")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := &testLog{t: t, origin: "tampered.test/log", dir: logDir(t), signer: s, key: vkey, orgKey: org, disc: map[uint64]*pb.Disclosure{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

// sibling returns a log in another folder signed with the same key.
func (l *testLog) sibling() *testLog {
	c := &testLog{t: l.t, origin: l.origin, dir: logDir(l.t), signer: l.signer, key: l.key, orgKey: l.orgKey, disc: map[uint64]*pb.Disclosure{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	l.t.Cleanup(c.srv.Close)
	return c
}

// logDir returns a folder for a test log's files. Tessera's POSIX driver
// may still be finishing a file when the appender has shut down, which
// made t.TempDir's removal fail now and then ("directory not empty"): the
// folder is removed again until it is gone, for up to ten seconds.
func logDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "audit-testlog-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for os.RemoveAll(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir
}

func (l *testLog) url() string { return l.srv.URL + "/log/" }

func (l *testLog) serve(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, "/log/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	override := l.override
	l.mu.Unlock()
	switch {
	case p == "checkpoint" && override != nil:
		w.Write(override)
		return
	case strings.HasPrefix(p, "disclosures/") && l.noDisc:
		http.NotFound(w, r)
		return
	case strings.HasPrefix(p, "disclosures/"):
		l.serveDisclosures(w, r, strings.TrimPrefix(p, "disclosures/"))
		return
	case strings.HasPrefix(p, "foreign/"):
		l.serveForeign(w, r, strings.TrimPrefix(p, "foreign/"))
		return
	}
	b, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(p)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

// bundleRange reads the indexes an entry bundle's name N (or N.p/W)
// covers, answering 400 when it is not one.
func bundleRange(w http.ResponseWriter, n string) (from, to uint64, ok bool) {
	idx, p, err := layout.ParseTileIndexPartial(n)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, 0, false
	}
	width := uint64(p)
	if width == 0 {
		width = layout.EntryBundleWidth
	}
	from = idx * layout.EntryBundleWidth
	return from, from + width, true
}

func (l *testLog) serveDisclosures(w http.ResponseWriter, r *http.Request, n string) {
	from, to, ok := bundleRange(w, n)
	if !ok {
		return
	}
	type jd struct {
		Index       uint64 `json:"index"`
		Salt        string `json:"salt"`
		Name        string `json:"name"`
		Affiliation string `json:"affiliation"`
		Country     string `json:"country"`
	}
	out := []jd{}
	l.mu.Lock()
	for i := from; i < to; i++ {
		if d := l.disc[i]; d != nil {
			out = append(out, jd{i, base64.StdEncoding.EncodeToString(d.GetSalt()), d.GetName(), d.GetAffiliation(), d.GetCountry()})
		}
	}
	l.mu.Unlock()
	json.NewEncoder(w).Encode(out)
}

func (l *testLog) serveForeign(w http.ResponseWriter, r *http.Request, n string) {
	l.mu.Lock()
	none, body := l.noForeign, l.foreignBody
	l.mu.Unlock()
	switch {
	case none:
		http.NotFound(w, r)
		return
	case body != nil:
		body(w, r)
		return
	}
	from, to, ok := bundleRange(w, n)
	if !ok {
		return
	}
	out := []uint64{}
	l.mu.Lock()
	for i := from; i < to; i++ {
		if l.foreign[i] {
			out = append(out, i)
		}
	}
	l.mu.Unlock()
	json.NewEncoder(w).Encode(out)
}

// add queues a record; write appends the queued ones.
func (l *testLog) add(r *pb.Record) uint64 {
	l.t.Helper()
	l.minute++
	r.Version, r.AcceptedAt = 1, 1_790_000_000+60*l.minute
	b, err := records.Encode(r)
	if err != nil {
		l.t.Fatal(err)
	}
	l.records = append(l.records, b)
	return uint64(len(l.records) - 1)
}

// write appends every record not yet in the folder and publishes a
// checkpoint of them all.
func (l *testLog) write() {
	l.t.Helper()
	ctx := context.Background()
	driver, err := posix.New(ctx, posix.Config{Path: l.dir})
	if err != nil {
		l.t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(l.signer).WithBatching(256, 10*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond)
	app, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		l.t.Fatal(err)
	}
	have, err := reader.IntegratedSize(ctx)
	if err != nil {
		have = 0
	}
	var futures []tessera.IndexFuture
	for _, r := range l.records[have:] {
		futures = append(futures, app.Add(ctx, tessera.NewEntry(r)))
	}
	for _, f := range futures {
		if _, err := f(); err != nil {
			l.t.Fatal(err)
		}
	}
	want := uint64(len(l.records))
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := reader.ReadCheckpoint(ctx)
		if err == nil {
			cp, _, _, err := log.ParseCheckpoint(raw, l.origin, mustVerifier(l.t, l.key))
			if err == nil && cp.Size == want {
				break
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no checkpoint of size %d was published", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := shutdown(ctx); err != nil {
		l.t.Fatal(err)
	}
}

func mustVerifier(t *testing.T, key string) note.Verifier {
	v, err := note.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// letter adds a letter signed by the organiser key.
func (l *testLog) letter(id string, policy pb.Policy) *pb.Letter {
	lt := client.NewLetter(l.origin, client.LetterDraft{ID: id, Title: "Title of " + id, Text: "The text of " + id + ".\n", Policy: policy}, l.orgKey)
	l.add(&pb.Record{Kind: &pb.Record_Letter{Letter: lt}})
	return lt
}

// endorse adds an endorsement and serves its disclosure if public.
func (l *testLog) endorse(lt *pb.Letter, s client.Signer) (uint64, *client.Endorsement) {
	if s.OrganiserKey == nil && lt.GetPolicy() == pb.Policy_POLICY_CURATED {
		s.OrganiserKey = l.orgKey
	}
	e := client.NewEndorsement(l.origin, lt, s)
	i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
	if e.Endorsement.GetVisibility() == pb.Visibility_VISIBILITY_PUBLIC {
		l.disc[i] = e.Disclosure
	}
	return i, e
}

func (l *testLog) leaf(i uint64) []byte { return rfc6962.DefaultHasher.HashLeaf(l.records[i]) }

// withdraw adds a withdrawal of target authorised by auth; sign, when set,
// fills in the authorisation from the statement.
func (l *testLog) withdraw(target uint64, auth func(w *pb.Withdrawal) *pb.Authorisation) uint64 {
	w := &pb.Withdrawal{TargetIndex: target, TargetLeafHash: l.leaf(target), Reason: pb.Reason_REASON_SIGNER_REQUEST}
	w.Authorisation = auth(w)
	return l.add(&pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: w}})
}

func (l *testLog) redact(target uint64, auth func(r *pb.Redaction) *pb.Authorisation) uint64 {
	r := &pb.Redaction{TargetIndex: target, TargetLeafHash: l.leaf(target), Reason: pb.Reason_REASON_SAFETY}
	r.Authorisation = auth(r)
	return l.add(&pb.Record{Kind: &pb.Record_Redaction{Redaction: r}})
}

func (l *testLog) status(lt *pb.Letter, st pb.Status, note string) uint64 {
	s := &pb.LetterStatus{LetterId: lt.GetId(), Status: st, Note: note}
	records.SignStatus(l.orgKey, l.origin, s)
	return l.add(&pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}})
}

// signCheckpoint signs a checkpoint of any tree with the log's key.
func (l *testLog) signCheckpoint(size uint64, root []byte) []byte {
	l.t.Helper()
	b, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal())}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

func organiserAuth(key ed25519.PrivateKey, origin string) func(w *pb.Withdrawal) *pb.Authorisation {
	return func(w *pb.Withdrawal) *pb.Authorisation {
		return &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignWithdrawal(key, origin, w)}}
	}
}

// letterFrom returns the letter of another log with the same id, as
// published in this one (the first record).
func (l *testLog) letterFrom(other *testLog) *pb.Letter {
	r, err := records.Decode(l.records[0])
	if err != nil {
		l.t.Fatal(err)
	}
	return r.GetLetter()
}
