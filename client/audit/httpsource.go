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
	"strings"
	"sync/atomic"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// httpSource reads the log over plain HTTP: the tlog-tiles API and the
// disclosure bundles.
type httpSource struct {
	base   *url.URL
	client *http.Client
	// noDisclosures is set once a disclosure bundle that must exist was
	// not found: the source serves none.
	noDisclosures atomic.Bool
}

// fetchAhead is how many bundles an HTTP source fetches at once.
const fetchAhead = 8

// maxResource bounds what the HTTP source reads of one resource.
const maxResource = 64 << 20

// NewHTTPSource returns a [Source] that reads a log over plain HTTP, as
// published under prefix: the tlog-tiles API (prefix + "checkpoint",
// "tile/...", "tile/entries/...") and the disclosure bundles
// (prefix + "disclosures/<N>[.p/<W>]", a JSON array of {index, salt,
// name, affiliation, country}). For a server, prefix is its HTTP address
// followed by /log/; a prefix with an empty path gets "/log/" added. It
// reads a mirror or a CDN copy just as well; one without disclosure
// bundles yields entries marked NoDisclosures. c may be nil for
// http.DefaultClient.
func NewHTTPSource(prefix string, c *http.Client) (Source, error) {
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
	return &httpSource{base: u, client: c}, nil
}

// get fetches a resource; a 404 is an error wrapping os.ErrNotExist.
func (s *httpSource) get(ctx context.Context, path string) ([]byte, error) {
	u := s.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", u, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("get %s: %w", u, os.ErrNotExist)
	default:
		return nil, fmt.Errorf("get %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResource+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", u, err)
	}
	if len(b) > maxResource {
		return nil, fmt.Errorf("get %s: larger than %d bytes", u, maxResource)
	}
	return b, nil
}

func (s *httpSource) Checkpoint(ctx context.Context) ([]byte, error) {
	return s.get(ctx, layout.CheckpointPath)
}

// resource fetches the resource of a tile-like path (dir + N[.p/W]) that
// covers the first width entries of bundle n. A partial resource may be
// gone once the log grew: then it falls back to the full one, and then to
// the partial one of the latest checkpoint. The result may cover more than
// width entries.
func (s *httpSource) resource(ctx context.Context, dir string, level, n uint64, width uint8) ([]byte, error) {
	b, err := s.get(ctx, dir+layout.NWithSuffix(level, n, width))
	if err == nil || width == 0 || !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	b, err = s.get(ctx, dir+layout.NWithSuffix(level, n, 0))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	raw, cerr := s.Checkpoint(ctx)
	if cerr != nil {
		return nil, err
	}
	var cp log.Checkpoint
	if _, cerr := cp.Unmarshal(raw); cerr != nil {
		return nil, err
	}
	if w := layout.PartialTileSize(level, n, cp.Size); w > width {
		return s.get(ctx, dir+layout.NWithSuffix(level, n, w))
	}
	return nil, err
}

// bundle is one fetched entry bundle with its disclosures.
type bundle struct {
	entries     [][]byte
	disclosures map[uint64]*pb.Disclosure
	none        bool
	err         error
}

func (s *httpSource) fetchBundle(ctx context.Context, n, end uint64) bundle {
	width := layout.PartialTileSize(0, n, end)
	raw, err := s.resource(ctx, "tile/entries/", 0, n, width)
	if err != nil {
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
	if s.noDisclosures.Load() {
		b.none = true
		return b
	}
	b.disclosures, err = s.fetchDisclosures(ctx, n, width)
	switch {
	case errors.Is(err, ErrNoDisclosures):
		b.none = true
	case err != nil:
		b.err = err
	}
	return b
}

// fetchDisclosures fetches the disclosure bundle n of width (0: full).
func (s *httpSource) fetchDisclosures(ctx context.Context, n uint64, width uint8) (map[uint64]*pb.Disclosure, error) {
	raw, err := s.resource(ctx, "disclosures/", 0, n, width)
	if errors.Is(err, os.ErrNotExist) {
		s.noDisclosures.Store(true)
		return nil, fmt.Errorf("disclosure bundle %d: %w", n, ErrNoDisclosures)
	}
	if err != nil {
		return nil, fmt.Errorf("disclosure bundle %d: %w", n, err)
	}
	var list []records.BundledDisclosure
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("disclosure bundle %d: %w", n, err)
	}
	first := n * layout.EntryBundleWidth
	out := make(map[uint64]*pb.Disclosure, len(list))
	for _, d := range list {
		if d.Index < first || d.Index >= first+layout.EntryBundleWidth {
			return nil, fmt.Errorf("disclosure bundle %d: index %d is outside the bundle", n, d.Index)
		}
		out[d.Index] = d.Disclosure()
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
			batch = append(batch, Entry{Index: idx, Record: data, Disclosure: b.disclosures[idx], NoDisclosures: b.none})
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
	return s.resource(ctx, fmt.Sprintf("tile/%d/", level), level, index, p)
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
