package ledger

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Caller is who makes a write.
type Caller struct {
	// Token is the caller's API token, or nil.
	Token *Token
	// Limit is called before a write that needs no token (a signer-signed
	// endorsement of an open letter, a signer-authorised withdrawal or
	// redaction) is admitted, with the kind of write, whose limits are
	// its own; an error refuses it. Nil allows every such write.
	Limit func(kind OpenWrite, letterID string) error
}

// OpenWrite is a kind of write that needs no token; each kind is
// rate-limited apart, so that a flood of one does not delay the other.
type OpenWrite int

// The writes that need no token.
const (
	// OpenEndorsement is a signer-signed endorsement of an open letter.
	OpenEndorsement OpenWrite = iota
	// SignerAction is a withdrawal or redaction authorised by the signer
	// (their signature, or their revealed withdrawal secret).
	SignerAction
)

func (c Caller) limit(kind OpenWrite, letterID string) error {
	if c.Limit == nil {
		return nil
	}
	return c.Limit(kind, letterID)
}

// mayWrite reports whether the caller's token covers letterID.
func (c Caller) mayWrite(letterID string) error {
	if c.Token == nil {
		return ErrUnauthenticated
	}
	if len(c.Token.Letters) > 0 && !slices.Contains(c.Token.Letters, letterID) {
		return fmt.Errorf("%w %q", ErrPermissionDenied, letterID)
	}
	return nil
}

func (c Caller) principal() string {
	if c.Token == nil {
		return ""
	}
	return "token:" + c.Token.ID
}

// WriteResult is the outcome of a write: its receipt.
type WriteResult struct {
	// Receipt is the tlog-proof file; its extra holds the record and, when
	// the ledger keeps it, the public disclosure.
	Receipt []byte
	// Index is the record's index.
	Index uint64
	// Duplicate is true when the write repeated an earlier one by the same
	// caller.
	Duplicate bool
}

// MaxIdempotencyKey is the longest idempotency key, in bytes.
const MaxIdempotencyKey = 128

func checkIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey {
		return &records.FieldError{Field: "idempotency_key", Rule: fmt.Sprintf("must be at most %d bytes", MaxIdempotencyKey)}
	}
	return nil
}

func unknownFields(field string, m proto.Message) error {
	if m != nil && records.HasUnknownFields(m) {
		return &records.FieldError{Field: field, Rule: "must not hold fields unknown to this server"}
	}
	return nil
}

// PublishLetter appends a letter.
func (l *Ledger) PublishLetter(ctx context.Context, c Caller, lt *pb.Letter, idempotencyKey string) (*WriteResult, error) {
	if err := unknownFields("letter", lt); err != nil {
		return nil, err
	}
	if err := check(func() error { return records.CheckLetter(l.origin, lt) }); err != nil {
		return nil, err
	}
	if err := c.mayWrite(lt.GetId()); err != nil {
		return nil, err
	}
	// A letter id is unique in the log: a repeat of the same letter is
	// found by its id, so the idempotency key adds nothing.
	if err := checkIdempotencyKey(idempotencyKey); err != nil {
		return nil, err
	}
	return l.write(ctx, &write{
		principal: c.principal(),
		kind:      KindLetter,
		letterID:  lt.GetId(),
		input:     rules.Input{Record: &pb.Record{Kind: &pb.Record_Letter{Letter: proto.CloneOf(lt)}}},
	})
}

// EndorseOptions is what the writer of an endorsement says beside it.
type EndorseOptions struct {
	// IdempotencyKey is the writer's key for the person (an import's id
	// column): two endorsements with different keys are two people, even
	// with the same name.
	IdempotencyKey string
	// ReaddAfterRedaction asks, explicitly, to add a person whom a
	// redaction removed from the letter. It needs an organiser token.
	ReaddAfterRedaction bool
}

// Endorse appends an endorsement. A caller without a token may endorse an
// open letter with a valid signer signature.
func (l *Ledger) Endorse(ctx context.Context, c Caller, e *pb.Endorsement, d *pb.Disclosure, opts EndorseOptions) (*WriteResult, error) {
	w, err := l.prepareEndorsement(ctx, c, e, d, opts)
	if err != nil {
		return nil, err
	}
	return l.write(ctx, w)
}

func (l *Ledger) prepareEndorsement(ctx context.Context, c Caller, e *pb.Endorsement, d *pb.Disclosure, opts EndorseOptions) (*write, error) {
	if err := unknownFields("endorsement", e); err != nil {
		return nil, err
	}
	if err := unknownFields("disclosure", d); err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &records.FieldError{Field: "endorsement", Rule: "is required"}
	}
	if err := records.CheckLetterID("endorsement.letter_id", e.GetLetterId()); err != nil {
		return nil, err
	}
	ls, err := l.letter(ctx, e.GetLetterId())
	if err != nil {
		return nil, err
	}
	if ls == nil {
		return nil, &records.FieldError{Field: "endorsement.letter_id", Rule: "must name a letter in the log"}
	}
	if err := check(func() error { return records.CheckEndorsement(l.origin, ls.letter, e) }); err != nil {
		return nil, err
	}
	if err := records.CheckDisclosure(e, d); err != nil {
		return nil, err
	}
	principal := c.principal()
	if err := c.mayWrite(e.GetLetterId()); err != nil {
		if c.Token != nil || ls.letter.GetPolicy() != pb.Policy_POLICY_OPEN || e.GetSigner() == nil {
			return nil, err
		}
		if err := c.limit(OpenEndorsement, e.GetLetterId()); err != nil {
			return nil, err
		}
		principal = "signer:" + base64.StdEncoding.EncodeToString(e.GetSigner().GetPublicKey())
	}
	if err := checkIdempotencyKey(opts.IdempotencyKey); err != nil {
		return nil, err
	}
	if opts.ReaddAfterRedaction && c.Token == nil {
		return nil, fmt.Errorf("%w: readd_after_redaction needs an organiser token", ErrPermissionDenied)
	}
	return &write{
		principal: principal,
		kind:      KindEndorsement,
		letterID:  e.GetLetterId(),
		input: rules.Input{
			Record:              &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: proto.CloneOf(e)}},
			Disclosure:          proto.CloneOf(d),
			IdempotencyKey:      opts.IdempotencyKey,
			ReaddAfterRedaction: opts.ReaddAfterRedaction,
		},
		folded: names.Fold(d.GetName()),
	}, nil
}

// Withdraw appends a withdrawal. A caller without a token may withdraw with
// the signer's signature or withdrawal secret.
func (l *Ledger) Withdraw(ctx context.Context, c Caller, wd *pb.Withdrawal) (*WriteResult, error) {
	if err := unknownFields("withdrawal", wd); err != nil {
		return nil, err
	}
	if wd == nil {
		return nil, &records.FieldError{Field: "withdrawal", Rule: "is required"}
	}
	return l.action(ctx, c, KindWithdrawal, wd.GetTargetIndex(),
		&pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: proto.CloneOf(wd)}},
		func(t *actionTarget) (records.Authority, error) {
			return records.CheckWithdrawal(l.origin, t.Endorsement, t.LeafHash, wd)
		})
}

// Redact appends a redaction and purges the disclosure. A caller without a
// token may redact with the signer's signature or withdrawal secret.
func (l *Ledger) Redact(ctx context.Context, c Caller, rd *pb.Redaction) (*WriteResult, error) {
	if err := unknownFields("redaction", rd); err != nil {
		return nil, err
	}
	if rd == nil {
		return nil, &records.FieldError{Field: "redaction", Rule: "is required"}
	}
	res, err := l.action(ctx, c, KindRedaction, rd.GetTargetIndex(),
		&pb.Record{Kind: &pb.Record_Redaction{Redaction: proto.CloneOf(rd)}},
		func(t *actionTarget) (records.Authority, error) {
			return records.CheckRedaction(l.origin, t.Endorsement, t.LeafHash, rd)
		})
	if err != nil {
		return nil, err
	}
	if err := l.cfg.Store.Purge(ctx); err != nil {
		return nil, unavailable("the redaction is in the log but purging the store failed: %v", err)
	}
	return res, nil
}

// action writes a withdrawal or a redaction of the endorsement at index,
// once authorise has said who authorised it.
func (l *Ledger) action(ctx context.Context, c Caller, kind Kind, index uint64, rec *pb.Record,
	authorise func(*actionTarget) (records.Authority, error)) (*WriteResult, error) {
	name := "withdrawal"
	if kind == KindRedaction {
		name = "redaction"
	}
	target, err := l.actionTarget(ctx, name, index)
	if err != nil {
		return nil, err
	}
	var auth records.Authority
	err = check(func() (err error) {
		auth, err = authorise(target)
		return err
	})
	if err != nil {
		return nil, err
	}
	w := &write{kind: kind, letterID: target.LetterID, input: rules.Input{Record: rec}}
	if w.principal, err = actionPrincipal(c, auth, target); err != nil {
		return nil, err
	}
	return l.write(ctx, w)
}

type actionTarget struct {
	*Entry
	Endorsement *pb.Endorsement
	index       uint64
}

func (l *Ledger) actionTarget(ctx context.Context, field string, index uint64) (*actionTarget, error) {
	e, err := l.cfg.Store.EntryByIndex(ctx, index)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Kind != KindEndorsement {
		return nil, &records.FieldError{Field: field + ".target_index", Rule: "must be the index of an endorsement"}
	}
	rec, err := records.Decode(e.Record)
	if err != nil {
		return nil, fmt.Errorf("target %d: %w", index, err)
	}
	return &actionTarget{Entry: e, Endorsement: rec.GetEndorsement(), index: index}, nil
}

// actionPrincipal decides whether the caller may make an action with
// authority auth, and under which principal.
func actionPrincipal(c Caller, auth records.Authority, t *actionTarget) (string, error) {
	if c.Token == nil && (auth == records.AuthoritySigner || auth == records.AuthoritySecret) {
		if err := c.limit(SignerAction, t.LetterID); err != nil {
			return "", err
		}
		if auth == records.AuthoritySigner {
			return "signer:" + base64.StdEncoding.EncodeToString(t.Endorsement.GetSigner().GetPublicKey()), nil
		}
		return "secret:" + hex.EncodeToString(t.Endorsement.GetWithdrawalLock()), nil
	}
	if err := c.mayWrite(t.LetterID); err != nil {
		return "", err
	}
	return c.principal(), nil
}

// SetLetterStatus appends a letter status.
func (l *Ledger) SetLetterStatus(ctx context.Context, c Caller, s *pb.LetterStatus) (*WriteResult, error) {
	if err := unknownFields("status", s); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, &records.FieldError{Field: "status", Rule: "is required"}
	}
	if err := records.CheckLetterID("status.letter_id", s.GetLetterId()); err != nil {
		return nil, err
	}
	ls, err := l.letter(ctx, s.GetLetterId())
	if err != nil {
		return nil, err
	}
	if ls == nil {
		return nil, &records.FieldError{Field: "status.letter_id", Rule: "must name a letter in the log"}
	}
	if err := check(func() error { return records.CheckStatus(l.origin, ls.letter, s) }); err != nil {
		return nil, err
	}
	if err := c.mayWrite(s.GetLetterId()); err != nil {
		return nil, err
	}
	return l.write(ctx, &write{
		principal: c.principal(),
		kind:      KindStatus,
		letterID:  s.GetLetterId(),
		input:     rules.Input{Record: &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: proto.CloneOf(s)}}},
	})
}

// ChangeOrganiser appends an organiser change: a key added to a letter's
// organiser keys, or revoked. It needs a token with rights to the letter,
// and the signature of another organiser key valid for the letter at the
// change's index.
func (l *Ledger) ChangeOrganiser(ctx context.Context, c Caller, oc *pb.OrganiserChange) (*WriteResult, error) {
	if err := unknownFields("organiser_change", oc); err != nil {
		return nil, err
	}
	if err := check(func() error { return records.CheckOrganiserChange(l.origin, oc) }); err != nil {
		return nil, err
	}
	if err := c.mayWrite(oc.GetLetterId()); err != nil {
		return nil, err
	}
	return l.write(ctx, &write{
		principal: c.principal(),
		kind:      KindOrganiserChange,
		letterID:  oc.GetLetterId(),
		input:     rules.Input{Record: &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: proto.CloneOf(oc)}}},
	})
}

// write admits w, waits for its index and a checkpoint that includes it,
// and builds its receipt.
func (l *Ledger) write(ctx context.Context, w *write) (*WriteResult, error) {
	t := time.Now()
	a, err := l.submit(ctx, w)
	if err != nil {
		return nil, err
	}
	t = l.cfg.Metrics.stage(stageAdmit, t)
	index := a.index
	if a.pending != nil {
		select {
		case <-a.pending.done:
		case <-ctx.Done():
			return nil, unavailable("gave up waiting for the log: %v; the write is admitted and will appear, and a retry returns it", ctx.Err())
		}
		if a.pending.err != nil {
			return nil, a.pending.err
		}
		index = a.pending.index
	}
	t = l.cfg.Metrics.stage(stageIndex, t)
	var disclosure *pb.Disclosure
	switch {
	case w.kind == KindEndorsement && !a.duplicate && w.input.Record.GetEndorsement().GetVisibility() == pb.Visibility_VISIBILITY_PUBLIC:
		disclosure = w.input.Disclosure
	case w.kind == KindEndorsement && a.duplicate:
		rows, err := l.cfg.Store.Disclosures(ctx, index, index+1)
		if err != nil {
			return nil, err
		}
		if len(rows) == 1 {
			disclosure = rows[0].Disclosure
		}
	}
	r, err := l.receipt(ctx, index, a.record, disclosure, t)
	if err != nil {
		return nil, err
	}
	return &WriteResult{Receipt: r, Index: index, Duplicate: a.duplicate}, nil
}

// Receipt builds the receipt of the record at index: it waits for a
// published checkpoint that includes it and proves the inclusion.
func (l *Ledger) Receipt(ctx context.Context, index uint64, record []byte, d *pb.Disclosure) ([]byte, error) {
	return l.receipt(ctx, index, record, d, time.Time{})
}

// receipt is Receipt, timing its stages from indexed, when the write got
// its index (zero: not timed).
func (l *Ledger) receipt(ctx context.Context, index uint64, record []byte, d *pb.Disclosure, indexed time.Time) ([]byte, error) {
	cp, err := l.cfg.Log.AwaitCheckpoint(ctx, index)
	if err != nil {
		// The log's error stays in the chain: a log that publishes once
		// witnesses cosign says which did not, in words callers may see.
		return nil, fmt.Errorf("%w: waiting for a checkpoint: %w; the write is in the log, and a retry returns it", ErrUnavailable, err)
	}
	var published time.Time
	if !indexed.IsZero() {
		published = l.cfg.Metrics.stage(stageCheckpoint, indexed)
	}
	if err := l.Stopped(); err != nil {
		return nil, unavailable("%v", err)
	}
	proof, err := l.cfg.Log.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, cp.Size, err)
	}
	if err := l.checkInclusion(ctx, index, cp.Size, leafHash(record), proof, cp); err != nil {
		return nil, err
	}
	r := &receipt.Receipt{
		Index:      index,
		Proof:      proof,
		Checkpoint: cp.Raw,
		Extra:      &pb.ReceiptExtra{Record: record, Disclosure: d},
	}
	b, err := r.Marshal()
	if !indexed.IsZero() {
		l.cfg.Metrics.stage(stageReceipt, published)
	}
	return b, err
}
