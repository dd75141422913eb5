package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// RunModel sends random sequences of about ops operations to a server on
// l, in rounds of operations that do not depend on each other (sent at
// once, on several tokens, endorsements on EndorseStream; a status or an
// organiser change alone, as every organiser action of its letter depends
// on it; organiser actions are mostly signed by a key valid at that point,
// sometimes by one revoked or never listed), and checks after
// each round that the server's answers and what it appended agree with the
// rules function (rules.Memory fed the log in order), then at the end that
// GetRoster, the stores' counts and an audit's replay agree with it too,
// and that no private or redacted name is served anywhere or named in an
// error.
func RunModel(t *testing.T, l Log, ops int, seed uint64) {
	s := open(t, l.Start(t), nil)
	m := &modelRun{t: t, s: s, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), mem: rules.NewMemory(),
		written: map[uint64]*sent{}, clients: []*client.Client{s.c, s.other}, keys: map[string][]ed25519.PrivateKey{}}
	t.Logf("model: %d operations, seed %d", ops, seed)
	for i := range 3 {
		m.letters = append(m.letters, s.publish(fmt.Sprintf("model-%d", i), pb.Policy_POLICY_CURATED))
	}
	m.sync(nil)
	start := time.Now()
	for done := 0; done < ops; {
		var round []*op
		switch k := m.rng.IntN(10); {
		case k < 1:
			round = m.statusRound()
		case k < 4:
			round = m.keyRound()
		default:
			round = m.round(min(250, ops-done))
		}
		m.run(round)
		done += len(round)
		if st := round[0].in.Record.GetLetterStatus(); st != nil && st.GetStatus() == pb.Status_STATUS_CLOSED {
			// A new letter, so that most operations meet an open one.
			m.letters = append(m.letters, s.publish(fmt.Sprintf("model-%d", len(m.letters)), pb.Policy_POLICY_CURATED))
			m.sync(nil)
		}
	}
	t.Logf("model: %d operations in %v", ops, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	m.final()
	t.Logf("model: the final checks and the audit in %v", time.Since(start).Round(time.Millisecond))
}

// sent is what the test knows of a record the log holds.
type sent struct {
	in        rules.Input
	principal string
	secret    []byte
	writer    int // the client that wrote it, or -1
}

// op is one operation of a round.
type op struct {
	what      string
	in        rules.Input
	principal string
	client    int // index into clients, or -1: no token
	secret    []byte
	// touches are the people the operation reads or changes: no two
	// operations of a round touch the same one.
	touches []string
	// send runs the operation; endorsements go on a stream instead. The
	// raw API is called: the client library's checks of each receipt are
	// tested elsewhere, and would cost more than the server's work here.
	send func(ctx context.Context) (*pb.WriteResult, error)
	e    *client.Endorsement

	res  *pb.WriteResult
	err  error
	want error // what the rules say, before the round
}

type modelRun struct {
	t       *testing.T
	s       *session
	rng     *rand.Rand
	mem     *rules.Memory
	letters []*pb.Letter
	clients []*client.Client
	written map[uint64]*sent
	// endorsements are the indexes of the endorsements, people the names
	// used so far (private and redacted ones are looked for everywhere).
	endorsements []uint64
	names        []string
	hidden       map[string]bool
	errors       []string
	next         int
	// outcomes tallies, by operation, what the server answered.
	outcomes map[string]map[string]int
	// keys are the organiser keys each letter ever had, and some it never
	// had: organiser actions are signed by one of them, mostly a key the
	// rules say is valid.
	keys map[string][]ed25519.PrivateKey
}

// organiserKey draws the key that signs an organiser action on a letter:
// mostly one valid at this point, sometimes one revoked or never listed.
func (m *modelRun) organiserKey(letterID string) ed25519.PrivateKey {
	known := append([]ed25519.PrivateKey{m.s.org}, m.keys[letterID]...)
	if m.rng.IntN(8) == 0 {
		return known[m.rng.IntN(len(known))]
	}
	lt, _ := m.mem.Letter(letterID)
	var valid []ed25519.PrivateKey
	for _, k := range known {
		if lt != nil && slices.ContainsFunc(lt.OrganiserKeys, func(v []byte) bool { return bytes.Equal(v, k.Public().(ed25519.PublicKey)) }) {
			valid = append(valid, k)
		}
	}
	if len(valid) == 0 {
		return m.s.org
	}
	return valid[m.rng.IntN(len(valid))]
}

func (m *modelRun) principal(c int, auth *pb.Authorisation, target *pb.Endorsement) string {
	if c >= 0 {
		return fmt.Sprintf("token %d", c)
	}
	if _, ok := auth.GetBy().(*pb.Authorisation_WithdrawalSecret); ok {
		return "secret:" + hex.EncodeToString(target.GetWithdrawalLock())
	}
	return "anonymous"
}

func (m *modelRun) newName(private bool) string {
	m.next++
	n := fmt.Sprintf("Model Signer %05d %s", m.next, []string{"Łapińska", "Тацяна", "Müller", "O'Connor", "Zoë"}[m.next%5])
	m.names = append(m.names, n)
	if private {
		m.hide(n)
	}
	return n
}

func (m *modelRun) hide(n string) {
	if m.hidden == nil {
		m.hidden = map[string]bool{}
	}
	m.hidden[n] = true
}

// endorseOp builds an endorsement by client c of person fields.
func (m *modelRun) endorseOp(what string, l *pb.Letter, f records.Fields, vis pb.Visibility, idem string, supersedes *uint64, c int) *op {
	e := client.NewEndorsement(m.s.c.Origin(), l, client.Signer{Fields: f, Visibility: vis, Supersedes: supersedes, OrganiserKey: m.organiserKey(l.GetId())})
	return &op{what: what, e: e, client: c, principal: m.principal(c, nil, nil), secret: e.WithdrawalSecret,
		in:      rules.Input{Record: &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}}, Disclosure: e.Disclosure, IdempotencyKey: idem},
		touches: []string{l.GetId() + "/" + f.Name}}
}

// round draws n operations that touch different people.
func (m *modelRun) round(n int) []*op {
	touched := map[string]bool{}
	var out []*op
	for tries := 0; len(out) < n && tries < 4*n; tries++ {
		o := m.draw()
		if o == nil {
			continue
		}
		free := true
		for _, k := range o.touches {
			free = free && !touched[k]
		}
		if !free {
			continue
		}
		for _, k := range o.touches {
			touched[k] = true
		}
		out = append(out, o)
	}
	return out
}

// draw draws one operation.
func (m *modelRun) draw() *op {
	r := m.rng
	c := r.IntN(2)
	if len(m.endorsements) < 20 || r.IntN(4) == 0 {
		l := m.letters[r.IntN(len(m.letters))]
		if r.IntN(5) != 0 {
			l = m.letters[len(m.letters)-1-r.IntN(min(3, len(m.letters)))]
		}
		vis := []pb.Visibility{pb.Visibility_VISIBILITY_PUBLIC, pb.Visibility_VISIBILITY_PRIVATE}[r.IntN(2)]
		idem := ""
		if r.IntN(3) == 0 {
			idem = fmt.Sprintf("%d/id-%d", c, m.next+1)
		}
		return m.endorseOp("endorse", l, records.Fields{Name: m.newName(vis == pb.Visibility_VISIBILITY_PRIVATE), Affiliation: "Model"}, vis, idem, nil, c)
	}
	i := m.endorsements[r.IntN(len(m.endorsements))]
	w := m.written[i]
	e, d := w.in.Record.GetEndorsement(), w.in.Disclosure
	l := m.letterOf(e.GetLetterId())
	f := records.FieldsOf(d)
	switch k := r.IntN(9); k {
	case 0, 1: // an exact repeat, or a re-import with new secrets (sometimes asking to re-add)
		by := []int{w.writer, c}[r.IntN(2)]
		o := m.endorseOp("repeat", l, f, e.GetVisibility(), idemOf(w, by), e.Supersedes, by)
		o.e.ReaddAfterRedaction = r.IntN(4) == 0 && o.client >= 0
		o.in.ReaddAfterRedaction = o.e.ReaddAfterRedaction
		return o
	case 2: // the same person with the other visibility
		vis := pb.Visibility_VISIBILITY_PRIVATE
		if e.GetVisibility() == vis {
			vis = pb.Visibility_VISIBILITY_PUBLIC
		}
		return m.endorseOp("conflict", l, f, vis, idemOf(w, c), e.Supersedes, c)
	case 3: // a namesake with an id of its own
		o := m.endorseOp("namesake", l, f, e.GetVisibility(), fmt.Sprintf("%d/namesake-%d", c, m.next), nil, c)
		m.next++
		return o
	case 4: // the record replayed, by anyone
		o := &op{what: "replay", client: c, principal: m.principal(c, nil, nil),
			e:       &client.Endorsement{Endorsement: proto.CloneOf(e), Disclosure: proto.CloneOf(d)},
			in:      rules.Input{Record: &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}}, Disclosure: d},
			touches: []string{l.GetId() + "/" + f.Name}}
		return o
	case 5: // a correction by its writer
		fixed := records.Fields{Name: m.newName(e.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE), Affiliation: "Model"}
		o := m.endorseOp("supersede", l, fixed, e.GetVisibility(), "", proto.Uint64(i), max(w.writer, 0))
		o.touches = append(o.touches, l.GetId()+"/"+f.Name)
		return o
	default: // a withdrawal or a redaction, by the organiser or the secret
		return m.actionOp(i, w, k%2 == 0, r.IntN(2) == 0, c)
	}
}

// idemOf is the idempotency key client c gives a person w wrote: the
// organiser's id for the person, as this client knows it. The server
// scopes idempotency keys to their writer; so do the ids here.
func idemOf(w *sent, c int) string {
	k := w.in.IdempotencyKey
	if k == "" {
		return ""
	}
	_, id, _ := strings.Cut(k, "/")
	return fmt.Sprintf("%d/%s", c, id)
}

func (m *modelRun) actionOp(i uint64, w *sent, withdraw, bySecret bool, c int) *op {
	e, d := w.in.Record.GetEndorsement(), w.in.Disclosure
	leaf := m.leaf(i)
	a := client.Action{TargetIndex: i, TargetLeafHash: leaf, Reason: pb.Reason_REASON_SIGNER_REQUEST}
	if bySecret {
		a.WithdrawalSecret, c = w.secret, -1
	} else {
		a.OrganiserKey = m.organiserKey(e.GetLetterId())
	}
	cl := m.s.anon
	if c >= 0 {
		cl = m.clients[c]
	}
	o := &op{client: c, touches: []string{e.GetLetterId() + "/" + records.FieldsOf(d).Name}}
	auth := func(tag string, statement []byte) *pb.Authorisation {
		if bySecret {
			return &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: w.secret}}
		}
		return &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.Sign(a.OrganiserKey, tag, statement)}}
	}
	origin := m.s.c.Origin()
	if withdraw {
		wd := &pb.Withdrawal{TargetIndex: i, TargetLeafHash: leaf, Reason: a.Reason}
		wd.Authorisation = auth(records.TagWithdraw, records.WithdrawalStatement(origin, wd))
		o.what, o.in = "withdraw", rules.Input{Record: &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: wd}}}
		o.send = func(ctx context.Context) (*pb.WriteResult, error) {
			resp, err := cl.API().Withdraw(cl.Context(ctx), &pb.WithdrawRequest{Withdrawal: wd})
			return resp.GetResult(), err
		}
	} else {
		rd := &pb.Redaction{TargetIndex: i, TargetLeafHash: leaf, Reason: a.Reason}
		rd.Authorisation = auth(records.TagRedact, records.RedactionStatement(origin, rd))
		o.what, o.in = "redact", rules.Input{Record: &pb.Record{Kind: &pb.Record_Redaction{Redaction: rd}}}
		o.send = func(ctx context.Context) (*pb.WriteResult, error) {
			resp, err := cl.API().Redact(cl.Context(ctx), &pb.RedactRequest{Redaction: rd})
			return resp.GetResult(), err
		}
	}
	o.principal = m.principal(c, o.in.Record.GetWithdrawal().GetAuthorisation(), e)
	if !withdraw {
		o.principal = m.principal(c, o.in.Record.GetRedaction().GetAuthorisation(), e)
	}
	return o
}

// statusRound closes or delivers one letter, and endorses another.
func (m *modelRun) statusRound() []*op {
	l := m.letters[m.rng.IntN(len(m.letters))]
	st := []pb.Status{pb.Status_STATUS_CLOSED, pb.Status_STATUS_DELIVERED}[m.rng.IntN(2)]
	s := &pb.LetterStatus{LetterId: l.GetId(), Status: st, Note: fmt.Sprintf("note %d", m.next)}
	records.SignStatus(m.organiserKey(l.GetId()), m.s.c.Origin(), s)
	c := m.rng.IntN(2)
	cl := m.clients[c]
	o := &op{what: "status", client: c, principal: m.principal(c, nil, nil),
		in: rules.Input{Record: &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}}}}
	o.send = func(ctx context.Context) (*pb.WriteResult, error) {
		resp, err := cl.API().SetLetterStatus(cl.Context(ctx), &pb.SetLetterStatusRequest{Status: s})
		return resp.GetResult(), err
	}
	return []*op{o}
}

// keyRound adds an organiser key to a letter or revokes one, signed by
// another of its keys: a new key, a valid key revoked (the last one too),
// a revoked key added again, or the letter's last change repeated.
func (m *modelRun) keyRound() []*op {
	l := m.letters[m.rng.IntN(len(m.letters))]
	id := l.GetId()
	lt, _ := m.mem.Letter(id)
	change, key := pb.KeyChange_KEY_CHANGE_ADD, []byte(nil)
	switch k := m.rng.IntN(8); {
	case k < 4:
		pub, priv, _ := ed25519.GenerateKey(nil)
		m.keys[id] = append(m.keys[id], priv)
		key = pub
	case k < 6:
		change, key = pb.KeyChange_KEY_CHANGE_REVOKE, lt.OrganiserKeys[m.rng.IntN(len(lt.OrganiserKeys))]
	case k == 6 && len(lt.Revoked) > 0:
		key = lt.Revoked[m.rng.IntN(len(lt.Revoked))]
	case lt.KeysChangedBy != nil:
		c := m.written[uint64(lt.KeysChangedBy.Index)].in.Record.GetOrganiserChange()
		change, key = c.GetChange(), c.GetKey()
	default:
		change, key = pb.KeyChange_KEY_CHANGE_REVOKE, lt.OrganiserKeys[0]
	}
	// Signed by another key than the one changed: a change signed by the
	// key it changes breaks a rule of the record alone (records), which
	// the rules function assumes checked.
	by := m.organiserKey(id)
	for tries := 0; bytes.Equal(by.Public().(ed25519.PublicKey), key) && tries < 10; tries++ {
		by = m.organiserKey(id)
	}
	if bytes.Equal(by.Public().(ed25519.PublicKey), key) {
		_, by, _ = ed25519.GenerateKey(nil)
	}
	oc := &pb.OrganiserChange{LetterId: id, Change: change, Key: key}
	records.SignOrganiserChange(by, m.s.c.Origin(), oc)
	c := m.rng.IntN(2)
	cl := m.clients[c]
	o := &op{what: "organiser " + strings.ToLower(strings.TrimPrefix(change.String(), "KEY_CHANGE_")), client: c, principal: m.principal(c, nil, nil),
		in: rules.Input{Record: &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: oc}}}}
	o.send = func(ctx context.Context) (*pb.WriteResult, error) {
		resp, err := cl.API().ChangeOrganiser(cl.Context(ctx), &pb.ChangeOrganiserRequest{Change: oc})
		return resp.GetResult(), err
	}
	return []*op{o}
}

func (m *modelRun) letterOf(id string) *pb.Letter {
	for _, l := range m.letters {
		if l.GetId() == id {
			return l
		}
	}
	m.t.Fatalf("no letter %q", id)
	return nil
}

func (m *modelRun) leaf(i uint64) []byte {
	e, _ := m.mem.Endorsement(i)
	return e.LeafHash
}

// run sends a round and checks it.
func (m *modelRun) run(round []*op) {
	t := m.t
	for _, o := range round {
		_, o.want = rules.Apply(m.mem, o.in)
	}
	ctx := testContext(t)
	var wg sync.WaitGroup
	for c := range m.clients {
		var es []*op
		for _, o := range round {
			if o.send == nil && o.client == c {
				es = append(es, o)
			}
		}
		wg.Go(func() { m.stream(ctx, c, es) })
	}
	sem := make(chan struct{}, 32)
	for _, o := range round {
		if o.send != nil {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				o.res, o.err = o.send(ctx)
			})
		}
	}
	wg.Wait()
	m.sync(round)
	for _, o := range round {
		m.check(o)
	}
}

func (m *modelRun) stream(ctx context.Context, c int, es []*op) {
	if len(es) == 0 {
		return
	}
	cl := m.clients[c]
	st, err := cl.API().EndorseStream(cl.Context(ctx))
	if err != nil {
		m.t.Error(err)
		return
	}
	go func() {
		for _, o := range es {
			req := &pb.EndorseStreamRequest{Endorsement: o.e.Endorsement, Disclosure: o.e.Disclosure,
				IdempotencyKey: o.in.IdempotencyKey, ReaddAfterRedaction: o.e.ReaddAfterRedaction}
			if st.Send(req) != nil {
				return
			}
		}
		st.CloseSend()
	}()
	for _, o := range es {
		resp, err := st.Recv()
		switch {
		case err != nil:
			o.err = err
		case resp.GetRejected() != nil:
			o.err = status.Error(codes.Code(resp.GetRejected().GetCode()), resp.GetRejected().GetMessage())
		default:
			o.res = resp.GetWritten()
		}
	}
}

// sync reads what the log appended since the last round and applies it to
// the rules' state in log order; each entry must be one of the round's
// operations that the rules accept.
func (m *modelRun) sync(round []*op) {
	t := m.t
	size := m.s.checkpoint().Size
	ctx := testContext(t)
	stream, err := m.s.c.API().GetEntries(ctx, &pb.GetEntriesRequest{Start: m.mem.Size(), End: size})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		for _, en := range resp.GetEntries() {
			m.apply(en, round)
		}
	}
	if m.mem.Size() != size {
		t.Fatalf("the rules' state holds %d records, the log %d", m.mem.Size(), size)
	}
}

func (m *modelRun) apply(en *pb.Entry, round []*op) {
	t := m.t
	rec, err := records.Decode(en.GetRecord())
	if err != nil {
		t.Fatalf("entry %d: %v", en.GetIndex(), err)
	}
	w := &sent{in: rules.Input{Record: rec}, writer: 0}
	if l := rec.GetLetter(); l != nil {
		w.principal = m.principal(0, nil, nil)
	} else if o := match(rec, round); o != nil {
		w.in.Disclosure, w.in.IdempotencyKey, w.in.ReaddAfterRedaction = o.in.Disclosure, o.in.IdempotencyKey, o.in.ReaddAfterRedaction
		w.principal, w.secret, w.writer = o.principal, o.secret, o.client
		if o.err == nil && (o.res.GetDuplicate() || o.res.GetIndex() != en.GetIndex()) {
			t.Errorf("%s appended at %d, the answer said %d (duplicate %v)", o.what, en.GetIndex(), o.res.GetIndex(), o.res.GetDuplicate())
		}
	} else {
		t.Fatalf("entry %d is no operation of the round: %v", en.GetIndex(), rec)
	}
	if _, err := m.mem.Append(w.in, rfc6962.DefaultHasher.HashLeaf(en.GetRecord())); err != nil {
		t.Errorf("the server appended at %d a record the rules refuse: %v", en.GetIndex(), err)
		t.Logf("appended by %s, idempotency key %q: %v", w.principal, w.in.IdempotencyKey, rec)
	}
	m.written[en.GetIndex()] = w
	if rec.GetEndorsement() != nil {
		m.endorsements = append(m.endorsements, en.GetIndex())
	}
	if rd := rec.GetRedaction(); rd != nil {
		m.hide(m.written[rd.GetTargetIndex()].in.Disclosure.GetName())
	}
}

// match finds the operation of a round that wrote rec.
func match(rec *pb.Record, round []*op) *op {
	for _, o := range round {
		a, b := proto.CloneOf(rec), proto.CloneOf(o.in.Record)
		a.Version, a.AcceptedAt, b.Version, b.AcceptedAt = 0, 0, 0, 0
		if proto.Equal(a, b) {
			return o
		}
	}
	return nil
}

// check compares an operation's answer with what the rules said.
func (m *modelRun) check(o *op) {
	t := m.t
	outcome := "appended"
	if o.err != nil {
		m.errors = append(m.errors, status.Convert(o.err).Message())
		outcome = status.Code(o.err).String()
	} else if o.res.GetDuplicate() {
		outcome = "duplicate"
	}
	if m.outcomes == nil {
		m.outcomes = map[string]map[string]int{}
	}
	if m.outcomes[o.what] == nil {
		m.outcomes[o.what] = map[string]int{}
	}
	m.outcomes[o.what][outcome]++
	var exists *rules.ExistsError
	code := status.Code(o.err)
	switch {
	case o.want == nil:
		if o.err != nil || o.res.GetDuplicate() {
			t.Errorf("%s: the rules accept it, the server said %v (duplicate %v)", o.what, o.err, o.res.GetDuplicate())
		}
	case errors.As(o.want, &exists):
		mine := m.written[uint64(exists.Of.Index)].principal == o.principal
		switch {
		case mine && exists.Exact:
			if o.err != nil || !o.res.GetDuplicate() || o.res.GetIndex() != uint64(exists.Of.Index) {
				t.Errorf("%s: an exact repeat of %d by its writer, the server said %v, %v", o.what, exists.Of.Index, o.res, o.err)
			}
		case mine:
			if o.err == nil || !strings.Contains(status.Convert(o.err).Message(), fmt.Sprintf("record at %d", exists.Of.Index)) {
				t.Errorf("%s: a conflict with %d by its writer, the server said %v, want the rule and where", o.what, exists.Of.Index, o.err)
			}
		case exists.Refuse != nil:
			if code != codes.FailedPrecondition {
				t.Errorf("%s: %v; the server said %v, want FailedPrecondition", o.what, o.want, o.err)
			}
		default:
			if o.err == nil || strings.Contains(status.Convert(o.err).Message(), fmt.Sprintf("record at %d", exists.Of.Index)) {
				t.Errorf("%s: about %d of another principal, the server said %v, %v: want a refusal that does not say where", o.what, exists.Of.Index, o.res, o.err)
			}
		}
	default:
		want := codes.InvalidArgument
		if rules.FieldOf(o.want) != "" && !isFieldError(o.want) {
			want = codes.FailedPrecondition
		}
		if code != want {
			t.Errorf("%s: %v; the server said %v, %v", o.what, o.want, o.res, o.err)
		}
	}
}

func isFieldError(err error) bool {
	_, ok := records.AsFieldError(err)
	return ok
}

// final checks the roster, the counts and an audit against the rules'
// state, and that no hidden name is served or named in an error.
func (m *modelRun) final() {
	t := m.t
	for _, l := range m.letters {
		entries, counts := m.rosterAll(l.GetId())
		pub, priv, red, wd, sup := m.mem.Counts(l.GetId())
		got := []uint64{counts.GetPublic(), counts.GetPrivate(), counts.GetRedacted(), counts.GetWithdrawn(), counts.GetSuperseded()}
		if want := []uint64{pub, priv, red, wd, sup}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("letter %s: GetRoster counts %v, the rules %v", l.GetId(), got, want)
		}
		if uint64(len(entries)) != pub+priv+red {
			t.Errorf("letter %s: GetRoster lists %d, the rules count %d", l.GetId(), len(entries), pub+priv+red)
		}
		served := m.mem.Disclosures()
		for _, e := range entries {
			if d := served[int64(e.GetIndex())]; !proto.Equal(d, e.GetDisclosure()) {
				t.Errorf("letter %s: GetRoster serves %v at %d, the rules %v", l.GetId(), e.GetDisclosure(), e.GetIndex(), d)
			}
		}
	}
	m.audit()
	m.scan()
}

func (m *modelRun) audit() {
	t := m.t
	st, err := audit.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := audit.New(audit.Config{Source: audit.NewGRPCSource(m.s.c.API()), VerifierKey: m.s.target.VerifierKey, State: st})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Run(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("the audit's replay finds %d violations, first %v", len(rep.Violations), rep.Violations[0])
	}
	for _, l := range m.letters {
		r, err := st.Roster(l.GetId(), 0)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv, red, wd, sup := m.mem.Counts(l.GetId())
		c := r.Counts
		if c.Public != pub || c.Private != priv || c.Redacted != red || c.Withdrawn != wd || c.Superseded != sup {
			t.Errorf("letter %s: the audit counts %+v, the rules %d %d %d %d %d", l.GetId(), c, pub, priv, red, wd, sup)
		}
	}
}

// scan looks for every private or redacted name in everything served and
// in every error the operations got.
func (m *modelRun) scan() {
	t := m.t
	var all strings.Builder
	for _, e := range m.s.entries() {
		all.WriteString(e.GetDisclosure().GetName() + "\n")
	}
	size := m.s.checkpoint().Size
	for n := uint64(0); n*256 < size; n++ {
		_, body := m.s.disclosureBundle(n)
		all.Write(body)
	}
	for _, l := range m.letters {
		entries, _ := m.rosterAll(l.GetId())
		for _, e := range entries {
			all.WriteString(e.GetDisclosure().GetName() + "\n")
		}
	}
	for _, e := range m.errors {
		all.WriteString(e + "\n")
	}
	text := all.String()
	// A hidden name may be served under another endorsement of the same
	// name: a namesake, or the person re-added (public) after a withdrawal.
	for _, d := range m.mem.Disclosures() {
		delete(m.hidden, d.GetName())
	}
	searched := 0
	for n := range m.hidden {
		if strings.Contains(text, n) {
			t.Errorf("%q is private or redacted, and served", n)
		}
		if searched < 20 {
			searched++
			for _, l := range m.letters {
				found, err := m.s.c.API().FindEndorsements(testContext(t), &pb.FindEndorsementsRequest{LetterId: l.GetId(), Query: n})
				if err != nil {
					t.Fatal(err)
				}
				if len(found.GetEntries()) > 0 {
					t.Errorf("searching %q finds it", n)
				}
			}
		}
	}
	t.Logf("model: %d records, %d names of which %d private or redacted and not served; answers %v", size, len(m.names), len(m.hidden), m.outcomes)
}

// rosterAll reads every page of a letter's roster.
func (m *modelRun) rosterAll(letterID string) ([]*pb.RosterEntry, *pb.Counts) {
	var out []*pb.RosterEntry
	token := ""
	for {
		resp, err := m.s.c.API().GetRoster(testContext(m.t), &pb.GetRosterRequest{LetterId: letterID, PageSize: 1000, PageToken: token})
		if err != nil {
			m.t.Fatalf("GetRoster: %v", err)
		}
		out = append(out, resp.GetEntries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, resp.GetCounts()
		}
	}
}
