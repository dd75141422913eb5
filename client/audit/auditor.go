package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Config configures an [Auditor].
type Config struct {
	// Source is where the log is read.
	Source Source
	// VerifierKey is the log's pinned verifier key (note verifier format);
	// its name is the log's origin.
	VerifierKey string
	// State is the audit's state folder (see [OpenState]). A new state is
	// bound to the log's origin and key by its first audit; a state bound
	// to another origin or key is refused with [ErrStateMismatch].
	State *State
	// Logger receives progress and details; nil discards them.
	Logger *slog.Logger
	// Progress, when set, is called as entries are verified, with the
	// number done and the number to do in this audit.
	Progress func(done, total uint64)
	// Workers is how many goroutines check signatures; 0 means GOMAXPROCS.
	Workers int
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// Policy, when set, is the witness policy every checkpoint the audit
	// trusts must meet: a checkpoint without the cosignatures of its
	// quorum is a [RuleWitnesses] violation, and the state stays where it
	// was.
	Policy *policy.Policy
}

// ErrStateMismatch is returned by [New] for a state folder bound to
// another log or another key.
var ErrStateMismatch = errors.New("the audit state is of another log or key")

// Auditor audits one log into one state folder. Its methods are safe for
// one goroutine at a time.
type Auditor struct {
	cfg      Config
	verifier note.Verifier
	origin   string
	st       *State
	log      *slog.Logger
	// dirty is set when an audit changed the state in memory without
	// saving it: the next one reloads it.
	dirty bool
}

// New returns an auditor. It fails if the verifier key is malformed, or
// with [ErrStateMismatch].
func New(cfg Config) (*Auditor, error) {
	if cfg.Source == nil || cfg.State == nil {
		return nil, errors.New("audit: a source and a state are required")
	}
	key := strings.TrimSpace(cfg.VerifierKey)
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("audit: log key: %w", err)
	}
	if o := cfg.State.Origin(); o != "" && o != v.Name() {
		return nil, fmt.Errorf("%w: the state in %s is of log %q, not %q", ErrStateMismatch, cfg.State.Dir(), o, v.Name())
	}
	if k := cfg.State.VerifierKey(); k != "" && k != key {
		return nil, fmt.Errorf("%w: the state in %s was audited with another key for %q", ErrStateMismatch, cfg.State.Dir(), v.Name())
	}
	if cfg.Policy != nil {
		if err := cfg.Policy.AllowsLog(key); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	cfg.VerifierKey = key
	cfg.State.m.origin = v.Name()
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Auditor{cfg: cfg, verifier: v, origin: v.Name(), st: cfg.State, log: lg}, nil
}

// State returns the auditor's state.
func (a *Auditor) State() *State { return a.st }

// Fork is evidence that the log showed two histories: two checkpoints
// signed by its key, neither of which extends the other.
type Fork struct {
	// Trusted is the last checkpoint the auditor trusted; Served is the
	// one that does not extend it. Both are signed notes, verbatim.
	Trusted, Served []byte
	// Reason says how they disagree.
	Reason string
	// Source is where Served came from when it was not the audited
	// source: a mirror or a witness the auditor compared with.
	Source string
	// EvidenceFile is where both were written.
	EvidenceFile string
}

// Report is the outcome of one audit.
type Report struct {
	// Origin is the audited log's origin.
	Origin string
	// From and To are the trusted tree sizes before and after the audit.
	From, To uint64
	// Checkpoint is the trusted checkpoint after the audit.
	Checkpoint []byte
	// Fetched is how many entries were read from the source.
	Fetched uint64
	// Violations are the rules broken, in index order. The state is saved
	// despite violations of the records' rules, which are part of the
	// signed history; it is not after a tree, checkpoint or fork
	// violation.
	Violations []Violation
	// Warnings are what an auditor should look at.
	Warnings []Warning
	// Letters are the changes of each letter in [From, To).
	Letters []LetterChanges
	// Fork is set when the log forked.
	Fork *Fork
	// NotChecked is how many new public endorsements had no disclosure to
	// check because the source serves none.
	NotChecked uint64
	// ForeignNotChecked is how many new entries the source could not say
	// were admitted or foreign, because it serves no foreign marks (see
	// Entry.NoForeignMarks): the rules judged them as any other.
	ForeignNotChecked uint64
	// Pending is how many public endorsements have no disclosure because,
	// the source says, a redaction not yet in the tree removed it.
	Pending int
	// Saved is true when the state was saved.
	Saved bool
}

// OK reports whether the audit found no violation.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// maxFollow is how many times an audit follows a growing log to find the
// redaction that explains a missing disclosure.
const maxFollow = 3

// Run audits the log from the state's trusted checkpoint to the source's
// latest one, and saves the state. It returns an error only when the audit
// could not be done (the source or the state failed); what it found is in
// the report.
func (a *Auditor) Run(ctx context.Context) (*Report, error) {
	if a.dirty {
		if err := a.st.reload(); err != nil {
			return nil, err
		}
		a.dirty = false
	}
	st := a.st
	rep := &Report{Origin: a.origin, From: st.Size(), To: st.Size(), Checkpoint: st.Checkpoint()}
	raw, err := a.cfg.Source.Checkpoint(ctx)
	if err != nil {
		return a.sourceFailed(rep, err)
	}
	cp, err := a.openCheckpoint(raw)
	if err != nil {
		rep.Violations = append(rep.Violations, Violation{Rule: RuleCheckpoint, Message: err.Error()})
		return rep, nil
	}
	if v := a.witnessed(raw, cp.Size); v != nil {
		rep.Violations = append(rep.Violations, *v)
		return rep, nil
	}
	if fork, err := a.compare(ctx, raw, cp); err != nil || fork != nil {
		if fork != nil {
			rep.Fork = fork
			rep.Violations = append(rep.Violations, Violation{Index: cp.Size, Rule: RuleFork,
				Message: fork.Reason + "; both signed checkpoints are in " + fork.EvidenceFile})
			return rep, nil
		}
		return a.sourceFailed(rep, err)
	}
	start := st.Size()
	a.log.InfoContext(ctx, "audit", slog.String("origin", a.origin), slog.Uint64("from", start), slog.Uint64("to", cp.Size))
	ap, stopped, err := a.follow(ctx, rep, start, raw, cp)
	switch {
	case err != nil:
		return a.sourceFailed(rep, err)
	case stopped:
		return rep, nil
	}
	if ap == nil {
		ap = &applier{m: st.m, roundStart: start}
	}
	if err := a.resolveDisclosures(ctx, rep, ap, start); err != nil {
		a.dirty = true
		return a.sourceFailed(rep, err)
	}
	return a.save(ctx, rep, ap)
}

// follow extends the verified state to cp, and, while a disclosure is
// missing, follows the log if it grew, since its redaction may be on its
// way. It reports whether the audit stopped at a violation of the tree;
// an error is the source's.
func (a *Auditor) follow(ctx context.Context, rep *Report, start uint64, raw []byte, cp *log.Checkpoint) (*applier, bool, error) {
	st := a.st
	var ap *applier
	var err error
	for round := 0; ; round++ {
		if cp.Size > st.Size() {
			if ap, err = a.extend(ctx, rep, ap, start, cp); err != nil {
				a.dirty = true
				return nil, false, err
			}
			if !rep.OK() && rep.Violations[0].Rule == RuleTree {
				a.dirty = true
				return nil, true, nil
			}
			st.h.Checkpoint, st.h.Size = string(raw), cp.Size
		}
		if ap == nil || round >= maxFollow || !a.missing(start) {
			break
		}
		// A disclosure is missing: its redaction may be on its way.
		// Follow the log if it grew.
		next, err := a.cfg.Source.Checkpoint(ctx)
		if err != nil {
			break
		}
		ncp, err := a.openCheckpoint(next)
		if err != nil || ncp.Size <= cp.Size || a.witnessed(next, ncp.Size) != nil {
			break
		}
		raw, cp = next, ncp
	}
	return ap, false, nil
}

// save records what the audit found in the state, and saves it.
func (a *Auditor) save(ctx context.Context, rep *Report, ap *applier) (*Report, error) {
	st := a.st
	slices.SortStableFunc(rep.Violations, func(x, y Violation) int {
		switch {
		case x.Index < y.Index:
			return -1
		case x.Index > y.Index:
			return 1
		}
		return 0
	})
	st.h.Origin, st.h.VerifierKey = a.origin, a.cfg.VerifierKey
	st.h.Violations = append(st.h.Violations, rep.Violations...)
	st.h.AuditedAt = a.cfg.Now().UTC()
	if err := st.save(); err != nil {
		a.dirty = true
		return nil, err
	}
	if err := st.erase(ap.erase); err != nil {
		return nil, err
	}
	rep.Saved = true
	rep.To, rep.Checkpoint = st.Size(), st.Checkpoint()
	rep.Letters = st.summarise(rep.From, rep.To)
	rep.Pending = len(st.h.Pending)
	a.log.InfoContext(ctx, "audit saved", slog.Uint64("size", rep.To), slog.Int("violations", len(rep.Violations)), slog.Int("warnings", len(rep.Warnings)))
	return rep, nil
}

// sourceFailed ends an audit whose source failed: a resource that breaks
// the format ([*SourceError]) is a violation, the state not advanced;
// anything else is an error.
func (a *Auditor) sourceFailed(rep *Report, err error) (*Report, error) {
	v, ok := sourceViolation(err)
	if !ok {
		return nil, err
	}
	rep.Violations = append(rep.Violations, *v)
	return rep, nil
}

func (a *Auditor) openCheckpoint(raw []byte) (*log.Checkpoint, error) {
	cp, _, _, err := log.ParseCheckpoint(raw, a.origin, a.verifier)
	if err != nil {
		return nil, fmt.Errorf("the served checkpoint does not verify with the pinned key of %s: %w", a.origin, err)
	}
	return cp, nil
}

// trustedRoot returns the root of the trusted checkpoint.
func (a *Auditor) trustedRoot() ([]byte, error) {
	if a.st.Size() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	cp, err := a.openCheckpoint(a.st.Checkpoint())
	if err != nil {
		return nil, fmt.Errorf("the trusted checkpoint: %w", err)
	}
	return cp.Hash, nil
}

// compare checks a served checkpoint against the trusted one: it must be
// at least as large and extend it. A checkpoint that does not is a fork,
// whose evidence compare writes.
func (a *Auditor) compare(ctx context.Context, raw []byte, cp *log.Checkpoint) (*Fork, error) {
	old := a.st.Size()
	if old == 0 {
		return nil, nil
	}
	root, err := a.trustedRoot()
	if err != nil {
		return nil, err
	}
	var reason string
	var hashes [][]byte
	switch {
	case cp.Size < old:
		reason = fmt.Sprintf("the log went back: it serves a checkpoint of size %d after one of size %d", cp.Size, old)
	case cp.Size == old && !bytes.Equal(cp.Hash, root):
		reason = fmt.Sprintf("two signed checkpoints of size %d have different roots", old)
	case cp.Size > old:
		hashes, err = a.cfg.Source.ConsistencyProof(ctx, old, cp.Size)
		if err != nil {
			return nil, err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, cp.Size, hashes, root, cp.Hash); err != nil {
			reason = fmt.Sprintf("the checkpoint of size %d is not consistent with the trusted one of size %d: %v", cp.Size, old, err)
		}
	}
	if reason == "" {
		return nil, nil
	}
	f := &Fork{Trusted: a.st.Checkpoint(), Served: raw, Reason: reason}
	path, err := a.writeEvidence(f, hashes)
	if err != nil {
		return nil, err
	}
	f.EvidenceFile = path
	return f, nil
}

func (a *Auditor) writeEvidence(f *Fork, hashes [][]byte) (string, error) {
	var b strings.Builder
	now := a.cfg.Now().UTC()
	fmt.Fprintf(&b, "undersigned audit: evidence that the log %s showed two histories\n\n", a.origin)
	fmt.Fprintf(&b, "found:  %s\nreason: %s\nlog key (note verifier): %s\n\n", now.Format(time.RFC3339), f.Reason, a.cfg.VerifierKey)
	b.WriteString("Both checkpoints below are signed by the log's key. An honest log never signs\n")
	b.WriteString("a checkpoint that does not extend every one it signed before: anyone can check\n")
	b.WriteString("the two signatures with the key above, and that neither tree extends the other\n")
	b.WriteString("(same size and different roots, a smaller size, or no valid consistency proof).\n\n")
	b.WriteString("--- the checkpoint this auditor trusted ---\n")
	b.Write(f.Trusted)
	if f.Source != "" {
		fmt.Fprintf(&b, "--- the checkpoint %s served ---\n", f.Source)
	} else {
		b.WriteString("--- the checkpoint the log served next ---\n")
	}
	b.Write(f.Served)
	if len(hashes) > 0 {
		b.WriteString("--- the consistency proof it served, which does not verify ---\n")
		for _, h := range hashes {
			fmt.Fprintf(&b, "%x\n", h)
		}
	}
	path := filepath.Join(a.st.Dir(), fmt.Sprintf("fork-%s.txt", now.Format("20060102T150405Z")))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("write the evidence of a fork: %w", err)
	}
	return path, nil
}

// batchSize is how many entries an audit decodes and checks at once, and
// maxBatchBytes how many bytes of records at most: the pipeline holds a
// dozen batches, which must stay small whatever a source serves.
const (
	batchSize     = 2048
	maxBatchBytes = 4 << 20
)

// extend fetches, checks and mirrors the entries from the state's size to
// cp's, and checks the tree against cp.
func (a *Auditor) extend(ctx context.Context, rep *Report, ap *applier, start uint64, cp *log.Checkpoint) (*applier, error) {
	st := a.st
	from := st.Size()
	if ap == nil {
		ap = &applier{m: st.m, roundStart: start}
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng, err := rf.NewRange(0, from, st.h.Range)
	if err != nil {
		return nil, fmt.Errorf("the state's compact range: %w", err)
	}
	base := rng.End()
	var leaves [][32]byte
	p := newPipeline(a.cfg.Workers)
	total := cp.Size - from
	var done uint64
	var frame []byte
	err = p.run(ctx, func(emit func([]Entry) error) error {
		return a.cfg.Source.Entries(ctx, from, cp.Size, emit)
	}, func(items []*item) error {
		for _, it := range items {
			if want := st.m.size(); it.entry.Index != want {
				return fmt.Errorf("the source sent entry %d where %d was due", it.entry.Index, want)
			}
			var off int64
			var err error
			if frame, off, err = st.writeFrame(it, frame); err != nil {
				return err
			}
			ap.apply(it, off)
			if err := rng.Append(it.leaf[:], nil); err != nil {
				return err
			}
			leaves = append(leaves, it.leaf)
			if it.disc == discNotChecked {
				rep.NotChecked++
			}
			if it.entry.NoForeignMarks {
				rep.ForeignNotChecked++
			}
		}
		done += uint64(len(items))
		rep.Fetched += uint64(len(items))
		if a.cfg.Progress != nil {
			a.cfg.Progress(done, total)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.Violations = append(rep.Violations, ap.violations...)
	rep.Violations = append(rep.Violations, p.violations...)
	rep.Warnings = append(rep.Warnings, ap.warnings...)
	ap.violations, ap.warnings = nil, nil
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, cp.Hash) {
		v := a.locate(ctx, &rf, st.h.Range, base, leaves, cp)
		rep.Violations = append([]Violation{v}, rep.Violations...)
		return ap, nil
	}
	st.h.Range = rng.Hashes()
	return ap, nil
}

// locate finds the first entry that is not the leaf of the signed tree,
// by asking the source for consistency proofs from prefixes of the new
// entries to the checkpoint.
func (a *Auditor) locate(ctx context.Context, rf *compact.RangeFactory, start [][]byte, base uint64, leaves [][32]byte, cp *log.Checkpoint) Violation {
	rootAt := func(m uint64) ([]byte, error) {
		r, err := rf.NewRange(0, base, start)
		if err != nil {
			return nil, err
		}
		for _, l := range leaves[:m-base] {
			if err := r.Append(l[:], nil); err != nil {
				return nil, err
			}
		}
		return r.GetRootHash(nil)
	}
	good := func(m uint64) (bool, error) {
		if m == 0 || m == base {
			return true, nil
		}
		root, err := rootAt(m)
		if err != nil {
			return false, err
		}
		hashes, err := a.cfg.Source.ConsistencyProof(ctx, m, cp.Size)
		if err != nil {
			return false, err
		}
		return proof.VerifyConsistency(rfc6962.DefaultHasher, m, cp.Size, hashes, root, cp.Hash) == nil, nil
	}
	// The largest good prefix: the entry after it is the first bad one.
	lo, hi := base, cp.Size // lo good, hi bad
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := good(mid)
		if err != nil {
			return Violation{Index: base, Rule: RuleTree, Message: fmt.Sprintf(
				"the entries from %d to %d do not make the tree of the signed checkpoint (size %d), and the source could not prove which is wrong: %v", base, cp.Size-1, cp.Size, err)}
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return Violation{Index: lo, Rule: RuleTree, Message: fmt.Sprintf(
		"the entry served is not the leaf of the signed tree (checkpoint of size %d): the stored entry was altered or replaced", cp.Size)}
}

// missing reports whether a public endorsement added since start has no
// disclosure and no redaction yet.
func (a *Auditor) missing(start uint64) bool {
	for i := range a.st.m.endorsements {
		e := &a.st.m.endorsements[len(a.st.m.endorsements)-1-i]
		if e.index < start {
			return false
		}
		if e.disc == discMissing && e.redactedBy < 0 {
			return true
		}
	}
	return false
}

// maxRecheck bounds how many withheld disclosures an audit asks for again.
const maxRecheck = 1000

// resolveDisclosures decides, once every redaction in the tree is known,
// which public endorsements are withheld, and asks the source again for the
// disclosures of earlier endorsements that were withheld or redacted.
func (a *Auditor) resolveDisclosures(ctx context.Context, rep *Report, ap *applier, start uint64) error {
	m := a.st.m
	size := a.st.Size()
	pendingBefore := map[uint64]bool{}
	for _, i := range a.st.h.Pending {
		pendingBefore[i] = true
	}
	var pending, recheck []uint64
	for i := range m.endorsements {
		e := &m.endorsements[i]
		switch {
		case e.redactedBy >= 0 || e.visibility != pb.Visibility_VISIBILITY_PUBLIC:
		case e.disc == discMissing:
			e.disc = discWithheld
			rep.Violations = append(rep.Violations, Violation{Index: e.index, Rule: RuleWithheld,
				Message: "the public endorsement has no disclosure that opens its commitment, and no redaction"})
		case e.disc == discPending && (e.index >= start && !pendingBefore[e.index]):
			pending = append(pending, e.index)
		case e.disc == discPending:
			e.disc = discWithheld
			rep.Violations = append(rep.Violations, Violation{Index: e.index, Rule: RuleWithheld,
				Message: "the source said its disclosure was redacted, but no redaction followed in the log"})
		case e.disc == discWithheld && e.index < start && len(recheck) < maxRecheck:
			recheck = append(recheck, e.index)
		}
	}
	a.st.h.Pending = pending
	ask := append(slices.Clone(recheck), ap.refetch...)
	ap.refetch = nil
	if len(ask) == 0 {
		return nil
	}
	served, err := a.cfg.Source.Disclosures(ctx, size, ask)
	if errors.Is(err, ErrNoDisclosures) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, i := range recheck {
		d := served[i]
		e := m.endorsementAt(i)
		if d == nil || e == nil {
			continue
		}
		rec, err := a.recordOf(i)
		if err != nil || records.CheckDisclosure(rec, d) != nil {
			continue
		}
		e.disc, e.disclosure = discServed, d
		a.st.h.Late = append(a.st.h.Late, lateDisclosure{Index: i, Salt: d.GetSalt(), Name: d.GetName(), Affiliation: d.GetAffiliation(), Country: d.GetCountry()})
		rep.Warnings = append(rep.Warnings, Warning{Index: i, Message: "the disclosure withheld before is served now"})
	}
	for _, i := range ask[len(recheck):] {
		if served[i] != nil {
			rep.Violations = append(rep.Violations, Violation{Index: i, Rule: RuleRedactionIgnored,
				Message: fmt.Sprintf("its disclosure is still served, though it was redacted at index %d", m.endorsementAt(i).redactedBy)})
		}
	}
	// Late disclosures of redacted endorsements are gone too.
	a.st.h.Late = slices.DeleteFunc(a.st.h.Late, func(d lateDisclosure) bool {
		e := m.endorsementAt(d.Index)
		return e == nil || e.redactedBy >= 0
	})
	return nil
}

// recordOf reads the endorsement at index back from the mirror.
func (a *Auditor) recordOf(index uint64) (*pb.Endorsement, error) {
	rec, err := a.st.record(index)
	if err != nil {
		return nil, err
	}
	if rec.GetEndorsement() == nil {
		return nil, fmt.Errorf("entry %d is not an endorsement", index)
	}
	return rec.GetEndorsement(), nil
}

// pipeline decodes entries in parallel, applies them in order, and checks
// their signatures in parallel, so that fetching, decoding and checking
// overlap.
type pipeline struct {
	workers    int
	mu         sync.Mutex
	violations []Violation
}

func newPipeline(workers int) *pipeline { return &pipeline{workers: workers} }

// parallel calls f(i) for i in [0, n) on the pipeline's workers.
func (p *pipeline) parallel(n int, f func(i int)) {
	const chunk = 16
	if p.workers == 1 || n <= chunk {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(chunk)) - chunk
				if i >= n {
					return
				}
				for j := i; j < min(i+chunk, n); j++ {
					f(j)
				}
			}
		}()
	}
	wg.Wait()
}

// run feeds the entries that fetch emits through decoding, apply (in
// order, on the calling goroutine) and checking.
func (p *pipeline) run(ctx context.Context, fetch func(emit func([]Entry) error) error, apply func([]*item) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	raw := make(chan []Entry, 4)
	decoded := make(chan []*item, 4)
	checked := make(chan []*item, 4)
	errs := make(chan error, 3)
	go func() {
		defer close(raw)
		if err := p.fetch(ctx, fetch, raw); err != nil {
			errs <- err
			cancel()
		}
	}()
	go func() {
		defer close(decoded)
		p.decode(ctx, raw, decoded)
	}()
	checkDone := make(chan struct{})
	go func() {
		defer close(checkDone)
		p.check(checked)
	}()
	var applyErr error
	for items := range decoded {
		if applyErr == nil {
			if applyErr = apply(items); applyErr != nil {
				cancel()
			}
		}
		if applyErr == nil {
			checked <- items
		}
	}
	close(checked)
	<-checkDone
	if applyErr != nil {
		return applyErr
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	return ctx.Err()
}

// fetch sends what fetch emits to raw, in batches of batchSize entries or
// maxBatchBytes of records, whichever comes first.
func (p *pipeline) fetch(ctx context.Context, fetch func(emit func([]Entry) error) error, raw chan<- []Entry) error {
	var buf []Entry
	size := 0
	err := fetch(func(b []Entry) error {
		buf = append(buf, b...)
		for _, e := range b {
			size += len(e.Record)
		}
		if len(buf) < batchSize && size < maxBatchBytes {
			return nil
		}
		select {
		case raw <- buf:
		case <-ctx.Done():
			return ctx.Err()
		}
		buf, size = nil, 0
		return nil
	})
	if err == nil && len(buf) > 0 {
		select {
		case raw <- buf:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return err
}

// decode decodes the batches of raw, in parallel within each, and sends
// them on in order.
func (p *pipeline) decode(ctx context.Context, raw <-chan []Entry, decoded chan<- []*item) {
	for b := range raw {
		items := make([]*item, len(b))
		p.parallel(len(b), func(i int) {
			items[i] = &item{entry: b[i]}
			items[i].decode()
		})
		select {
		case decoded <- items:
		case <-ctx.Done():
			return
		}
	}
}

// check runs the checks of the applied items, in parallel within each
// batch, and keeps the violations they find.
func (p *pipeline) check(checked <-chan []*item) {
	for items := range checked {
		results := make([]*Violation, len(items))
		p.parallel(len(items), func(i int) {
			if items[i].check != nil {
				results[i] = items[i].check()
			}
		})
		p.mu.Lock()
		for _, v := range results {
			if v != nil {
				p.violations = append(p.violations, *v)
			}
		}
		p.mu.Unlock()
	}
}

// CheckCheckpoint checks that the audited log still holds the tree of the
// signed checkpoint raw, such as the one of a delivery bundle: it must
// verify with the log's key, and the trusted checkpoint must extend it
// (proved with a consistency proof from the source). It returns a
// [RuleCheckpoint] or [RuleFork] violation when it does not, having written
// the evidence of a fork, and an error when the check could not be made.
// Call it after [Auditor.Run].
func (a *Auditor) CheckCheckpoint(ctx context.Context, raw []byte) (*Violation, error) {
	cp, err := a.openCheckpoint(raw)
	if err != nil {
		return &Violation{Rule: RuleCheckpoint, Message: err.Error()}, nil
	}
	size := a.st.Size()
	root, err := a.trustedRoot()
	if err != nil {
		return nil, err
	}
	var reason string
	var hashes [][]byte
	switch {
	case cp.Size > size:
		reason = fmt.Sprintf("the given checkpoint (size %d) is larger than the latest the log serves (size %d): the log went back", cp.Size, size)
	case cp.Size == size && !bytes.Equal(cp.Hash, root):
		reason = fmt.Sprintf("two signed checkpoints of size %d have different roots", size)
	case cp.Size < size && cp.Size > 0:
		if hashes, err = a.cfg.Source.ConsistencyProof(ctx, cp.Size, size); err != nil {
			return nil, err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, size, hashes, cp.Hash, root); err != nil {
			reason = fmt.Sprintf("the trusted checkpoint (size %d) does not extend the given one (size %d): %v", size, cp.Size, err)
		}
	}
	if reason == "" {
		return nil, nil
	}
	f := &Fork{Trusted: raw, Served: a.st.Checkpoint(), Reason: reason}
	path, err := a.writeEvidence(f, hashes)
	if err != nil {
		return nil, err
	}
	return &Violation{Index: cp.Size, Rule: RuleFork, Message: reason + "; both signed checkpoints are in " + path}, nil
}
