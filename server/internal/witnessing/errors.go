package witnessing

import (
	"errors"
	"fmt"
	"strings"
)

// ErrQuorum is wrapped by [*QuorumError].
var ErrQuorum = errors.New("the witness quorum was not met")

// Kind says how a witness failed to cosign.
type Kind int

// The kinds of [Failure].
const (
	// Unanswered: it did not answer in time, answered with an error, or
	// kept answering with another size.
	Unanswered Kind = iota
	// Refused: it refused the checkpoint as inconsistent with what it
	// cosigned before (a fork, or a log that went back).
	Refused
	// Rejected: it does not know the log, its key, or the request.
	Rejected
	// Invalid: it answered without a valid cosignature.
	Invalid
)

func (k Kind) String() string {
	switch k {
	case Refused:
		return "refused the checkpoint as inconsistent with what it cosigned before"
	case Rejected:
		return "rejected the checkpoint (it does not know this log or its key)"
	case Invalid:
		return "answered without a valid cosignature"
	}
	return "did not answer"
}

// Failure is why one witness did not cosign.
type Failure struct {
	// Witness is the witness's name in the policy.
	Witness string
	// Kind says how it failed.
	Kind Kind
	// detail is what happened, for the log only: it may hold a witness's
	// address or its answer.
	detail string
}

// QuorumError is returned by [Cosigner.Cosign] when the quorum was not met.
// Its message names the witnesses and what became of each, and holds no
// address or upstream text: it can be shown to the log's clients.
type QuorumError struct {
	// Required describes the quorum.
	Required string
	// Cosigned names the witnesses that cosigned.
	Cosigned []string
	// Failures are the witnesses that did not, by name.
	Failures []Failure
}

func (e *QuorumError) Error() string {
	var parts []string
	for _, f := range e.Failures {
		parts = append(parts, fmt.Sprintf("%s %s", f.Witness, f.Kind))
	}
	s := fmt.Sprintf("%v (%s): %s", ErrQuorum, e.Required, strings.Join(parts, "; "))
	if len(e.Cosigned) > 0 {
		s += "; cosigned by " + strings.Join(e.Cosigned, ", ")
	}
	return s
}

// Unwrap returns ErrQuorum.
func (e *QuorumError) Unwrap() error { return ErrQuorum }

// Missing names the witnesses that did not cosign.
func (e *QuorumError) Missing() []string {
	out := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f.Witness
	}
	return out
}
