package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/internal/atomicfile"
)

// KnownLogs pins log verifier keys by origin, like SSH's known_hosts: a
// text file of lines "<origin> <verifier key>". A line "<origin> policy
// <file>" pins a witness policy for the log (see [KnownLogs.PinPolicy]).
type KnownLogs struct {
	// Path is the file; it is created on the first pin.
	Path string
}

// ErrKeyChanged is returned when a log serves a key other than the one
// pinned for its origin, without a checkpoint signed by both.
var ErrKeyChanged = errors.New("the log's key changed")

// ErrWrongLogKey is returned when a log serves a key other than the one
// given in [Config.LogKey], or the given key is for another log: most
// often the wrong log.pub, not a changed key.
var ErrWrongLogKey = errors.New("the log's key is not the one given")

// Lookup returns the verifier key pinned for origin, or "".
func (k KnownLogs) Lookup(origin string) (string, error) {
	b, err := os.ReadFile(k.Path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("known logs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := ""
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == origin {
			found = f[1]
		}
	}
	return found, sc.Err()
}

// Pin records key for origin, replacing any earlier pin.
func (k KnownLogs) Pin(origin, key string) error {
	v, err := note.NewVerifier(key)
	if err != nil {
		return fmt.Errorf("pin %q: %w", origin, err)
	}
	if v.Name() != origin {
		return fmt.Errorf("pin %q: the key is named %q", origin, v.Name())
	}
	return k.rewrite(func(f []string) bool { return len(f) == 2 && f[0] == origin }, origin+" "+key)
}

// rewrite replaces the lines of the file for which drop is true by add.
func (k KnownLogs) rewrite(drop func(fields []string) bool, add string) error {
	b, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("known logs: %w", err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if drop(strings.Fields(sc.Text())) {
			continue
		}
		out.WriteString(sc.Text() + "\n")
	}
	out.WriteString(add + "\n")
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("known logs: %w", err)
	}
	if err := atomicfile.Write(k.Path, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("known logs: %w", err)
	}
	return nil
}

// LookupPolicy returns the witness policy pinned for origin (a line
// "<origin> policy <file>" of the file; a relative file name is relative
// to the file's folder) and the policy file's path, or nil and "" when
// none is pinned. It fails if the pinned file cannot be read or is not a
// valid policy.
func (k KnownLogs) LookupPolicy(origin string) (*policy.Policy, string, error) {
	b, err := os.ReadFile(k.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("known logs: %w", err)
	}
	path := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == origin && f[1] == "policy" {
			path = f[2]
		}
	}
	if err := sc.Err(); err != nil || path == "" {
		return nil, "", err
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(k.Path), path)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("the witness policy pinned for %s: %w", origin, err)
	}
	p, err := policy.Parse(text)
	if err != nil {
		return nil, "", fmt.Errorf("the witness policy pinned for %s in %s: %w", origin, path, err)
	}
	return p, path, nil
}

// PinPolicy pins a witness policy for origin, replacing any earlier pin:
// it writes text, which must be a valid policy, to policies/<origin> in
// the file's folder and names that file in the file. It returns the
// policy's path and whether the pin changed.
func (k KnownLogs) PinPolicy(origin string, text []byte) (string, bool, error) {
	if _, err := policy.Parse(text); err != nil {
		return "", false, fmt.Errorf("pin the witness policy of %q: %w", origin, err)
	}
	rel := filepath.Join("policies", url.PathEscape(origin)+".policy")
	path := filepath.Join(filepath.Dir(k.Path), rel)
	if _, pinned, err := k.LookupPolicy(origin); err == nil && pinned == path {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, text) {
			return path, false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("pin the witness policy of %q: %w", origin, err)
	}
	if err := atomicfile.Write(path, text, 0o600); err != nil {
		return "", false, fmt.Errorf("pin the witness policy of %q: %w", origin, err)
	}
	drop := func(f []string) bool { return len(f) == 3 && f[0] == origin && f[1] == "policy" }
	if err := k.rewrite(drop, origin+" policy "+filepath.ToSlash(rel)); err != nil {
		return "", false, err
	}
	return path, true, nil
}
