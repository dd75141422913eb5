package trillian

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	trillianpb "github.com/google/trillian"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/undersigned/undersigned/client/receipt"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// RecoverConfig configures [Recover].
type RecoverConfig struct {
	// Folder is the log's data folder: its key and secrets.
	Folder *datadir.Folder
	// StateDirs are the state folders of the frontends (see
	// Config.StateDir; the data folder when empty): the largest
	// checkpoint their histories hold is the size the log comes back to.
	StateDirs []string
	// Client reaches trillian_log_server, TreeID is the tree.
	Client trillianpb.TrillianLogClient
	TreeID int64
	// Store is undersigned's database.
	Store *pgstore.Store
	// Receipts are receipt files, or folders of them (an import's
	// receipts folder), to find there the entries that neither Trillian
	// nor the database holds any more.
	Receipts []string
	// Window is how many entries are queued before Trillian is waited for
	// and checked; 0 means 256. Trillian orders the entries it is given by
	// the time it received them: the window goes to one log server, in
	// order, and each is checked at its index before the next window.
	Window int
	// Logger receives the progress; nil discards it.
	Logger *slog.Logger
}

// RecoverResult says what [Recover] did.
type RecoverResult struct {
	// TrillianSize is the size of Trillian's tree before, and Size after.
	TrillianSize, Size uint64
	// Signed is the checkpoint the log came back to, the largest the key
	// signed that the histories or the database hold.
	Signed []byte
	// FromStore and FromReceipts count the entries queued again, by where
	// they were found; Readmitted those the database had lost, admitted
	// again (from Trillian or the receipts).
	FromStore, FromReceipts, Readmitted int
	// Foreign counts the entries Trillian holds that the database lacked
	// and no server would have admitted: recorded as foreign (see
	// ledger.ForeignLeaf).
	Foreign int
}

// Recover brings a log back to the checkpoint its key signed after a
// restore of its databases from a copy older than that checkpoint, or of
// one database older than the other. Every frontend must be stopped; they
// refuse to sign until it has run (see [ErrRefused]).
//
// The entries Trillian lost, from its size to the size the key signed
// (and any beyond that undersigned's database holds at an index), are
// found in undersigned's database or, for those it lost too, in receipts;
// their root must be the one the key signed before anything changes.
// Entries undersigned's database lost (from Trillian or the receipts) are
// admitted into it again ([ledger.Readmit]), then the lost entries are
// queued again in order, window by window, each checked at its index; last
// the database's signed checkpoint is set back to the one the key signed.
// It can be run again after a failure.
func Recover(ctx context.Context, cfg RecoverConfig) (*RecoverResult, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if len(cfg.StateDirs) == 0 {
		cfg.StateDirs = []string{cfg.Folder.Dir}
	}
	r := &recovery{cfg: cfg, res: &RecoverResult{}}
	if err := r.target(ctx); err != nil {
		return nil, err
	}
	if err := r.gather(ctx); err != nil {
		return nil, err
	}
	if err := r.verify(ctx); err != nil {
		return nil, err
	}
	if err := r.readmit(ctx); err != nil {
		return nil, err
	}
	if err := r.queue(ctx); err != nil {
		return nil, err
	}
	if err := r.finish(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

// recovery is one run of Recover.
type recovery struct {
	cfg RecoverConfig
	res *RecoverResult

	signed    *log.Checkpoint
	signedRaw []byte
	row       []byte // the database's last signed checkpoint
	trillian  uint64 // Trillian's size
	end       uint64 // the size Trillian is brought to
	// leaves are the entries [trillian, end); fromReceipts those found in
	// receipts; disclosures the disclosures the receipts hold, by index.
	leaves       [][]byte
	fromReceipts map[uint64]bool
	disclosures  map[uint64]*pb.Disclosure
	// lostByStore are entries Trillian holds and the store lost.
	lostByStore []ledger.Recovered
}

// target finds the checkpoint the log comes back to: the largest of the
// histories' and the database's, which must agree.
func (r *recovery) target(ctx context.Context) error {
	f := r.cfg.Folder
	dbID, err := r.cfg.Store.DatabaseID(ctx)
	if err != nil {
		return err
	}
	if r.row, err = r.cfg.Store.Checkpoints().Load(ctx); err != nil {
		return err
	}
	cands := [][]byte{r.row}
	for _, dir := range r.cfg.StateDirs {
		k := newKeeper(dir, f)
		h, _, err := k.load()
		if err != nil {
			return err
		}
		if h == nil {
			continue
		}
		switch {
		case h.Origin != f.Origin:
			return fmt.Errorf("%s holds the history of the log %q, not %q", k.path, h.Origin, f.Origin)
		case h.TreeID != r.cfg.TreeID:
			return fmt.Errorf("%s: the key signed tree %d, not %d", k.path, h.TreeID, r.cfg.TreeID)
		case h.Database != "" && h.Database != dbID:
			return fmt.Errorf("%s: the key signed with the database %s, and this one is %s: restore that database first", k.path, h.Database, dbID)
		}
		cands = append(cands, []byte(h.Checkpoint))
	}
	for _, raw := range cands {
		if len(raw) == 0 {
			continue
		}
		cp, _, _, err := log.ParseCheckpoint(raw, f.Origin, f.Verifier)
		if err != nil {
			return fmt.Errorf("a checkpoint to recover to does not verify with the log's key: %w", err)
		}
		switch {
		case r.signed == nil || cp.Size > r.signed.Size:
			r.signed, r.signedRaw = cp, raw
		case cp.Size == r.signed.Size && !bytes.Equal(cp.Hash, r.signed.Hash):
			return fmt.Errorf("two checkpoints of size %d with different roots were signed: two histories; keep both as evidence, nothing can be recovered", cp.Size)
		}
	}
	if r.signed == nil {
		return errors.New("the key signed no checkpoint of this tree that the histories or the database hold: nothing to recover")
	}
	r.res.Signed = r.signedRaw
	size, _, err := trillianlog.LatestRoot(ctx, r.cfg.Client, r.cfg.TreeID)
	if err != nil {
		return err
	}
	r.trillian, r.res.TrillianSize = size, size
	r.cfg.Logger.Info("recovering", slog.Uint64("signed_size", r.signed.Size), slog.Uint64("trillian_size", size))
	return nil
}

// gather finds the entries Trillian lacks: from the store (which also
// gives those beyond the signed size it holds at an index), then the
// receipts.
func (r *recovery) gather(ctx context.Context) error {
	r.end = max(r.signed.Size, r.trillian)
	stored, err := r.cfg.Store.IndexedFrom(ctx, r.trillian)
	if err != nil {
		return err
	}
	byIndex := map[uint64][]byte{}
	for _, e := range stored {
		byIndex[uint64(e.Index)] = e.Record
	}
	// Entries beyond the signed size that the store holds at an index
	// were in Trillian's tree at that index: they go back there too, so
	// that the store's indexes and tiles stay true.
	for i := r.end; byIndex[i] != nil; i++ {
		r.end = i + 1
	}
	if err := r.readReceipts(byIndex); err != nil {
		return err
	}
	var missing []uint64
	for i := r.trillian; i < r.end; i++ {
		if byIndex[i] == nil {
			missing = append(missing, i)
			continue
		}
		r.leaves = append(r.leaves, byIndex[i])
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d entries of the %d Trillian lost are in neither undersigned's database nor the receipts given (%s): give the receipts that hold them (--receipts)",
			len(missing), r.end-r.trillian, ranges(missing))
	}
	r.res.FromReceipts = len(r.fromReceipts)
	r.res.FromStore = len(r.leaves) - len(r.fromReceipts)
	return nil
}

// readReceipts reads the receipts given, verified with the log's key, and
// keeps the entries they hold that Trillian and byIndex lack.
func (r *recovery) readReceipts(byIndex map[uint64][]byte) error {
	r.fromReceipts, r.disclosures = map[uint64]bool{}, map[uint64]*pb.Disclosure{}
	var files []string
	for _, p := range r.cfg.Receipts {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		found, err := filepath.Glob(filepath.Join(p, "*.tlog-proof"))
		if err != nil {
			return err
		}
		files = append(files, found...)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		rc, err := receipt.Parse(b)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		v, err := rc.Verify(r.cfg.Folder.Verifier)
		if err != nil {
			return fmt.Errorf("%s does not verify with the log's key: %w", name, err)
		}
		i := v.Index
		if d := rc.Extra.GetDisclosure(); d != nil {
			r.disclosures[i] = d
		}
		if i < r.trillian || byIndex[i] != nil {
			continue
		}
		byIndex[i] = rc.Extra.GetRecord()
		r.fromReceipts[i] = true
		if i >= r.end {
			r.end = i + 1
		}
	}
	return nil
}

// verify checks the entries found against the checkpoint the key signed:
// Trillian's tree with them must have its root, before anything changes.
func (r *recovery) verify(ctx context.Context) error {
	rng, err := trillianlog.PrefixRange(ctx, r.cfg.Client, r.cfg.TreeID, r.cfg.Store, min(r.trillian, r.signed.Size))
	if err != nil {
		return err
	}
	if r.trillian > r.signed.Size {
		// Trillian holds more than the key signed: its tree must extend it.
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		if !bytes.Equal(root, r.signed.Hash) {
			return fmt.Errorf("Trillian's tree at size %d has root %x, and the key signed %x: it holds another history, which nothing can recover", r.signed.Size, root, r.signed.Hash)
		}
		return r.findLostByStore(ctx)
	}
	for _, leaf := range r.leaves[:r.signed.Size-r.trillian] {
		if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			return err
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, r.signed.Hash) {
		return fmt.Errorf("the entries found give the root %x at size %d, and the key signed %x: they are not the log's; nothing was changed", root, r.signed.Size, r.signed.Hash)
	}
	return r.findLostByStore(ctx)
}

// findLostByStore lists the entries the store lost: those Trillian holds
// (up to the signed size) and those found in receipts, that the store
// does not hold.
func (r *recovery) findLostByStore(ctx context.Context) error {
	w, err := r.cfg.Store.Watermark(ctx)
	if err != nil {
		return err
	}
	from := min(w, r.trillian)
	var cands []ledger.Recovered
	if from < r.trillian {
		leaves, err := trillianlog.ReadLeaves(ctx, r.cfg.Client, r.cfg.TreeID, from, min(r.trillian, r.end))
		if err != nil {
			return err
		}
		for i, leaf := range leaves {
			index := from + uint64(i)
			cands = append(cands, ledger.Recovered{Index: index, Record: leaf, Disclosure: r.disclosures[index]})
		}
	}
	for i, leaf := range r.leaves {
		index := r.trillian + uint64(i)
		if r.fromReceipts[index] {
			cands = append(cands, ledger.Recovered{Index: index, Record: leaf, Disclosure: r.disclosures[index]})
		}
	}
	hashes := make([][]byte, len(cands))
	for i, c := range cands {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(c.Record)
	}
	found, err := r.cfg.Store.LeafEntries(ctx, hashes)
	if err != nil {
		return err
	}
	known, err := r.cfg.Store.Foreign(ctx, from, r.end)
	if err != nil {
		return err
	}
	for i, c := range cands {
		if known[c.Index] {
			continue
		}
		if found[i].Seq == 0 || found[i].Index == ledger.NoIndex {
			r.lostByStore = append(r.lostByStore, c)
		}
	}
	return nil
}

// readmit admits into the store the entries it lost.
func (r *recovery) readmit(ctx context.Context) error {
	if len(r.lostByStore) == 0 {
		return nil
	}
	r.cfg.Logger.Info("admitting again the entries undersigned's database lost", slog.Int("entries", len(r.lostByStore)))
	foreign, err := ledger.Readmit(ctx, ledger.Config{
		Origin: r.cfg.Folder.Origin, Store: r.cfg.Store, DedupSecret: r.cfg.Folder.DedupSecret, Logger: r.cfg.Logger,
	}, r.lostByStore)
	if err != nil {
		return err
	}
	r.res.Readmitted, r.res.Foreign = len(r.lostByStore)-foreign, foreign
	// Redactions admitted again deleted names: PostgreSQL reclaims them.
	return r.cfg.Store.Purge(ctx)
}

// queue queues the lost entries in order, a window at a time, and checks
// each at its index in Trillian's tree before the next window.
func (r *recovery) queue(ctx context.Context) error {
	for start := 0; start < len(r.leaves); start += r.cfg.Window {
		window := r.leaves[start:min(start+r.cfg.Window, len(r.leaves))]
		first := r.trillian + uint64(start)
		for _, leaf := range window {
			if err := trillianlog.QueueLeaf(ctx, r.cfg.Client, r.cfg.TreeID, leaf); err != nil {
				return err
			}
		}
		end := first + uint64(len(window))
		if err := r.await(ctx, end); err != nil {
			return err
		}
		got, err := trillianlog.ReadLeaves(ctx, r.cfg.Client, r.cfg.TreeID, first, end)
		if err != nil {
			return err
		}
		for i, leaf := range got {
			if !bytes.Equal(leaf, window[i]) {
				return fmt.Errorf("Trillian put another entry at index %d than the one queued for it (were frontends running, or several log servers with unsynchronised clocks?): the tree no longer holds the history the key signed", first+uint64(i))
			}
		}
		r.cfg.Logger.Info("queued again", slog.Uint64("size", end), slog.Uint64("of", r.end))
	}
	return nil
}

// await waits until Trillian's tree has size entries.
func (r *recovery) await(ctx context.Context, size uint64) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, _, err := trillianlog.LatestRoot(ctx, r.cfg.Client, r.cfg.TreeID)
		if err != nil {
			return err
		}
		if got >= size {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Trillian's tree has %d entries 5 minutes after the queuing of %d: is trillian_log_signer running?", got, size)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// finish sets the database's last signed checkpoint back to the one the
// key signed, and the store's watermark to the tree's size.
func (r *recovery) finish(ctx context.Context) error {
	size, _, err := trillianlog.LatestRoot(ctx, r.cfg.Client, r.cfg.TreeID)
	if err != nil {
		return err
	}
	r.res.Size = size
	var row *log.Checkpoint
	if r.row != nil {
		if row, _, _, err = log.ParseCheckpoint(r.row, r.cfg.Folder.Origin, r.cfg.Folder.Verifier); err != nil {
			return err
		}
	}
	if row == nil || row.Size < r.signed.Size {
		if err := r.cfg.Store.Checkpoints().Store(ctx, r.row, r.signedRaw); err != nil {
			return fmt.Errorf("set the database's last signed checkpoint: %w", err)
		}
	}
	return r.cfg.Store.Assign(ctx, nil, r.end)
}

// ranges writes indexes as runs: "3-5, 9".
func ranges(is []uint64) string {
	slices.Sort(is)
	var out []string
	for i := 0; i < len(is); {
		j := i
		for j+1 < len(is) && is[j+1] == is[j]+1 {
			j++
		}
		if i == j {
			out = append(out, fmt.Sprint(is[i]))
		} else {
			out = append(out, fmt.Sprintf("%d-%d", is[i], is[j]))
		}
		i = j + 1
	}
	if len(out) > 10 {
		out = append(out[:10], "...")
	}
	return strings.Join(out, ", ")
}
