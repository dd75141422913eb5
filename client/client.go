package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	"github.com/undersigned/undersigned/client/signing"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Config configures a [Client].
type Config struct {
	// Addr is the server's gRPC address, host:port.
	Addr string
	// Token is the organiser token sent with writes; empty for none.
	Token string
	// TLS, when set, dials with TLS; otherwise plaintext.
	TLS *tls.Config
	// LogKey, when set, is the verifier key the log must have: it is pinned
	// for its origin. Otherwise the key pinned in KnownLogs is used, and on
	// first contact the served key is pinned.
	LogKey string
	// KnownLogs is the pin file; empty means no pinning (LogKey, or the
	// served key, is trusted as is).
	KnownLogs string
	// Notice receives messages for the user, such as a first pin; nil
	// discards them.
	Notice io.Writer
	// DialOptions are added to the gRPC dial options.
	DialOptions []grpc.DialOption
	// SizeDir, when set, is a folder that keeps, per log (a file named
	// after its origin), the largest tree size the client verified a
	// checkpoint of: read at Dial, written at Close, and sent with every
	// call in between (see [Client.KnownSize]). Empty means the size is
	// kept only while the client lives.
	SizeDir string
}

// Client talks to one undersigned log, through one server or several
// (the frontends of the Trillian engine, behind a load balancer or gRPC's
// own). Every call carries the largest tree size of the log the client
// has verified a checkpoint of, so that no server answers from a smaller
// log; a call refused with a retry hint (a server catching up, a rate
// limit of reads) is sent again for up to [RetryFor].
type Client struct {
	conn     *grpc.ClientConn
	api      pb.LedgerServiceClient
	token    string
	origin   string
	verifier note.Verifier
	key      string

	// known is the largest tree size known, and verified the largest of
	// a checkpoint verified; sizeDir keeps the latter, and saved is the
	// size last read from or written there.
	known, verified atomic.Uint64
	sizeDir         string
	saved           uint64
}

// Dial connects to a server, fetches the log's description and checks its
// key against cfg.LogKey or the pins of cfg.KnownLogs. It fails with
// [ErrWrongLogKey] when the log's key is not cfg.LogKey, and with
// [ErrKeyChanged] when it is not the pinned one.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	c := &Client{token: cfg.Token, sizeDir: cfg.SizeDir}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(c.unaryInterceptor), grpc.WithChainStreamInterceptor(c.streamInterceptor)}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Addr, err)
	}
	c.conn, c.api = conn, pb.NewLedgerServiceClient(conn)
	info, err := c.api.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("get log info from %s: %w", cfg.Addr, err)
	}
	key, err := c.pinKey(ctx, cfg, info)
	if err != nil {
		conn.Close()
		return nil, err
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("log key: %w", err)
	}
	c.origin, c.verifier, c.key = info.GetOrigin(), newCachingVerifier(v), key
	if cfg.SizeDir != "" {
		if err := c.loadKnownSize(cfg.SizeDir); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) pinKey(ctx context.Context, cfg Config, info *pb.GetLogInfoResponse) (string, error) {
	served := strings.TrimSpace(info.GetVerifierKey())
	notice := cfg.Notice
	if notice == nil {
		notice = io.Discard
	}
	known := KnownLogs{Path: cfg.KnownLogs}
	if cfg.LogKey != "" {
		want := strings.TrimSpace(cfg.LogKey)
		v, err := note.NewVerifier(want)
		if err != nil {
			return "", fmt.Errorf("log key: %w", err)
		}
		if v.Name() != info.GetOrigin() {
			return "", fmt.Errorf("%w: the given key is for log %q, the server is log %q", ErrWrongLogKey, v.Name(), info.GetOrigin())
		}
		if want != served {
			return "", fmt.Errorf("%w: the server's key for %q is another", ErrWrongLogKey, v.Name())
		}
		if cfg.KnownLogs != "" {
			if err := known.Pin(info.GetOrigin(), want); err != nil {
				return "", err
			}
		}
		return want, nil
	}
	if cfg.KnownLogs == "" {
		return served, nil
	}
	pinned, err := known.Lookup(info.GetOrigin())
	if err != nil {
		return "", err
	}
	switch {
	case pinned == "":
		if err := known.Pin(info.GetOrigin(), served); err != nil {
			return "", err
		}
		fmt.Fprintf(notice, "pinned the key of log %s on first contact (%s)\n", info.GetOrigin(), cfg.KnownLogs)
		return served, nil
	case pinned == served:
		return pinned, nil
	}
	// A new key is accepted only in a checkpoint signed by both keys.
	oldV, err1 := note.NewVerifier(pinned)
	newV, err2 := note.NewVerifier(served)
	if err := errors.Join(err1, err2); err != nil {
		return "", fmt.Errorf("%w: %v", ErrKeyChanged, err)
	}
	cp, err := c.api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		return "", fmt.Errorf("%w, and the checkpoint could not be fetched: %v", ErrKeyChanged, err)
	}
	n, err := note.Open(cp.GetCheckpoint(), note.VerifierList(oldV, newV))
	if err != nil || len(n.Sigs) < 2 {
		return "", fmt.Errorf("%w: %s serves a key other than the one pinned in %s, and its checkpoint is not signed by both", ErrKeyChanged, info.GetOrigin(), cfg.KnownLogs)
	}
	if err := known.Pin(info.GetOrigin(), served); err != nil {
		return "", err
	}
	fmt.Fprintf(notice, "the key of log %s changed; the new key is vouched for by the old one and now pinned\n", info.GetOrigin())
	return served, nil
}

// Close closes the connection, and keeps the known tree size in the
// size folder ([Config.SizeDir]).
func (c *Client) Close() error {
	return errors.Join(c.saveKnownSize(), c.conn.Close())
}

// Origin returns the log's origin.
func (c *Client) Origin() string { return c.origin }

// Verifier returns the log's pinned verifier.
func (c *Client) Verifier() note.Verifier { return c.verifier }

// VerifierKey returns the log's pinned verifier key.
func (c *Client) VerifierKey() string { return c.key }

// API returns the raw gRPC client, with the token attached to each call
// made through [Client.Context].
func (c *Client) API() pb.LedgerServiceClient { return c.api }

// Context returns ctx with the client's token attached.
func (c *Client) Context(ctx context.Context) context.Context {
	if c.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// Result is the outcome of a write: a verified receipt.
type Result struct {
	// Receipt is the tlog-proof file, completed with what the client knows.
	Receipt []byte
	// Verified is what the receipt proves.
	Verified *receipt.Verified
	// Duplicate is true when the server returned the receipt of an earlier
	// identical write by the same caller.
	Duplicate bool
}

// completeEndorsement checks that the server's record is the endorsement
// sent (see [CheckReturned]), then completes its receipt.
func (c *Client) completeEndorsement(w *pb.WriteResult, e *Endorsement) (*Result, error) {
	r, err := c.complete(w, e.Disclosure, e.WithdrawalSecret)
	if err != nil {
		return nil, err
	}
	if err := CheckReturned(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}}, r); err != nil {
		return nil, err
	}
	return r, nil
}

// completeRecord completes a receipt and checks that its record is the
// one sent.
func (c *Client) completeRecord(w *pb.WriteResult, sent *pb.Record) (*Result, error) {
	r, err := c.complete(w, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := CheckReturned(sent, r); err != nil {
		return nil, err
	}
	return r, nil
}

// MismatchError is a record the server returned that is not the one sent:
// the server (or someone in between) answered another write. Field names
// the first field that differs.
type MismatchError struct {
	Index uint64
	Field string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("the server returned the record at %d, which differs from the one sent in %s: do not trust this receipt", e.Index, e.Field)
}

// CheckReturned checks that the record of a write's result is the record
// sent, field by field: exactly, or, for a duplicate endorsement (the
// receipt of an earlier endorsement of the same person), in every field
// but the secrets-derived ones (commitment, withdrawal lock) and the
// signatures over them. It returns a [*MismatchError] naming the first
// field that differs.
func CheckReturned(sent *pb.Record, r *Result) error {
	got := r.Verified.Record
	field := ""
	switch {
	case got == nil:
		field = "record"
	case sent.GetEndorsement() != nil && r.Duplicate:
		field = rules.EndorsementDifference(sent.GetEndorsement(), got.GetEndorsement())
	default:
		a, b := proto.CloneOf(sent), proto.CloneOf(got)
		a.Version, a.AcceptedAt, b.Version, b.AcceptedAt = 0, 0, 0, 0
		if !proto.Equal(a, b) {
			field = recordDifference(a, b)
		}
	}
	if field != "" {
		return &MismatchError{Index: r.Verified.Index, Field: field}
	}
	return nil
}

// recordDifference names the first top-level field of the record's kind
// that differs between a and b.
func recordDifference(a, b *pb.Record) string {
	ma, mb := a.ProtoReflect(), b.ProtoReflect()
	oneof := ma.Descriptor().Oneofs().ByName("kind")
	fa, fb := ma.WhichOneof(oneof), mb.WhichOneof(oneof)
	if fa == nil || fb == nil || fa.Number() != fb.Number() {
		return "record kind"
	}
	va, vb := ma.Get(fa).Message(), mb.Get(fb).Message()
	fields := va.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if va.Has(f) != vb.Has(f) || !va.Get(f).Equal(vb.Get(f)) {
			return string(fa.Name()) + "." + string(f.Name())
		}
	}
	return string(fa.Name())
}

// complete adds to the server's receipt the disclosure and the withdrawal
// secret that match its record, then verifies it.
func (c *Client) complete(w *pb.WriteResult, d *pb.Disclosure, secret []byte) (*Result, error) {
	r, err := receipt.Parse(w.GetReceipt())
	if err != nil {
		return nil, fmt.Errorf("the server's receipt: %w", err)
	}
	if r.Extra == nil {
		return nil, errors.New("the server's receipt carries no record")
	}
	if rec, err := records.Decode(r.Extra.GetRecord()); err == nil {
		if e := rec.GetEndorsement(); e != nil {
			if d != nil && r.Extra.GetDisclosure() == nil && records.CheckDisclosure(e, d) == nil {
				r.Extra.Disclosure = d
			}
			if secret != nil && bytes.Equal(records.WithdrawalLock(secret), e.GetWithdrawalLock()) {
				r.Extra.WithdrawalSecret = secret
			}
		}
	}
	v, err := r.Verify(c.verifier)
	if err != nil {
		return nil, fmt.Errorf("the server's receipt: %w", err)
	}
	c.Observe(v.Checkpoint.Size)
	if v.Index != w.GetIndex() {
		return nil, fmt.Errorf("the server's receipt is for index %d, it said %d", v.Index, w.GetIndex())
	}
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return &Result{Receipt: b, Verified: v, Duplicate: w.GetDuplicate()}, nil
}

// LetterDraft is a letter to publish.
type LetterDraft struct {
	ID, Title, Text, Language string
	Policy                    pb.Policy
	// OrganiserKeys are listed in the letter besides the signing key.
	OrganiserKeys []ed25519.PublicKey
	Revises       string
}

// NewLetter builds and signs a letter: the text is canonicalised (NFC, LF
// line endings, no byte order mark), the policy defaults to curated, and
// key is listed first among the organiser keys.
func NewLetter(origin string, d LetterDraft, key ed25519.PrivateKey) *pb.Letter {
	text := records.CanonicalText(d.Text)
	policy := d.Policy
	if policy == pb.Policy_POLICY_UNSPECIFIED {
		policy = pb.Policy_POLICY_CURATED
	}
	keys := [][]byte{key.Public().(ed25519.PublicKey)}
	for _, k := range d.OrganiserKeys {
		if !bytes.Equal(k, keys[0]) {
			keys = append(keys, k)
		}
	}
	l := &pb.Letter{
		Id:            d.ID,
		Title:         records.CanonicalField(d.Title),
		Text:          text,
		TextDigest:    records.TextDigest(text),
		Language:      d.Language,
		Policy:        policy,
		OrganiserKeys: keys,
		Revises:       d.Revises,
	}
	records.SignLetter(key, origin, l)
	return l
}

// PublishLetter publishes a letter built by [NewLetter].
func (c *Client) PublishLetter(ctx context.Context, l *pb.Letter, idempotencyKey string) (*Result, error) {
	resp, err := c.api.PublishLetter(c.Context(ctx), &pb.PublishLetterRequest{Letter: l, IdempotencyKey: idempotencyKey})
	if err != nil {
		return nil, err
	}
	return c.completeRecord(resp.GetResult(), &pb.Record{Kind: &pb.Record_Letter{Letter: l}})
}

// Letter returns a published letter.
func (c *Client) Letter(ctx context.Context, id string) (*pb.Letter, *pb.LetterInfo, error) {
	resp, err := c.api.GetLetter(ctx, &pb.GetLetterRequest{LetterId: id})
	if err != nil {
		return nil, nil, err
	}
	rec, err := records.Decode(resp.GetLetter().GetRecord())
	if err != nil || rec.GetLetter() == nil {
		return nil, nil, fmt.Errorf("the server's letter %q: not a letter record", id)
	}
	if rec.GetLetter().GetId() != id {
		return nil, nil, fmt.Errorf("the server returned letter %q for %q", rec.GetLetter().GetId(), id)
	}
	return rec.GetLetter(), resp.GetLetter(), nil
}

// Signer is a person endorsing a letter (see [signing.Signer]).
type Signer = signing.Signer

// Endorsement is a signed endorsement with what only the client knows (see
// [signing.Endorsement]).
type Endorsement = signing.Endorsement

// NewSecrets returns a random salt and withdrawal secret for a new
// endorsement (see [signing.NewSecrets]).
func NewSecrets() (salt, withdrawalSecret []byte) { return signing.NewSecrets() }

// NewEndorsement builds and signs an endorsement of letter l with fresh
// random secrets (see [signing.NewEndorsement], which the web page's
// WebAssembly calls too).
func NewEndorsement(origin string, l *pb.Letter, s Signer) *Endorsement {
	return signing.NewEndorsement(origin, l, s)
}

// NewEndorsementWithSecrets builds and signs an endorsement of letter l
// with the given salt and withdrawal secret (see
// [signing.NewEndorsementWithSecrets]).
func NewEndorsementWithSecrets(origin string, l *pb.Letter, s Signer, salt, secret []byte) *Endorsement {
	return signing.NewEndorsementWithSecrets(origin, l, s, salt, secret)
}

// Endorse appends an endorsement built by [NewEndorsement] and returns its
// receipt, which carries the disclosure and the withdrawal secret.
func (c *Client) Endorse(ctx context.Context, e *Endorsement, idempotencyKey string) (*Result, error) {
	resp, err := c.api.Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure,
		IdempotencyKey: idempotencyKey, ReaddAfterRedaction: e.ReaddAfterRedaction})
	if err != nil {
		return nil, err
	}
	return c.completeEndorsement(resp.GetResult(), e)
}

// EndorseStream is a bulk import in progress: Send endorsements and Recv
// their outcomes, in the same order.
type EndorseStream struct {
	c      *Client
	stream pb.LedgerService_EndorseStreamClient
	sent   chan *Endorsement
}

// StreamWindow is how many endorsements an [EndorseStream] has in flight.
const StreamWindow = 4096

// EndorseStream opens a bulk import.
func (c *Client) EndorseStream(ctx context.Context) (*EndorseStream, error) {
	s, err := c.api.EndorseStream(c.Context(ctx))
	if err != nil {
		return nil, err
	}
	return &EndorseStream{c: c, stream: s, sent: make(chan *Endorsement, StreamWindow)}, nil
}

// Send sends one endorsement; it blocks while StreamWindow are in flight,
// and fails once the stream's context is done.
func (s *EndorseStream) Send(e *Endorsement, idempotencyKey string) error {
	select {
	case s.sent <- e:
	case <-s.stream.Context().Done():
		return s.stream.Context().Err()
	}
	return s.stream.Send(&pb.EndorseStreamRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure,
		IdempotencyKey: idempotencyKey, ReaddAfterRedaction: e.ReaddAfterRedaction})
}

// CloseSend says that nothing more will be sent.
func (s *EndorseStream) CloseSend() error { return s.stream.CloseSend() }

// Recv returns the outcome of the oldest endorsement sent: its result, or
// the server's rejection. It returns io.EOF when every outcome was read.
func (s *EndorseStream) Recv() (*Result, *pb.Rejection, error) {
	resp, err := s.stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	e := <-s.sent
	if rej := resp.GetRejected(); rej != nil {
		return nil, rej, nil
	}
	r, err := s.c.completeEndorsement(resp.GetWritten(), e)
	return r, nil, err
}
