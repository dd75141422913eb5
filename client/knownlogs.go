package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// KnownLogs pins log verifier keys by origin, like SSH's known_hosts: a
// text file of lines "<origin> <verifier key>".
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
	b, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("known logs: %w", err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == origin {
			continue
		}
		out.WriteString(sc.Text() + "\n")
	}
	out.WriteString(origin + " " + key + "\n")
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("known logs: %w", err)
	}
	tmp := k.Path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("known logs: %w", err)
	}
	return os.Rename(tmp, k.Path)
}
