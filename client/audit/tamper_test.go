package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// honestBase writes a small honest log: a curated letter, three public
// endorsements, a private one and a signer-signed one.
func honestBase(l *testLog) (lt *pb.Letter, public []uint64, secrets map[uint64][]byte) {
	lt = l.letter("library-hours", pb.Policy_POLICY_CURATED)
	secrets = map[uint64][]byte{}
	for _, n := range []string{"Łapińska Hanna", "Тацяна Уладзіміраўна", "Müller Sören"} {
		i, e := l.endorse(lt, client.Signer{Fields: records.Fields{Name: n, Affiliation: "Readers"}})
		public = append(public, i)
		secrets[i] = e.WithdrawalSecret
	}
	l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Hidden"}, Visibility: pb.Visibility_VISIBILITY_PRIVATE})
	return lt, public, secrets
}

func auditHTTP(t *testing.T, l *testLog, dir string) *audit.Report {
	t.Helper()
	rep, _, err := tryAuditHTTP(t, l, dir)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// tryAuditHTTP audits l over HTTP with its state in dir, and returns the
// report, the size the state reached, and the audit's error.
func tryAuditHTTP(t *testing.T, l *testLog, dir string, opts ...audit.HTTPOption) (*audit.Report, uint64, error) {
	t.Helper()
	src, err := audit.NewHTTPSource(l.url(), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	st, err := audit.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := audit.New(audit.Config{Source: src, VerifierKey: l.key, State: st})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Run(context.Background())
	return rep, st.Size(), err
}

// flipInBundle flips a byte of entry index inside its stored entry bundle.
func flipInBundle(t *testing.T, l *testLog, index uint64, fromEnd int) {
	t.Helper()
	size := uint64(len(l.records))
	n := index / layout.EntryBundleWidth
	path := filepath.Join(l.dir, filepath.FromSlash(layout.EntriesPath(n, layout.PartialTileSize(0, n, size))))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := n * layout.EntryBundleWidth; ; i++ {
		l := int(binary.BigEndian.Uint16(b[off:]))
		if i == index {
			b[off+2+l-fromEnd] ^= 0x01
			break
		}
		off += 2 + l
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTamperedLogs builds logs that the server would refuse, or alters an
// honest one's files, and checks that the audit names the index and the
// rule of each.
func TestTamperedLogs(t *testing.T) {
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name  string
		build func(l *testLog) (index uint64)
		after func(l *testLog) // after the files are written
		rule  audit.Rule
	}{
		{"honest", func(l *testLog) uint64 { honestBase(l); return 0 }, nil, ""},
		{"flipped byte in a stored entry bundle", func(l *testLog) uint64 {
			_, pub, _ := honestBase(l)
			return pub[1]
		}, func(l *testLog) { flipInBundle(t, l, 2, 10) }, audit.RuleTree},
		{"deleted public disclosure", func(l *testLog) uint64 {
			_, pub, _ := honestBase(l)
			delete(l.disc, pub[0])
			return pub[0]
		}, nil, audit.RuleWithheld},
		{"altered disclosure", func(l *testLog) uint64 {
			_, pub, _ := honestBase(l)
			l.disc[pub[2]].Name = "Muller Soren"
			return pub[2]
		}, nil, audit.RuleDisclosure},
		{"withdrawal with a bad authorisation", func(l *testLog) uint64 {
			_, pub, _ := honestBase(l)
			return l.withdraw(pub[0], organiserAuth(stranger, l.origin))
		}, nil, audit.RuleWithdrawal},
		{"withdrawal with a wrong secret", func(l *testLog) uint64 {
			_, pub, secrets := honestBase(l)
			return l.withdraw(pub[0], func(*pb.Withdrawal) *pb.Authorisation {
				return &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secrets[pub[1]]}}
			})
		}, nil, audit.RuleWithdrawal},
		{"curated endorsement without an organiser signature", func(l *testLog) uint64 {
			lt, _, _ := honestBase(l)
			_, signerKey, _ := ed25519.GenerateKey(rand.Reader)
			e := client.NewEndorsement(l.origin, lt, client.Signer{Fields: records.Fields{Name: "Invented"}, SignerKey: signerKey})
			i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
			l.disc[i] = e.Disclosure
			return i
		}, nil, audit.RuleEndorsement},
		{"curated endorsement signed by a key that is not the letter's", func(l *testLog) uint64 {
			lt, _, _ := honestBase(l)
			i, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Invented"}, OrganiserKey: stranger})
			return i
		}, nil, audit.RuleEndorsement},
		{"disclosure still served after a redaction", func(l *testLog) uint64 {
			_, pub, _ := honestBase(l)
			l.redact(pub[1], func(r *pb.Redaction) *pb.Authorisation {
				return &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignRedaction(l.orgKey, l.origin, r)}}
			})
			return pub[1]
		}, nil, audit.RuleRedactionIgnored},
		{"a withdrawal secret revealed twice", func(l *testLog) uint64 {
			_, pub, secrets := honestBase(l)
			bySecret := &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secrets[pub[2]]}}
			l.redact(pub[2], func(*pb.Redaction) *pb.Authorisation { return bySecret })
			delete(l.disc, pub[2])
			return l.withdraw(pub[2], func(*pb.Withdrawal) *pb.Authorisation { return bySecret })
		}, nil, audit.RuleSpentSecret},
		{"an endorsement of a closed letter", func(l *testLog) uint64 {
			lt, _, _ := honestBase(l)
			l.status(lt, pb.Status_STATUS_CLOSED, "")
			i, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Too Late"}})
			return i
		}, nil, audit.RuleEndorsement},
		{"a correction of a signer-signed endorsement by another key", func(l *testLog) uint64 {
			lt, _, _ := honestBase(l)
			_, k1, _ := ed25519.GenerateKey(rand.Reader)
			t1, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Signer One"}, SignerKey: k1})
			i, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Signer Uno"}, Supersedes: &t1})
			return i
		}, nil, audit.RuleSupersedes},
		{"a letter id used twice", func(l *testLog) uint64 {
			honestBase(l)
			l.letter("library-hours", pb.Policy_POLICY_OPEN)
			return uint64(len(l.records) - 1)
		}, nil, audit.RuleLetter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t)
			index := tc.build(l)
			l.write()
			if tc.after != nil {
				tc.after(l)
			}
			rep := auditHTTP(t, l, t.TempDir())
			if tc.rule == "" {
				if !rep.OK() {
					t.Fatalf("an honest log fails: %v", rep.Violations)
				}
				return
			}
			found := false
			for _, v := range rep.Violations {
				if v.Index == index && v.Rule == tc.rule && strings.HasPrefix(v.Error(), "index ") {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s violation at index %d; got %v", tc.rule, index, rep.Violations)
			}
		})
	}
}

// TestFork audits an honest log, then serves checkpoints signed with the
// log's own key of trees that do not extend it: the audit reports a fork,
// writes both checkpoints to an evidence file, and keeps the old state.
func TestFork(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(l *testLog) *testLog
	}{
		{"same size, another root", func(l *testLog) *testLog {
			root := make([]byte, 32)
			rand.Read(root)
			l.override = l.signCheckpoint(uint64(len(l.records)), root)
			return l
		}},
		{"a larger tree with another history", func(l *testLog) *testLog {
			other := l.sibling()
			honestBase(other)
			other.endorse(other.letterFrom(l), client.Signer{Fields: records.Fields{Name: "Someone Else"}})
			other.write()
			return other
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t)
			honestBase(l)
			l.write()
			dir := t.TempDir()
			if rep := auditHTTP(t, l, dir); !rep.OK() {
				t.Fatalf("the honest log fails: %v", rep.Violations)
			}
			before, _ := os.ReadFile(filepath.Join(dir, audit.HeaderFile))
			served := tc.serve(l)
			rep := auditHTTP(t, served, dir)
			if rep.OK() || rep.Fork == nil || rep.Violations[0].Rule != audit.RuleFork {
				t.Fatalf("no fork reported: %+v", rep)
			}
			ev, err := os.ReadFile(rep.Fork.EvidenceFile)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(ev), string(rep.Fork.Trusted)) || !strings.Contains(string(ev), string(rep.Fork.Served)) {
				t.Errorf("the evidence file lacks a checkpoint:\n%s", ev)
			}
			after, _ := os.ReadFile(filepath.Join(dir, audit.HeaderFile))
			if string(before) != string(after) {
				t.Error("the state changed after a fork")
			}
		})
	}
}

// TestMirrorWithoutDisclosures audits a copy of the tlog-tiles files
// alone: the disclosures are reported as not checked, not as withheld.
func TestMirrorWithoutDisclosures(t *testing.T) {
	l := newTestLog(t)
	honestBase(l)
	l.noDisc = true
	l.write()
	dir := t.TempDir()
	rep := auditHTTP(t, l, dir)
	if !rep.OK() || rep.NotChecked != 3 {
		t.Fatalf("violations %v, %d not checked; want none and 3", rep.Violations, rep.NotChecked)
	}
	st, err := audit.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Roster("library-hours", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.NotChecked != 3 || r.Counts.Withheld != 0 || r.Counts.Private != 1 {
		t.Errorf("counts %+v", r.Counts)
	}
}

// TestStateLock checks that one audit at a time holds a state folder,
// while readers may open it.
func TestStateLock(t *testing.T) {
	dir := t.TempDir()
	st, err := audit.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenState(dir); !errors.Is(err, audit.ErrLocked) {
		t.Fatalf("a second audit of the same folder: %v, want ErrLocked", err)
	}
	if _, err := audit.ReadState(dir); !errors.Is(err, audit.ErrNoState) {
		t.Fatalf("reading a folder never saved: %v, want ErrNoState", err)
	}
	st.Close()
	st, err = audit.OpenState(dir)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	st.Close()
}
