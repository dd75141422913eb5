package witnesstest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Fault is how a [Fake] misbehaves.
type Fault int

// The faults of a [Fake].
const (
	// Honest: it follows the protocol.
	Honest Fault = iota
	// Loop: it answers every request with 409 Conflict and a size other
	// than the one sent (0 and 1 in turn), so that a client that follows
	// it never gets a cosignature.
	Loop
	// Slow: it waits for the delay set with [Fake.SetFault], then answers
	// honestly.
	Slow
	// Silent: it accepts requests and never answers, until the client
	// gives up or the fake is closed.
	Silent
	// WrongKey: it answers 200 with a cosignature by another key.
	WrongKey
	// Unavailable: it answers 503 Service Unavailable.
	Unavailable
)

// Fake is an in-process tlog-witness (C2SP tlog-witness v1.0.0) for one
// log, cosigning with an Ed25519 cosignature/v1 key. Honest, it keeps the
// latest checkpoint it cosigned and answers as the specification says: 404
// for another origin, 403 without a valid log signature, 400 for an old
// size above the checkpoint's, 409 with its size for another old size, 409
// for another root at its own size, 422 for a consistency proof that does
// not verify, and 200 with its cosignature line.
type Fake struct {
	// Name is its name in a policy.
	Name string
	// VerifierKey is its cosignature verifier key (type 0x04).
	VerifierKey string
	// URL is its submission prefix.
	URL string

	log    note.Verifier
	signer note.Signer
	other  note.Signer
	srv    *httptest.Server
	stop   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	size     uint64
	root     []byte
	fault    Fault
	delay    time.Duration
	requests int
	flip     bool
}

// NewFake starts a fake witness named name for the log of verifier key
// logKey; it stops when the test ends.
func NewFake(t testing.TB, name, logKey string) *Fake {
	t.Helper()
	v, err := note.NewVerifier(logKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{Name: name, log: v, stop: make(chan struct{}), root: rfc6962.DefaultHasher.EmptyRoot()}
	keyName := "witness.test/" + name
	f.signer, f.VerifierKey = cosigner(t, keyName)
	f.other, _ = cosigner(t, keyName)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.Close)
	return f
}

func cosigner(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, cv
}

// PolicyLine returns its "witness" line for a policy.
func (f *Fake) PolicyLine() string {
	return fmt.Sprintf("witness %s %s %s", f.Name, f.VerifierKey, f.URL)
}

// SetFault makes it misbehave from now on; delay is for [Slow].
func (f *Fake) SetFault(fault Fault, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault, f.delay = fault, delay
}

// Size returns the size of the latest checkpoint it cosigned.
func (f *Fake) Size() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Requests returns how many add-checkpoint requests it received.
func (f *Fake) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// Close stops it, releasing the requests it holds.
func (f *Fake) Close() {
	f.once.Do(func() {
		close(f.stop)
		f.srv.Close()
	})
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/add-checkpoint" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests++
	fault, delay := f.fault, f.delay
	f.mu.Unlock()
	switch fault {
	case Silent:
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	case Slow:
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	case Unavailable:
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	status, answer := f.addCheckpoint(body, fault)
	if status == http.StatusConflict && answer != "" {
		w.Header().Set("Content-Type", "text/x.tlog.size")
	}
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

// addCheckpoint does what a witness does with a request body.
func (f *Fake) addCheckpoint(body []byte, fault Fault) (int, string) {
	oldLine, rest, _ := bytes.Cut(body, []byte("\n"))
	old, err := strconv.ParseUint(strings.TrimPrefix(string(oldLine), "old "), 10, 64)
	if err != nil || !bytes.HasPrefix(oldLine, []byte("old ")) {
		return http.StatusBadRequest, "bad old size line\n"
	}
	var hashes [][]byte
	for {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(l) == 0 {
			break
		}
		h, err := base64.StdEncoding.DecodeString(string(l))
		if err != nil || len(h) != 32 || len(hashes) == 63 {
			return http.StatusBadRequest, "bad proof line\n"
		}
		hashes = append(hashes, h)
	}
	n, err := note.Open(rest, note.VerifierList(f.log))
	if err != nil {
		if _, ok := err.(*note.UnverifiedNoteError); ok {
			if strings.HasPrefix(string(rest), f.log.Name()+"\n") {
				return http.StatusForbidden, "no valid log signature\n"
			}
			return http.StatusNotFound, "unknown log\n"
		}
		return http.StatusBadRequest, "malformed checkpoint\n"
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != f.log.Name() {
		return http.StatusNotFound, "unknown log\n"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == Loop {
		f.flip = !f.flip
		if f.flip {
			return http.StatusConflict, "1\n"
		}
		return http.StatusConflict, "0\n"
	}
	switch {
	case old > cp.Size:
		return http.StatusBadRequest, "old size above the checkpoint's\n"
	case old != f.size:
		return http.StatusConflict, fmt.Sprintf("%d\n", f.size)
	case old == cp.Size && !bytes.Equal(cp.Hash, f.root):
		return http.StatusConflict, ""
	case old == 0 && len(hashes) > 0:
		return http.StatusUnprocessableEntity, "a proof from size 0\n"
	case old > 0 && old < cp.Size:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, cp.Size, hashes, f.root, cp.Hash); err != nil {
			return http.StatusUnprocessableEntity, "the consistency proof does not verify\n"
		}
	}
	signer := f.signer
	if fault == WrongKey {
		signer = f.other
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, signer)
	if err != nil {
		return http.StatusInternalServerError, "cannot sign\n"
	}
	if fault != WrongKey {
		f.size, f.root = cp.Size, cp.Hash
	}
	_, line, _ := bytes.Cut(signed, []byte("\n\n"))
	return http.StatusOK, string(line)
}

// FakePolicy starts fake witnesses named names for the log of verifier key
// logKey, writes a policy naming the log and them, with a quorum of all of
// them, to a file in dir, and returns the file and the fakes.
func FakePolicy(t testing.TB, dir, logKey string, names ...string) (string, []*Fake) {
	t.Helper()
	lines := []string{"log " + logKey}
	var fakes []*Fake
	for _, n := range names {
		f := NewFake(t, n, logKey)
		fakes = append(fakes, f)
		lines = append(lines, f.PolicyLine())
	}
	lines = append(lines, "group fakes all "+strings.Join(names, " "), "quorum fakes", "")
	path := filepath.Join(dir, "fakes.policy")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, fakes
}
