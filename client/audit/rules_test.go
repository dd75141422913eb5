package audit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// TestBrokenPromises audits logs crafted (without admission) to hold each
// broken promise of issue 10, and checks that each is reported with its
// index, and the index of the earlier record it repeats where there is one.
func TestBrokenPromises(t *testing.T) {
	for _, tc := range []struct {
		name string
		// build returns the index of the offending entry and of the
		// earlier record it repeats (or -1).
		build func(l *testLog) (uint64, int64)
		rule  audit.Rule
	}{
		{"a withdrawn endorsement replayed byte for byte", func(l *testLog) (uint64, int64) {
			_, pub, secrets := honestBase(l)
			l.withdraw(pub[0], func(*pb.Withdrawal) *pb.Authorisation {
				return &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secrets[pub[0]]}}
			})
			rec, err := decode(l.records[pub[0]])
			if err != nil {
				t.Fatal(err)
			}
			i := l.add(rec)
			l.disc[i] = proto.CloneOf(l.disc[pub[0]])
			return i, int64(pub[0])
		}, audit.RuleReplay},
		{"a commitment accepted twice under another lock", func(l *testLog) (uint64, int64) {
			_, pub, _ := honestBase(l)
			rec, _ := decode(l.records[pub[1]])
			e := rec.GetEndorsement()
			_, secret := client.NewSecrets()
			e.WithdrawalLock = records.WithdrawalLock(secret)
			e.Organiser = nil
			records.SignEndorsementAsOrganiser(l.orgKey, l.origin, e)
			i := l.add(rec)
			l.disc[i] = proto.CloneOf(l.disc[pub[1]])
			return i, int64(pub[1])
		}, audit.RuleReplay},
		{"a withdrawal lock reused by a new endorsement", func(l *testLog) (uint64, int64) {
			lt, pub, secrets := honestBase(l)
			salt, _ := client.NewSecrets()
			e := client.NewEndorsementWithSecrets(l.origin, lt, client.Signer{Fields: records.Fields{Name: "Lock Thief"}, OrganiserKey: l.orgKey}, salt, secrets[pub[2]])
			i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
			l.disc[i] = e.Disclosure
			return i, int64(pub[2])
		}, audit.RuleReplay},
		{"a withdrawal by a signer key the organiser did not sign for", func(l *testLog) (uint64, int64) {
			lt, _, _ := honestBase(l)
			// The organiser signed an endorsement without a signer key; a
			// relay attached its own key and withdraws "as the signer".
			_, e := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Relayed"}})
			_, relay, _ := ed25519.GenerateKey(rand.Reader)
			records.SignEndorsementAsSigner(relay, l.origin, e.Endorsement)
			i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
			l.disc[i] = e.Disclosure
			l.withdraw(i, func(w *pb.Withdrawal) *pb.Authorisation {
				return &pb.Authorisation{By: &pb.Authorisation_Signer{Signer: records.SignWithdrawal(relay, l.origin, w)}}
			})
			return i, -1
		}, audit.RuleEndorsement},
		{"a name served for a redacted record", func(l *testLog) (uint64, int64) {
			_, pub, secrets := honestBase(l)
			// Withdrawn and redacted with the same (spent) secret: both
			// valid; the name still served is the violation.
			bySecret := &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secrets[pub[0]]}}
			l.withdraw(pub[0], func(*pb.Withdrawal) *pb.Authorisation { return bySecret })
			l.redact(pub[0], func(*pb.Redaction) *pb.Authorisation { return bySecret })
			return pub[0], -1
		}, audit.RuleRedactionIgnored},
		{"the same signer key twice in a letter", func(l *testLog) (uint64, int64) {
			lt := l.letter("open-letter", pb.Policy_POLICY_OPEN)
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			first, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Signs Once"}, SignerKey: key})
			i, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "Signs Twice"}, SignerKey: key, Visibility: pb.Visibility_VISIBILITY_PRIVATE})
			return i, int64(first)
		}, audit.RuleEndorsement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t)
			index, earlier := tc.build(l)
			l.write()
			rep := auditHTTP(t, l, t.TempDir())
			found := false
			for _, v := range rep.Violations {
				if v.Index == index && v.Rule == tc.rule {
					found = true
					if earlier >= 0 && !strings.Contains(v.Message, fmt.Sprintf("index %d", earlier)) {
						t.Errorf("the violation does not name the earlier index %d: %v", earlier, v)
					}
				}
			}
			if !found {
				t.Fatalf("no %s violation at index %d; got %v", tc.rule, index, rep.Violations)
			}
		})
	}
}

// TestRedactionBySpentSecret: a redaction authorised by a withdrawal
// secret already revealed by a withdrawal is no violation (it can only
// hide a name), and the audit of such an honest log passes.
func TestRedactionBySpentSecret(t *testing.T) {
	l := newTestLog(t)
	_, pub, secrets := honestBase(l)
	bySecret := &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secrets[pub[0]]}}
	l.withdraw(pub[0], func(*pb.Withdrawal) *pb.Authorisation { return bySecret })
	l.redact(pub[0], func(*pb.Redaction) *pb.Authorisation { return bySecret })
	delete(l.disc, pub[0])
	l.write()
	if rep := auditHTTP(t, l, t.TempDir()); !rep.OK() {
		t.Fatalf("an honest withdraw-and-redact fails: %v", rep.Violations)
	}
}

func decode(b []byte) (*pb.Record, error) {
	r, err := records.Decode(b)
	if err != nil {
		return nil, err
	}
	r.AcceptedAt++
	return r, nil
}
