package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server/internal/web"
)

// HTTPHandler returns the HTTP API: the tlog-tiles read API, the
// disclosure bundles and the foreign marks under /log/, Prometheus metrics at /metrics,
// /healthz (readiness: can it write) and /livez (liveness: does it serve),
// and the web pages (package web) at every other path.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	var policy []byte
	if s.cfg.WitnessPolicy != nil {
		policy = s.cfg.WitnessPolicy.ForVerifiers()
	}
	if pages, err := web.New(web.Config{Source: webSource{s}, View: s.ledger.LettersView(), Logger: s.log, WitnessPolicy: policy}); err == nil {
		mux.Handle("/", pages)
	} else {
		s.log.Error("the web pages cannot be served", slog.Any("error", err))
	}
	mux.HandleFunc("GET /log/checkpoint", s.serveCheckpoint)
	mux.HandleFunc("GET /log/tile/entries/{n...}", s.serveEntryBundle)
	mux.HandleFunc("GET /log/tile/{level}/{n...}", s.serveTile)
	mux.HandleFunc("GET /log/disclosures/{n...}", s.serveDisclosures)
	mux.HandleFunc("GET /log/foreign/{n...}", s.serveForeign)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /livez", s.serveLive)
	return withRequestIDs(mux)
}

// serveHealth says whether the ledger can write: "ok", or "unhealthy" with
// a reason safe for anyone; the server's log has the full one.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.stopped(w, r) {
		return
	}
	if err := s.ledger.Healthy(); err != nil {
		s.httpError(w, r, http.StatusServiceUnavailable, "unhealthy: writes are refused now, reads are served", err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// serveLive says that the process serves: "ok", whatever the log's state.
// It is for liveness probes: a frontend that stopped signing (it saw a
// fork, or a restored database) must not be restarted, which would erase
// the evidence; /healthz, for readiness, takes it out of service.
func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "ok")
}

const (
	immutable = "public, max-age=31536000, immutable"
	shortLife = "public, max-age=5"
)

func (s *Server) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	if s.stopped(w, r) {
		return
	}
	cp, err := s.ledger.Checkpoint(r.Context())
	if err != nil {
		s.httpError(w, r, http.StatusServiceUnavailable, "no checkpoint yet", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(cp.Raw)
}

// stopped answers 503 when the log stopped for good (see
// ledger.ErrStopped): its tiles and disclosures are no longer vouched for.
// It reports whether it answered.
func (s *Server) stopped(w http.ResponseWriter, r *http.Request) bool {
	if err := s.ledger.Stopped(); err != nil {
		s.httpError(w, r, http.StatusServiceUnavailable, stoppedMessage, err)
		return true
	}
	return false
}

// stoppedMessage is what anyone is told of a log that stopped for good;
// the server's log says why.
const stoppedMessage = "unavailable: this server stopped signing the log, and serves nothing of it until its operator acts"

// published checks that a resource of width p (0: full) at index n of a
// level is within the published tree, so that nothing beyond a signed
// checkpoint is served.
func (s *Server) published(r *http.Request, level, n uint64, p uint8) bool {
	cp, err := s.ledger.Checkpoint(r.Context())
	if err != nil {
		return false
	}
	width := uint64(p)
	if width == 0 {
		width = layout.TileWidth
	}
	// Entries covered by the resource's last node.
	last := (n*layout.TileWidth + width) << (8 * level)
	return last <= cp.Size || p != 0 && layout.PartialTileSize(level, n, cp.Size) == p
}

func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, b []byte, err error, p uint8) {
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		s.httpError(w, r, http.StatusInternalServerError, "cannot read the resource", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if p == 0 {
		w.Header().Set("Cache-Control", immutable)
	} else {
		w.Header().Set("Cache-Control", shortLife)
	}
	w.Write(b)
}

func (s *Server) serveTile(w http.ResponseWriter, r *http.Request) {
	if s.stopped(w, r) {
		return
	}
	level, n, p, err := layout.ParseTileLevelIndexPartial(r.PathValue("level"), r.PathValue("n"))
	if err != nil {
		s.httpError(w, r, http.StatusBadRequest, "not a tile of the tlog-tiles API", err)
		return
	}
	if !s.published(r, level, n, p) {
		http.NotFound(w, r)
		return
	}
	b, err := s.engine.ReadTile(r.Context(), level, n, p)
	s.writeResource(w, r, b, err, p)
}

func (s *Server) serveEntryBundle(w http.ResponseWriter, r *http.Request) {
	if s.stopped(w, r) {
		return
	}
	n, p, err := layout.ParseTileIndexPartial(r.PathValue("n"))
	if err != nil {
		s.httpError(w, r, http.StatusBadRequest, "not an entry bundle of the tlog-tiles API", err)
		return
	}
	if !s.published(r, 0, n, p) {
		http.NotFound(w, r)
		return
	}
	b, err := s.engine.ReadEntryBundle(r.Context(), n, p)
	s.writeResource(w, r, b, err, p)
}

// bundleRange parses the path of a resource beside an entry bundle
// (<N>[.p/<W>], optionally with ".json") and returns the entries it
// covers, [from, to). It answers 400 or 404 itself, and reports whether
// the resource is within the published log.
func (s *Server) bundleRange(w http.ResponseWriter, r *http.Request, what string) (from, to uint64, ok bool) {
	n, p, err := layout.ParseTileIndexPartial(strings.TrimSuffix(r.PathValue("n"), ".json"))
	if err != nil {
		s.httpError(w, r, http.StatusBadRequest, "not "+what, err)
		return 0, 0, false
	}
	if !s.published(r, 0, n, p) {
		http.NotFound(w, r)
		return 0, 0, false
	}
	width := uint64(p)
	if width == 0 {
		width = layout.EntryBundleWidth
	}
	from = n * layout.EntryBundleWidth
	return from, from + width, true
}

// serveDisclosures serves the public, unredacted disclosures of an entry
// bundle as a JSON array. The bundle can change (a redaction empties an
// element), so it has a short cache life.
func (s *Server) serveDisclosures(w http.ResponseWriter, r *http.Request) {
	if s.stopped(w, r) {
		return
	}
	from, to, ok := s.bundleRange(w, r, "a disclosure bundle")
	if !ok {
		return
	}
	rows, err := s.ledger.Disclosures(r.Context(), from, to)
	if err != nil {
		s.httpError(w, r, http.StatusServiceUnavailable, "disclosures are not available now", err)
		return
	}
	out := make([]records.BundledDisclosure, 0, len(rows))
	for _, d := range rows {
		out = append(out, records.NewBundledDisclosure(d.Index, d.Disclosure))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", shortLife)
	json.NewEncoder(w).Encode(out)
}

// serveForeign serves the foreign marks of an entry bundle (see
// records.DecodeForeignMarks): a JSON array of the indexes of the entries
// of the bundle that no server of the log admitted, in ascending order,
// empty on a log that orders its own entries. A mark is recorded when a
// server first reads the entry, before it publishes a checkpoint that
// covers it, but the resource is not part of the signed log: it has a
// short cache life, as the disclosures.
func (s *Server) serveForeign(w http.ResponseWriter, r *http.Request) {
	if s.stopped(w, r) {
		return
	}
	from, to, ok := s.bundleRange(w, r, "the foreign marks of an entry bundle")
	if !ok {
		return
	}
	marks, err := s.ledger.Foreign(r.Context(), from, to)
	if err != nil {
		s.httpError(w, r, http.StatusServiceUnavailable, "the foreign marks are not available now", err)
		return
	}
	if marks == nil {
		marks = []uint64{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", shortLife)
	json.NewEncoder(w).Encode(marks)
}
