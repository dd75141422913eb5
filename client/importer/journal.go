package importer

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
)

// journal keeps the random secrets of each person of an import, one line
// per person: the letter, a hash of the person's key (no name), the salt
// and the withdrawal secret, in hex.
type journal struct {
	f       *os.File
	letter  string
	known   map[string][2][]byte
	pending []byte
}

func openJournal(path, letterID string) (*journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{f: f, letter: letterID, known: map[string][2][]byte{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 4 {
			// A line cut short by a crash: its row was never sent.
			continue
		}
		salt, err1 := hex.DecodeString(parts[2])
		secret, err2 := hex.DecodeString(parts[3])
		if err1 != nil || err2 != nil || len(salt) != records.SaltSize || len(secret) != records.SecretSize {
			continue
		}
		if parts[0] == letterID {
			j.known[parts[1]] = [2][]byte{salt, secret}
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
}

// secrets returns the salt and withdrawal secret of the person with this
// key: those of an earlier run, or new random ones, journaled at the next
// sync. It is asked once per person: new secrets are not kept in memory.
func (j *journal) secrets(key string) (salt, secret []byte) {
	h := sha256.Sum256([]byte(j.letter + "\x00" + key))
	id := hex.EncodeToString(h[:])
	if s, ok := j.known[id]; ok {
		return s[0], s[1]
	}
	salt, secret = client.NewSecrets()
	j.pending = fmt.Appendf(j.pending, "%s\t%s\t%x\t%x\n", j.letter, id, salt, secret)
	return salt, secret
}

// sync writes the new secrets and makes them durable.
func (j *journal) sync() error {
	if len(j.pending) == 0 {
		return nil
	}
	if _, err := j.f.Write(j.pending); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.pending = nil
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.f.Name())); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }
