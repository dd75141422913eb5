package audit

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/internal/atomicfile"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Files of a state folder.
const (
	// HeaderFile holds the trusted checkpoint, the compact range of its
	// tree and what the mirror cannot say, as JSON. It is replaced
	// atomically: it is the commit point of an audit.
	HeaderFile = "state.json"
	// MirrorFile holds every entry of the trusted tree, in order, with its
	// disclosure; only the part the header counts is valid.
	MirrorFile = "entries"
)

// stateVersion is the version of the state format.
const stateVersion = 1

// header is the JSON of HeaderFile.
type header struct {
	Version     int    `json:"version"`
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	// Checkpoint is the last trusted signed checkpoint, verbatim.
	Checkpoint string `json:"checkpoint"`
	Size       uint64 `json:"size"`
	// Range is the compact range [0, Size) of the tree.
	Range [][]byte `json:"range"`
	// MirrorLength is the valid length of MirrorFile.
	MirrorLength int64 `json:"mirror_length"`
	// Pending are public endorsements whose disclosure the source said
	// was redacted by a record not yet in the trusted tree.
	Pending []uint64 `json:"pending,omitempty"`
	// Late are disclosures first withheld, served later.
	Late []lateDisclosure `json:"late,omitempty"`
	// Violations are every violation found in the trusted tree so far.
	Violations []Violation `json:"violations,omitempty"`
	AuditedAt  time.Time   `json:"audited_at"`
}

type lateDisclosure struct {
	Index       uint64 `json:"index"`
	Salt        []byte `json:"salt"`
	Name        string `json:"name"`
	Affiliation string `json:"affiliation"`
	Country     string `json:"country"`
}

// State is an audit's state folder: the last trusted checkpoint and a
// verified mirror of the log up to it. Its methods are safe for one
// goroutine at a time.
type State struct {
	dir string
	h   header
	m   *model
	// mirror is the open MirrorFile, positioned at the end of its valid
	// part.
	mirror *os.File
	w      *bufio.Writer
	offset int64
	// lock is the locked LockFile of a writable state.
	lock     *os.File
	readOnly bool
}

// ErrNoState is returned by [ReadState] for a folder that holds no state.
var ErrNoState = errors.New("no audit state")

// ErrLocked is returned by [OpenState] when another audit is using the
// state folder.
var ErrLocked = errors.New("another audit is using the state folder")

// LockFile is the file an auditing [State] holds locked.
const LockFile = "lock"

// OpenState opens the state folder dir for an audit, creating an empty
// state when it holds none. It locks the folder (failing with [ErrLocked]
// while another audit holds it), drops whatever an audit that did not
// finish left in the mirror, rebuilds the log's state by replaying the
// mirror, and erases any disclosure a redaction left behind.
func OpenState(dir string) (*State, error) {
	return openState(dir, true)
}

// ReadState opens the state folder dir read-only, for rosters and changes
// while an audit may be running; it fails with [ErrNoState] when the
// folder holds no state.
func ReadState(dir string) (*State, error) {
	return openState(dir, false)
}

func openState(dir string, write bool) (*State, error) {
	s := &State{dir: dir, readOnly: !write}
	if write {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create the audit state: %w", err)
		}
		lock, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock the audit state: %w", err)
		}
		if err := lockFile(lock); err != nil {
			lock.Close()
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		s.lock = lock
	}
	fail := func(err error) (*State, error) {
		if s.lock != nil {
			s.lock.Close()
		}
		if s.mirror != nil {
			s.mirror.Close()
		}
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, HeaderFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !write {
			return nil, fmt.Errorf("%s: %w", dir, ErrNoState)
		}
		s.h = header{Version: stateVersion}
	case err != nil:
		return fail(fmt.Errorf("open the audit state: %w", err))
	default:
		if err := json.Unmarshal(b, &s.h); err != nil {
			return fail(fmt.Errorf("open the audit state %s: %w", dir, err))
		}
		if s.h.Version != stateVersion {
			return fail(fmt.Errorf("open the audit state %s: version %d, want %d", dir, s.h.Version, stateVersion))
		}
	}
	s.m = newModel(s.h.Origin)
	flags := os.O_RDONLY
	if write {
		flags = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(dir, MirrorFile), flags, 0o600)
	if err != nil {
		return fail(fmt.Errorf("open the audit mirror: %w", err))
	}
	s.mirror = f
	if err := s.replay(); err != nil {
		return fail(err)
	}
	return s, nil
}

// Close closes the state's files and releases its lock. It does not save
// anything: an audit saves when it ends.
func (s *State) Close() error {
	err := s.mirror.Close()
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

// Dir returns the state's folder.
func (s *State) Dir() string { return s.dir }

// Origin returns the origin of the audited log, or "" for a new state.
func (s *State) Origin() string { return s.h.Origin }

// VerifierKey returns the log key the state was audited with.
func (s *State) VerifierKey() string { return s.h.VerifierKey }

// Size returns the size of the last trusted checkpoint.
func (s *State) Size() uint64 { return s.h.Size }

// Checkpoint returns the last trusted signed checkpoint, or nil.
func (s *State) Checkpoint() []byte {
	if s.h.Checkpoint == "" {
		return nil
	}
	return []byte(s.h.Checkpoint)
}

// AuditedAt returns when the state was last saved.
func (s *State) AuditedAt() time.Time { return s.h.AuditedAt }

// Violations returns every violation found in the trusted tree so far.
func (s *State) Violations() []Violation { return slices.Clone(s.h.Violations) }

// replay truncates the mirror to its valid length and rebuilds the model.
func (s *State) replay() error {
	if !s.readOnly {
		if err := s.mirror.Truncate(s.h.MirrorLength); err != nil {
			return fmt.Errorf("open the audit mirror: %w", err)
		}
	}
	if _, err := s.mirror.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("open the audit mirror: %w", err)
	}
	r := bufio.NewReaderSize(s.mirror, 1<<20)
	a := &applier{m: s.m, replay: true}
	var off int64
	for off < s.h.MirrorLength {
		it, n, err := readFrame(r)
		if err != nil {
			return fmt.Errorf("the audit mirror at byte %d: %w", off, err)
		}
		a.apply(it, off)
		off += n
	}
	if s.m.size() != s.h.Size {
		return fmt.Errorf("the audit mirror holds %d entries, the state says %d", s.m.size(), s.h.Size)
	}
	pending := map[uint64]bool{}
	for _, i := range s.h.Pending {
		pending[i] = true
	}
	for i := range s.m.endorsements {
		e := &s.m.endorsements[i]
		switch {
		case e.disc == discMissing, e.disc == discPending && !pending[e.index]:
			e.disc = discWithheld
		}
	}
	for _, d := range s.h.Late {
		if e := s.m.endorsementAt(d.Index); e != nil && e.redactedBy < 0 {
			e.disc = discServed
			e.disclosure = &pb.Disclosure{Salt: d.Salt, Name: d.Name, Affiliation: d.Affiliation, Country: d.Country}
		}
	}
	s.offset = s.h.MirrorLength
	if s.readOnly {
		return nil
	}
	if _, err := s.mirror.Seek(s.offset, io.SeekStart); err != nil {
		return err
	}
	s.w = bufio.NewWriterSize(s.mirror, 1<<20)
	// A crash between saving and erasing leaves redacted names behind:
	// erase them now.
	return s.erase(a.erase)
}

// Frame layout: u32 length of the rest ‖ u8 flags ‖ u32 record length ‖
// record ‖ for a served disclosure: lp(salt) ‖ lp(name) ‖ lp(affiliation)
// ‖ lp(country), with 4-byte lengths.
// flagInvalid marks an entry that is not a record, flagForeign one that
// the source says no server of the log admitted.
const (
	flagInvalid = 0x80
	flagForeign = 0x40
)

func appendLP32(b, x []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
	return append(b, x...)
}

// writeFrame appends it to the mirror and returns the frame's offset.
func (s *State) writeFrame(it *item, buf []byte) ([]byte, int64, error) {
	flags := byte(it.disc)
	if it.decodeErr != nil {
		flags |= flagInvalid
	}
	if it.entry.Foreign {
		flags |= flagForeign
	}
	b := append(buf[:0], 0, 0, 0, 0, flags)
	b = appendLP32(b, it.entry.Record)
	if it.disc == discServed {
		d := it.entry.Disclosure
		b = appendLP32(b, d.GetSalt())
		b = appendLP32(b, []byte(d.GetName()))
		b = appendLP32(b, []byte(d.GetAffiliation()))
		b = appendLP32(b, []byte(d.GetCountry()))
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	off := s.offset
	if _, err := s.w.Write(b); err != nil {
		return b, 0, fmt.Errorf("write the audit mirror: %w", err)
	}
	s.offset += int64(len(b))
	return b, off, nil
}

func readFrame(r *bufio.Reader) (*item, int64, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, 0, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, 0, err
	}
	total := int64(len(b)) + 4
	if len(b) < 5 {
		return nil, 0, errors.New("short frame")
	}
	flags := b[0]
	b = b[1:]
	next := func() ([]byte, error) {
		if len(b) < 4 {
			return nil, errors.New("short frame")
		}
		l := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(l) {
			return nil, errors.New("short frame")
		}
		x := b[4 : 4+l]
		b = b[4+l:]
		return x, nil
	}
	rec, err := next()
	if err != nil {
		return nil, 0, err
	}
	it := &item{entry: Entry{Record: rec, Foreign: flags&flagForeign != 0}, disc: discState(flags &^ (flagInvalid | flagForeign))}
	it.leaf = leafHash(rec)
	if flags&flagInvalid != 0 {
		it.decodeErr = errors.New("not a valid record")
	} else {
		it.rec = new(pb.Record)
		if err := proto.Unmarshal(rec, it.rec); err != nil {
			return nil, 0, fmt.Errorf("a mirrored record: %w", err)
		}
	}
	if it.disc == discServed {
		var parts [4][]byte
		for i := range parts {
			if parts[i], err = next(); err != nil {
				return nil, 0, err
			}
		}
		it.entry.Disclosure = &pb.Disclosure{Salt: parts[0], Name: string(parts[1]), Affiliation: string(parts[2]), Country: string(parts[3])}
	}
	return it, total, nil
}

// erase overwrites the mirrored disclosures of the endorsements at
// indexes with zeroes, and marks them erased.
func (s *State) erase(indexes []uint64) error {
	if len(indexes) == 0 {
		return nil
	}
	for _, i := range indexes {
		e := s.m.endorsementAt(i)
		if e == nil || e.offset >= s.h.MirrorLength {
			continue
		}
		var head [9]byte
		if _, err := s.mirror.ReadAt(head[:], e.offset); err != nil {
			return fmt.Errorf("erase the disclosure of %d: %w", i, err)
		}
		n := int64(binary.BigEndian.Uint32(head[:4]))
		rl := int64(binary.BigEndian.Uint32(head[5:9]))
		start, end := e.offset+9+rl, e.offset+4+n
		if _, err := s.mirror.WriteAt([]byte{byte(discErased) | head[4]&flagInvalid}, e.offset+4); err != nil {
			return fmt.Errorf("erase the disclosure of %d: %w", i, err)
		}
		if end > start {
			if _, err := s.mirror.WriteAt(make([]byte, end-start), start); err != nil {
				return fmt.Errorf("erase the disclosure of %d: %w", i, err)
			}
		}
	}
	if err := s.mirror.Sync(); err != nil {
		return fmt.Errorf("erase disclosures: %w", err)
	}
	return nil
}

// save makes the mirror durable, then replaces the header: after a crash,
// the state is either the old one or the new one.
func (s *State) save() error {
	if s.readOnly {
		return errors.New("save the audit state: it was opened read-only")
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("save the audit state: %w", err)
	}
	if err := s.mirror.Sync(); err != nil {
		return fmt.Errorf("save the audit state: %w", err)
	}
	s.h.MirrorLength = s.offset
	b, err := json.MarshalIndent(&s.h, "", "  ")
	if err != nil {
		return fmt.Errorf("save the audit state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, HeaderFile), b, 0o600); err != nil {
		return fmt.Errorf("save the audit state: %w", err)
	}
	return nil
}

// reload drops what an unsaved audit changed and rebuilds the state from
// its files.
func (s *State) reload() error {
	origin := s.m.origin
	var h header
	b, err := os.ReadFile(filepath.Join(s.dir, HeaderFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		h = header{Version: stateVersion}
	case err != nil:
		return fmt.Errorf("reload the audit state: %w", err)
	default:
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("reload the audit state: %w", err)
		}
	}
	s.h = h
	s.m = newModel(origin)
	return s.replay()
}

// frameAt reads the frame at an offset of the mirror.
func (s *State) frameAt(off int64) (*item, error) {
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			return nil, err
		}
	}
	r := bufio.NewReader(io.NewSectionReader(s.mirror, off, s.offset-off))
	it, _, err := readFrame(r)
	return it, err
}

// record returns the endorsement record at index, read back from the
// mirror.
func (s *State) record(index uint64) (*pb.Record, error) {
	e := s.m.endorsementAt(index)
	if e == nil {
		return nil, fmt.Errorf("entry %d is not an endorsement", index)
	}
	it, err := s.frameAt(e.offset)
	if err != nil {
		return nil, fmt.Errorf("read entry %d from the mirror: %w", index, err)
	}
	if it.rec == nil {
		return nil, fmt.Errorf("entry %d is not a valid record", index)
	}
	return it.rec, nil
}
