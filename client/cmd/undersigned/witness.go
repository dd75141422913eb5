package main

import (
	"fmt"
	"os"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/policy"
)

// witnessPolicy returns the witness policy to check the checkpoints of log
// origin against: the policy file given with --policy, which it then pins
// for origin in known_logs (saying so when the pin changed), or the one
// pinned before; nil when there is none.
func (e *env) witnessPolicy(origin, file string) (*policy.Policy, error) {
	path, err := e.knownLogs()
	if err != nil {
		return nil, err
	}
	known := client.KnownLogs{Path: path}
	if file == "" {
		p, _, err := known.LookupPolicy(origin)
		if err != nil {
			return nil, usagef("%v", err)
		}
		return p, nil
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("witness policy: %v", err)
	}
	p, err := policy.Parse(text)
	if err != nil {
		return nil, usagef("%s: %v", file, err)
	}
	pinned, changed, err := known.PinPolicy(origin, text)
	if err != nil {
		return nil, err
	}
	if changed {
		fmt.Fprintf(e.stderr, "pinned the witness policy of log %s (%s; copied to %s)\n", origin, p.Describe(), pinned)
	}
	return p, nil
}

// checkWitnesses checks a signed checkpoint of the log with verifier key
// logKey against p: the policy must accept the log and the checkpoint's
// cosignatures must meet its quorum. It returns what it found in one line,
// and an error (exit 1) naming the witnesses whose cosignature is missing
// or invalid when the quorum is not met. A nil policy checks nothing.
func checkWitnesses(p *policy.Policy, checkpoint []byte, logKey string) (string, error) {
	if p == nil {
		return "", nil
	}
	if err := p.AllowsLog(logKey); err != nil {
		return "", failedf("%v", err)
	}
	res, err := p.Check(checkpoint)
	if err != nil {
		return "", failedf("%v", err)
	}
	if !res.Met {
		return res.String(), failedf("%s", res.String())
	}
	return res.String(), nil
}
