// Package guard keeps a log from forking itself: a [Signer] signs a
// checkpoint only if it is consistent with the last checkpoint it signed,
// which it persists before the signature leaves it.
//
// The last signed checkpoint is kept by a [Persister]: an fsynced file in
// the data folder for the embedded engine, a PostgreSQL row updated by
// compare-and-swap for the Trillian engine, where several frontends sign
// for one tree. Each new tree is checked against
// it with a consistency proof before signing; a smaller tree, a different
// root at the same size or a failed proof stops the signer for good, and
// [Signer.Err] says why, so that writes stop with Unavailable and the
// operator is told. A smaller tree ([ErrBehind]) is refused without
// stopping, so that a restored log can catch up.
package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/internal/atomicfile"
)

// ErrInconsistent is wrapped by the error of a signer that refused to sign
// a tree inconsistent with the last checkpoint it signed.
var ErrInconsistent = errors.New("refusing to sign a checkpoint inconsistent with the last one signed")

// ErrBehind is wrapped by the error of a signer asked to sign a tree smaller
// than the last one it signed. It does not stop the signer: a log restored
// from a copy may still catch up with admitted writes; until it does,
// nothing is signed.
var ErrBehind = errors.New("refusing to sign a tree smaller than the last one signed")

// ErrConflict is wrapped by the error of a shared [Persister]'s Store when
// the checkpoint it was to replace is no longer the last one: another
// signer stored one first. The signer keeps its state; [Signer.Reload]
// adopts the other signer's checkpoint once it is checked.
var ErrConflict = errors.New("another signer stored a checkpoint first")

// Persister keeps the last signed checkpoint.
type Persister interface {
	// Load returns the last signed checkpoint, or nil if none was ever
	// signed.
	Load(ctx context.Context) ([]byte, error)
	// Store durably replaces the last signed checkpoint. prev is the one it
	// replaces (nil for the first): an implementation shared by several
	// signers stores only if prev is still current, and otherwise fails
	// with an error wrapping [ErrConflict].
	Store(ctx context.Context, prev, next []byte) error
}

// ConsistencyProver proves that the tree of size to extends the tree of
// size from.
type ConsistencyProver func(ctx context.Context, from, to uint64) ([][]byte, error)

// Signer is a note.Signer for checkpoints that refuses to fork the log.
type Signer struct {
	inner    note.Signer
	verifier note.Verifier
	persist  Persister
	prove    ConsistencyProver
	logger   *slog.Logger

	mu   sync.Mutex
	last *log.Checkpoint
	raw  []byte
	err  error
}

var _ note.Signer = (*Signer)(nil)

// New returns a guarded signer. It loads and verifies the last signed
// checkpoint; prove may be set later with [Signer.SetProver], before the
// first signature.
func New(ctx context.Context, inner note.Signer, verifier note.Verifier, persist Persister, prove ConsistencyProver, logger *slog.Logger) (*Signer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Signer{inner: inner, verifier: verifier, persist: persist, prove: prove, logger: logger}
	raw, err := persist.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the last signed checkpoint: %w", err)
	}
	if raw != nil {
		cp, _, _, err := log.ParseCheckpoint(raw, inner.Name(), verifier)
		if err != nil {
			return nil, fmt.Errorf("the last signed checkpoint does not verify with the log's key: %w", err)
		}
		s.last, s.raw = cp, raw
	}
	return s, nil
}

// SetProver sets the consistency prover.
func (s *Signer) SetProver(p ConsistencyProver) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prove = p
}

// Name returns the key's name, the log's origin.
func (s *Signer) Name() string { return s.inner.Name() }

// KeyHash returns the key's hash.
func (s *Signer) KeyHash() uint32 { return s.inner.KeyHash() }

// Err returns why the signer stopped, or nil.
func (s *Signer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Last returns the last signed checkpoint, or nil.
func (s *Signer) Last() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw
}

// Check checks that the tree of size and root is consistent with the last
// signed checkpoint, without signing. A failure stops the signer.
func (s *Signer) Check(ctx context.Context, size uint64, root []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.check(ctx, size, root)
}

func (s *Signer) stop(err error) error {
	if s.err == nil {
		s.err = err
		s.logger.Error("checkpoint signer stopped: writes are refused until an operator acts", slog.Any("error", err))
	}
	return s.err
}

// check must be called with mu held.
func (s *Signer) check(ctx context.Context, size uint64, root []byte) error {
	if s.err != nil {
		return s.err
	}
	if s.last == nil {
		return nil
	}
	last := s.last
	switch {
	case size < last.Size:
		return fmt.Errorf("%w: the tree has %d entries, the last checkpoint signed had %d", ErrBehind, size, last.Size)
	case size == last.Size:
		if !bytes.Equal(root, last.Hash) {
			return s.stop(fmt.Errorf("%w: at size %d the root is %x, the last checkpoint signed %x", ErrInconsistent, size, root, last.Hash))
		}
		return nil
	case last.Size == 0:
		return nil
	}
	if s.prove == nil {
		return fmt.Errorf("no consistency prover")
	}
	p, err := s.prove(ctx, last.Size, size)
	if err != nil {
		return fmt.Errorf("consistency proof from %d to %d: %w", last.Size, size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, last.Size, size, p, last.Hash, root); err != nil {
		return s.stop(fmt.Errorf("%w: the tree of size %d does not extend the last checkpoint signed (size %d): %v", ErrInconsistent, size, last.Size, err))
	}
	return nil
}

// Sign signs msg, which must be a checkpoint body for this log with no
// extension lines, after checking it against the last signed checkpoint
// and persisting the signed checkpoint.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	var cp log.Checkpoint
	rest, err := cp.Unmarshal(msg)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("sign: checkpoints carry no extension lines")
	}
	if _, err := s.sign(context.Background(), &cp, msg); err != nil {
		return nil, err
	}
	// Ed25519 is deterministic: this is the signature inside the note.
	return s.inner.Sign(msg)
}

// SignTree signs the checkpoint of the tree of size and root, with no
// extension lines, after checking it against the last signed checkpoint
// and persisting it, and returns the signed note. Two signers with the
// same key produce the same bytes for the same tree. An error wrapping
// [ErrConflict] means another signer persisted a checkpoint first: call
// [Signer.Reload].
func (s *Signer) SignTree(ctx context.Context, size uint64, root []byte) ([]byte, error) {
	cp := log.Checkpoint{Origin: s.inner.Name(), Size: size, Hash: root}
	return s.sign(ctx, &cp, cp.Marshal())
}

func (s *Signer) sign(ctx context.Context, cp *log.Checkpoint, msg []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp.Origin != s.inner.Name() {
		return nil, fmt.Errorf("sign: origin %q is not this log's %q", cp.Origin, s.inner.Name())
	}
	if err := s.check(ctx, cp.Size, cp.Hash); err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: string(msg)}, s.inner)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if !bytes.Equal(signed, s.raw) {
		if err := s.persist.Store(ctx, s.raw, signed); err != nil {
			return nil, fmt.Errorf("sign: persist the checkpoint: %w", err)
		}
	}
	s.last, s.raw = cp, signed
	return signed, nil
}

// Reload reads the last signed checkpoint from the Persister, which
// another signer sharing it may have replaced, and adopts it once it
// verifies with the log's key and extends the one this signer knew. It
// returns the checkpoint now last. A checkpoint that does not extend the
// last one stops the signer, as a fork would.
func (s *Signer) Reload(ctx context.Context) (*log.Checkpoint, []byte, error) {
	raw, err := s.persist.Load(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reload the last signed checkpoint: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if raw == nil || bytes.Equal(raw, s.raw) {
		return s.last, s.raw, nil
	}
	cp, _, _, err := log.ParseCheckpoint(raw, s.inner.Name(), s.verifier)
	if err != nil {
		return nil, nil, s.stop(fmt.Errorf("%w: the stored checkpoint does not verify with the log's key: %v", ErrInconsistent, err))
	}
	if err := s.check(ctx, cp.Size, cp.Hash); err != nil {
		return nil, nil, err
	}
	s.last, s.raw = cp, raw
	return cp, raw, nil
}

// LastCheckpoint returns the last signed checkpoint, parsed and raw, or
// nils.
func (s *Signer) LastCheckpoint() (*log.Checkpoint, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.raw
}

// File is a [Persister] that keeps the checkpoint in an fsynced file.
type File string

// Load reads the file; a missing file means no checkpoint.
func (f File) Load(context.Context) ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Store atomically replaces the file: a temporary file written and synced,
// renamed over it, and the folder synced.
func (f File) Store(_ context.Context, _, next []byte) error {
	return atomicfile.Write(string(f), next, 0o644)
}
