package audit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// foreignLog writes an honest log with an open letter and, at the
// returned index, a well-formed private endorsement of it that no server
// admitted: signed with a key of the intruder's own, queued on the log's
// storage directly. A server marks it foreign; it must not count.
func foreignLog(t *testing.T) (*testLog, uint64) {
	t.Helper()
	l := newTestLog(t)
	lt := l.letter("open-letter", pb.Policy_POLICY_OPEN)
	for _, n := range []string{"Opens Early", "Opens Twice"} {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		l.endorse(lt, client.Signer{Fields: records.Fields{Name: n}, SignerKey: key})
	}
	_, intruder, _ := ed25519.GenerateKey(rand.Reader)
	foreign, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Nobody Admitted"}, SignerKey: intruder,
		Visibility: pb.Visibility_VISIBILITY_PRIVATE})
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Opens Late"}, SignerKey: key})
	l.foreign = map[uint64]bool{foreign: true}
	l.write()
	return l, foreign
}

func privateCount(t *testing.T, dir string) uint64 {
	t.Helper()
	st, err := audit.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Roster("open-letter", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.Public != 3 {
		t.Errorf("%d public endorsements, want 3", r.Counts.Public)
	}
	return r.Counts.Private
}

// TestForeignMarksOverHTTP audits over plain HTTP a log holding an entry
// no server admitted. With the foreign marks served beside the entry
// bundles, the audit reports exactly that index, as the gRPC audit does,
// and the entry does not count; without them (a mirror of the tlog-tiles
// resources alone) the entry keeps the rules and counts, and the report
// says the marks were not checked.
func TestForeignMarksOverHTTP(t *testing.T) {
	l, foreign := foreignLog(t)
	dir := t.TempDir()
	rep := auditHTTP(t, l, dir)
	if len(rep.Violations) != 1 || rep.Violations[0].Rule != audit.RuleForeign || rep.Violations[0].Index != foreign {
		t.Errorf("violations %v, want exactly %s at %d", rep.Violations, audit.RuleForeign, foreign)
	}
	if rep.ForeignNotChecked != 0 {
		t.Errorf("%d entries without foreign marks, want 0", rep.ForeignNotChecked)
	}
	if n := privateCount(t, dir); n != 0 {
		t.Errorf("%d private endorsements count, want 0: the foreign one does not", n)
	}

	l.mu.Lock()
	l.noForeign = true
	l.mu.Unlock()
	dir = t.TempDir()
	rep = auditHTTP(t, l, dir)
	if !rep.OK() || rep.ForeignNotChecked != uint64(len(l.records)) {
		t.Errorf("without marks: violations %v, %d entries not checked; want none and %d", rep.Violations, rep.ForeignNotChecked, len(l.records))
	}
	if n := privateCount(t, dir); n != 1 {
		t.Errorf("without marks: %d private endorsements count, want 1", n)
	}
}

// TestHostileForeignMarks serves foreign marks that break their format:
// each is a source violation naming the URL (and the index), or an error
// naming the URL, and the state does not advance.
func TestHostileForeignMarks(t *testing.T) {
	// endless serves an array that never ends (whitespace: a repeated
	// index would be refused before the cap).
	endless := func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("[1"))
		space := []byte(strings.Repeat(" ", 4096))
		for {
			if _, err := w.Write(space); err != nil {
				return
			}
		}
	}
	for _, tc := range []struct {
		name string
		body func(w http.ResponseWriter, r *http.Request)
		// rule is the violation wanted, with its index and a part of its
		// message; without one, an error containing want.
		rule     audit.Rule
		index    uint64
		want     string
		hasIndex bool
	}{
		{"duplicate", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[3, 1, 3]")) },
			audit.RuleSource, 3, "marked twice", true},
		{"outside the bundle", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[1, 256]")) },
			audit.RuleSource, 256, "outside entry bundle 0", true},
		{"endless", endless, audit.RuleSource, 0, "larger than the", false},
		{"announced too large", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(records.MaxForeignMarksBytes+1))
			w.Write([]byte("["))
		}, audit.RuleSource, 0, "announces", false},
		{"not integers", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[1, "2"]`)) },
			"", 0, "foreign marks of bundle 0", false},
		{"negative", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[-1]`)) },
			"", 0, "foreign marks of bundle 0", false},
		{"silent", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			"", 0, "timeout", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := foreignLog(t)
			l.mu.Lock()
			l.foreignBody = tc.body
			l.mu.Unlock()
			rep, size, err := tryAuditHTTP(t, l, t.TempDir(), audit.WithFetchTimeout(500*time.Millisecond))
			url := l.url() + "foreign/000.p/"
			if tc.rule == "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), url) {
					t.Fatalf("got %v, %v; want an error naming %s and saying %q", rep, err, url, tc.want)
				}
				if size != 0 {
					t.Errorf("the state advanced to %d", size)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Violations) != 1 {
				t.Fatalf("violations %v, want one", rep.Violations)
			}
			v := rep.Violations[0]
			if v.Rule != tc.rule || v.Index != tc.index || !strings.Contains(v.Message, tc.want) || !strings.Contains(v.Message, url) {
				t.Errorf("violation %v, want %s at %d naming %s and saying %q", v, tc.rule, tc.index, url, tc.want)
			}
			if tc.hasIndex && !strings.Contains(v.Message, fmt.Sprintf("index %d", tc.index)) {
				t.Errorf("violation %v does not name index %d", v, tc.index)
			}
			if rep.Saved || size != 0 || slices.ContainsFunc(rep.Violations, func(v audit.Violation) bool { return v.Rule == audit.RuleForeign }) {
				t.Errorf("saved %v, state at %d: nothing from the source may be trusted", rep.Saved, size)
			}
		})
	}
}
