package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// httpSource reads the log over plain HTTP: the tlog-tiles API, the
// disclosure bundles and the foreign marks.
type httpSource struct {
	base    *url.URL
	client  *http.Client
	timeout time.Duration
	// noDisclosures is set once a disclosure bundle that must exist was
	// not found: the source serves none.
	noDisclosures atomic.Bool
	// noForeign is set once the foreign marks of a bundle that must exist
	// were not found: the source serves none.
	noForeign atomic.Bool
}

// fetchAhead is how many bundles an HTTP source fetches at once. With the
// caps below, what it holds at once stays under 100 MB.
const fetchAhead = 4

// What an HTTP source reads of each resource at most: what the resource
// can hold. A resource larger than that is a [RuleSource] violation.
const (
	// maxCheckpoint: a signed note with up to 100 signatures (as many as
	// note.Open reads), ML-DSA-44 cosignatures being the largest (3.3 KB).
	maxCheckpoint = 512 << 10
	// maxTile: 256 hashes of 32 bytes.
	maxTile = layout.TileWidth * 32
	// maxEntryBundle: 256 entries of at most 65,535 bytes, each after its
	// 2-byte length.
	maxEntryBundle = layout.EntryBundleWidth * (2 + 65535)
	// maxDisclosureJSON bounds one element of a disclosure bundle: an
	// index, a base64 salt, and a name, an affiliation and a country of at
	// most 200, 1,000 and 100 code points, each of which JSON may spell
	// in 12 bytes (a surrogate pair of \u escapes).
	maxDisclosureJSON = 128 + 44 + 12*(200+1000+100)
	// maxDisclosureBundle: 256 of them.
	maxDisclosureBundle = layout.EntryBundleWidth * maxDisclosureJSON
	// maxForeignMarks: 256 indexes (see records.MaxForeignMarksBytes).
	maxForeignMarks = records.MaxForeignMarksBytes
)

// DefaultFetchTimeout bounds each fetch of an HTTP source: a request and
// the reading of its answer.
const DefaultFetchTimeout = 30 * time.Second

// HTTPOption configures an HTTP source.
type HTTPOption func(*httpSource)

// WithFetchTimeout bounds each fetch (a request and the reading of its
// answer) to d instead of [DefaultFetchTimeout].
func WithFetchTimeout(d time.Duration) HTTPOption {
	return func(s *httpSource) { s.timeout = d }
}

// SourceError is a resource that a source served and that breaks the
// format: larger than the resource can hold, a disclosure bundle with a
// duplicate or out-of-bundle index, or with fields too long, or foreign
// marks with a duplicate or out-of-bundle index. An audit
// reports it as a [RuleSource] violation naming the URL (and the index).
type SourceError struct {
	// URL is the resource's address.
	URL string
	// Index is the entry the problem is about, when HasIndex.
	Index    uint64
	HasIndex bool
	// Problem says what is wrong.
	Problem string
}

func (e *SourceError) Error() string {
	if e.HasIndex {
		return fmt.Sprintf("%s: index %d: %s", e.URL, e.Index, e.Problem)
	}
	return fmt.Sprintf("%s: %s", e.URL, e.Problem)
}

// RuleSource: a source served a resource that breaks the tlog-tiles or
// disclosure bundle format (see [SourceError]).
const RuleSource Rule = "source"

// sourceViolation turns a [*SourceError] in err's chain into a violation.
func sourceViolation(err error) (*Violation, bool) {
	var se *SourceError
	if !errors.As(err, &se) {
		return nil, false
	}
	return &Violation{Index: se.Index, Rule: RuleSource, Message: se.Error()}, true
}

// NewHTTPSource returns a [Source] that reads a log over plain HTTP, as
// published under prefix: the tlog-tiles API (prefix + "checkpoint",
// "tile/...", "tile/entries/..."), the disclosure bundles
// (prefix + "disclosures/<N>[.p/<W>]", a JSON array of {index, salt,
// name, affiliation, country}) and the foreign marks
// (prefix + "foreign/<N>[.p/<W>]", a JSON array of the indexes of the
// bundle's entries that no server of the log admitted, see
// records.DecodeForeignMarks). For a server, prefix is its HTTP address
// followed by /log/; a prefix with an empty path gets "/log/" added. It
// reads a mirror or a CDN copy just as well; one without disclosure
// bundles yields entries marked NoDisclosures, one without foreign marks
// entries marked NoForeignMarks. c may be nil for http.DefaultClient.
//
// It defends itself against a hostile mirror: each fetch is bounded in
// time (see [WithFetchTimeout]) and in size, to what the resource can
// hold; disclosure bundles and foreign marks are decoded as they arrive,
// and one that repeats an index or names one outside its bundle is
// refused. What breaks the format is a [*SourceError].
func NewHTTPSource(prefix string, c *http.Client, opts ...HTTPOption) (Source, error) {
	u, err := url.Parse(prefix)
	if err != nil {
		return nil, fmt.Errorf("tiles URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("tiles URL %q: want http:// or https://", prefix)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/log/"
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if c == nil {
		c = http.DefaultClient
	}
	s := &httpSource{base: u, client: c, timeout: DefaultFetchTimeout}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// FetchCheckpoint fetches the signed checkpoint another source holds, for
// [Auditor.Compare]: at u itself when its path ends in "/checkpoint",
// otherwise at u + "checkpoint", u being a tlog-tiles prefix. The fetch is
// bounded as those of [NewHTTPSource].
func FetchCheckpoint(ctx context.Context, u string, c *http.Client, opts ...HTTPOption) ([]byte, error) {
	prefix, found := strings.CutSuffix(u, "/checkpoint")
	if found {
		prefix += "/"
	}
	pu, err := url.Parse(prefix)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") {
		return nil, fmt.Errorf("compare URL %q: want an http:// or https:// URL", u)
	}
	if !strings.HasSuffix(pu.Path, "/") {
		pu.Path += "/"
	}
	if c == nil {
		c = http.DefaultClient
	}
	s := &httpSource{base: pu, client: c, timeout: DefaultFetchTimeout}
	for _, o := range opts {
		o(s)
	}
	return s.Checkpoint(ctx)
}

// fetch opens a resource for reading at most limit bytes, and calls read
// with its body; the fetch ends when read returns, and is bounded by the
// source's timeout. A 404 is an error wrapping os.ErrNotExist; a body over
// limit is a [*SourceError].
func (s *httpSource) fetch(ctx context.Context, path string, limit int64, read func(u string, body io.Reader) error) error {
	u := s.base.JoinPath(path).String()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, timeoutError(ctx, err, s.timeout))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return fmt.Errorf("get %s: %w", u, os.ErrNotExist)
	default:
		return fmt.Errorf("get %s: %s", u, resp.Status)
	}
	if resp.ContentLength > limit {
		return &SourceError{URL: u, Problem: fmt.Sprintf("announces %d bytes, more than the %d such a resource can hold", resp.ContentLength, limit)}
	}
	body := &cappedReader{r: resp.Body, left: limit}
	err = read(u, body)
	if body.over {
		return &SourceError{URL: u, Problem: fmt.Sprintf("larger than the %d bytes such a resource can hold", limit)}
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", u, timeoutError(ctx, err, s.timeout))
	}
	return nil
}

// timeoutError says that a fetch timed out when it did.
func timeoutError(ctx context.Context, err error, d time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %s (timeout): %w", d, err)
	}
	return err
}

// cappedReader reads at most left bytes, and notes a body that goes on.
type cappedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := io.ReadFull(c.r, one[:]); n > 0 {
			c.over = true
			return 0, errors.New("resource too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// get fetches a whole resource of at most limit bytes.
func (s *httpSource) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	var b []byte
	err := s.fetch(ctx, path, limit, func(_ string, body io.Reader) error {
		var err error
		b, err = io.ReadAll(body)
		return err
	})
	return b, err
}

func (s *httpSource) Checkpoint(ctx context.Context) ([]byte, error) {
	return s.get(ctx, layout.CheckpointPath, maxCheckpoint)
}

// resource fetches the resource of a tile-like path (dir + N[.p/W]) that
// covers the first width entries of bundle n, and calls read with its
// body. A partial resource may be gone once the log grew: then it falls
// back to the full one, and then to the partial one of the latest
// checkpoint. The body may cover more than width entries.
func (s *httpSource) resource(ctx context.Context, dir string, level, n uint64, width uint8, limit int64, read func(u string, body io.Reader) error) error {
	err := s.fetch(ctx, dir+layout.NWithSuffix(level, n, width), limit, read)
	if err == nil || width == 0 || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	err = s.fetch(ctx, dir+layout.NWithSuffix(level, n, 0), limit, read)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	raw, cerr := s.Checkpoint(ctx)
	if cerr != nil {
		return err
	}
	var cp log.Checkpoint
	if _, cerr := cp.Unmarshal(raw); cerr != nil {
		return err
	}
	if w := layout.PartialTileSize(level, n, cp.Size); w > width {
		return s.fetch(ctx, dir+layout.NWithSuffix(level, n, w), limit, read)
	}
	return err
}

// readAll is a read function of resource that keeps the whole body.
func readAll(dst *[]byte) func(string, io.Reader) error {
	return func(_ string, body io.Reader) error {
		b, err := io.ReadAll(body)
		*dst = b
		return err
	}
}

// bundle is one fetched entry bundle with its disclosures and its
// foreign marks.
type bundle struct {
	entries     [][]byte
	disclosures map[uint64]*pb.Disclosure
	none        bool
	foreign     []uint64
	noForeign   bool
	err         error
}

func (s *httpSource) fetchBundle(ctx context.Context, n, end uint64) bundle {
	width := layout.PartialTileSize(0, n, end)
	var raw []byte
	if err := s.resource(ctx, "tile/entries/", 0, n, width, maxEntryBundle, readAll(&raw)); err != nil {
		return bundle{err: fmt.Errorf("entry bundle %d: %w", n, err)}
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(raw); err != nil {
		return bundle{err: fmt.Errorf("entry bundle %d: %w", n, err)}
	}
	want := int(width)
	if want == 0 {
		want = layout.EntryBundleWidth
	}
	if len(eb.Entries) < want {
		return bundle{err: fmt.Errorf("entry bundle %d holds %d entries, want %d", n, len(eb.Entries), want)}
	}
	b := bundle{entries: eb.Entries[:want]}
	if b.foreign, b.noForeign, b.err = s.fetchForeign(ctx, n, width); b.err != nil {
		return b
	}
	if s.noDisclosures.Load() {
		b.none = true
		return b
	}
	var err error
	b.disclosures, err = s.fetchDisclosures(ctx, n, width)
	switch {
	case errors.Is(err, ErrNoDisclosures):
		b.none = true
	case err != nil:
		b.err = err
	}
	return b
}

// fetchForeign fetches the foreign marks of bundle n of width (0: full).
// none is true when the source serves no foreign marks.
func (s *httpSource) fetchForeign(ctx context.Context, n uint64, width uint8) (marks []uint64, none bool, err error) {
	if s.noForeign.Load() {
		return nil, true, nil
	}
	err = s.resource(ctx, "foreign/", 0, n, width, maxForeignMarks, func(u string, body io.Reader) error {
		var err error
		marks, err = records.DecodeForeignMarks(n, body)
		var fe *records.ForeignMarkError
		if errors.As(err, &fe) {
			return &SourceError{URL: u, Index: fe.Index, HasIndex: true, Problem: fe.Problem}
		}
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		s.noForeign.Store(true)
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("foreign marks of bundle %d: %w", n, err)
	}
	return marks, false, nil
}

// The longest fields a disclosure may hold, in bytes: 4 per code point,
// and a salt of 32 bytes (33 is the most that 44 base64 characters hold).
const (
	maxSalt       = 33
	maxNameBytes  = 4 * 200
	maxAffilBytes = 4 * 1000
	maxCountry    = 4 * 100
)

// fetchDisclosures fetches the disclosure bundle n of width (0: full).
func (s *httpSource) fetchDisclosures(ctx context.Context, n uint64, width uint8) (map[uint64]*pb.Disclosure, error) {
	var out map[uint64]*pb.Disclosure
	err := s.resource(ctx, "disclosures/", 0, n, width, maxDisclosureBundle, func(u string, body io.Reader) error {
		var err error
		out, err = decodeDisclosures(u, n, body)
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		s.noDisclosures.Store(true)
		return nil, fmt.Errorf("disclosure bundle %d: %w", n, ErrNoDisclosures)
	}
	if err != nil {
		return nil, fmt.Errorf("disclosure bundle %d: %w", n, err)
	}
	return out, nil
}

// decodeDisclosures reads a disclosure bundle as it arrives, one element
// at a time: an index repeated or outside bundle n, or fields longer than
// a disclosure can hold, are a [*SourceError].
func decodeDisclosures(u string, n uint64, body io.Reader) (map[uint64]*pb.Disclosure, error) {
	dec := json.NewDecoder(body)
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, fmt.Errorf("not a JSON array (%v)", err)
	}
	first := n * layout.EntryBundleWidth
	out := map[uint64]*pb.Disclosure{}
	bad := func(i uint64, format string, args ...any) error {
		return &SourceError{URL: u, Index: i, HasIndex: true, Problem: fmt.Sprintf(format, args...)}
	}
	for dec.More() {
		var d records.BundledDisclosure
		if err := dec.Decode(&d); err != nil {
			return nil, err
		}
		switch {
		case d.Index < first || d.Index >= first+layout.EntryBundleWidth:
			return nil, bad(d.Index, "outside disclosure bundle %d (indexes %d to %d)", n, first, first+layout.EntryBundleWidth-1)
		case out[d.Index] != nil:
			return nil, bad(d.Index, "served twice in disclosure bundle %d", n)
		case len(d.Salt) > maxSalt || len(d.Name) > maxNameBytes || len(d.Affiliation) > maxAffilBytes || len(d.Country) > maxCountry:
			return nil, bad(d.Index, "a field longer than a disclosure can hold")
		}
		out[d.Index] = d.Disclosure()
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return nil, fmt.Errorf("the JSON array does not end (%v)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON array")
	}
	return out, nil
}

func (s *httpSource) Entries(ctx context.Context, start, end uint64, fn func([]Entry) error) error {
	if start >= end {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first, last := start/layout.EntryBundleWidth, (end-1)/layout.EntryBundleWidth
	// Fetch up to fetchAhead bundles at once, and hand them over in order.
	futures := make(chan chan bundle, fetchAhead)
	go func() {
		defer close(futures)
		for n := first; n <= last; n++ {
			f := make(chan bundle, 1)
			select {
			case futures <- f:
			case <-ctx.Done():
				return
			}
			go func() { f <- s.fetchBundle(ctx, n, end) }()
		}
	}()
	n := first
	for f := range futures {
		var b bundle
		select {
		case b = <-f:
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			return b.err
		}
		base := n * layout.EntryBundleWidth
		batch := make([]Entry, 0, len(b.entries))
		for i, data := range b.entries {
			idx := base + uint64(i)
			if idx < start || idx >= end {
				continue
			}
			batch = append(batch, Entry{Index: idx, Record: data, Disclosure: b.disclosures[idx], NoDisclosures: b.none,
				Foreign: slices.Contains(b.foreign, idx), NoForeignMarks: b.noForeign})
		}
		if err := fn(batch); err != nil {
			return err
		}
		n++
	}
	if n != last+1 {
		return ctx.Err()
	}
	return nil
}

func (s *httpSource) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	var b []byte
	err := s.resource(ctx, fmt.Sprintf("tile/%d/", level), level, index, p, maxTile, readAll(&b))
	return b, err
}

func (s *httpSource) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	pbuilder, err := tclient.NewProofBuilder(ctx, to, s.readTile)
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", from, to, err)
	}
	p, err := pbuilder.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", from, to, err)
	}
	return p, nil
}

func (s *httpSource) Disclosures(ctx context.Context, size uint64, indexes []uint64) (map[uint64]*pb.Disclosure, error) {
	bundles := map[uint64]bool{}
	for _, i := range indexes {
		if i >= size {
			return nil, fmt.Errorf("disclosure of %d: beyond the tree of size %d", i, size)
		}
		bundles[i/layout.EntryBundleWidth] = true
	}
	want := map[uint64]bool{}
	for _, i := range indexes {
		want[i] = true
	}
	out := map[uint64]*pb.Disclosure{}
	for n := range bundles {
		ds, err := s.fetchDisclosures(ctx, n, layout.PartialTileSize(0, n, size))
		if err != nil {
			return nil, err
		}
		for i, d := range ds {
			if want[i] {
				out[i] = d
			}
		}
	}
	return out, nil
}
