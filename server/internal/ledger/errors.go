package ledger

import (
	"errors"
	"fmt"
	"time"
)

// Errors callers branch on. A rule broken by a field of a request is a
// *records.FieldError instead.
var (
	// ErrUnauthenticated: the write needs a token and has none.
	ErrUnauthenticated = errors.New("this write needs an organiser token")
	// ErrPermissionDenied: the token has no rights to the letter.
	ErrPermissionDenied = errors.New("the token has no rights to this letter")
	// ErrAlreadyExists: a duplicate of a record written by someone else.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the log's state forbids the write.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrNotFound: no such letter or entry.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the ledger cannot safely write now.
	ErrUnavailable = errors.New("unavailable")
	// ErrOutOfRange: a tree size or index beyond the published log.
	ErrOutOfRange = errors.New("out of range")
	// ErrStopped is wrapped by the error of a Log's Healthy when the log
	// stopped for good: it refused to sign a tree that does not extend
	// what its key signed before (a fork, a restored database), or its
	// tree broke a rule. Until an operator acts, the ledger serves nothing
	// of the log that it can no longer vouch for (checkpoints, proofs,
	// entries and what is read at a checkpoint): it answers Unavailable.
	ErrStopped = errors.New("the log stopped for good")
)

// OverloadedError is pushback: the write was not admitted; retry after
// RetryAfter.
type OverloadedError struct {
	RetryAfter time.Duration
	What       string
}

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("overloaded: %s; retry after %v", e.What, e.RetryAfter)
}

func precondition(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFailedPrecondition, fmt.Sprintf(format, args...))
}

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnavailable, fmt.Sprintf(format, args...))
}

// BehindError is the answer of a server that has not caught up with a
// tree size its caller knows (another server of the log published it):
// nothing was done, and the call may be sent again after RetryAfter.
type BehindError struct {
	// Known is the size the caller knows, Published the one this server
	// publishes.
	Known, Published uint64
	RetryAfter       time.Duration
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("this server has not caught up yet with the tree size %d the client knows (it publishes %d); retry after %v",
		e.Known, e.Published, e.RetryAfter)
}
