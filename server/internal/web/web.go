// Package web serves the pages of undersigned for people who will not use
// a terminal (DESIGN.md §8a): the letters of the log, each letter with its
// text, counts, a chart and a searchable roster, all readable without
// JavaScript; the verify page, where a receipt is checked in the browser;
// and the endpoint through which an open letter is signed from its page.
//
// It reads the log through a [Source], which the server implements, and
// keeps a view of it in memory that follows the log as it grows, record by
// record, as the rules of a letter say (package client/rules: the function
// the server's admission, the audit and the browser apply). Private and
// redacted names never reach it: the source serves only public, unredacted
// disclosures, and a redaction read from the log drops the name it hides
// (even one that breaks the rules: hiding a name is always safe).
//
// Every response forbids third-party resources with a strict
// Content-Security-Policy; no page sets a cookie.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/webui"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Source is what the pages read and write through.
type Source interface {
	// Checkpoint returns the latest published checkpoint and its size.
	Checkpoint(ctx context.Context) (raw []byte, size uint64, err error)
	// Entries calls fn with the entries [start, end) in order, each with
	// its public, unredacted disclosure if it has one.
	Entries(ctx context.Context, start, end uint64, fn func([]*pb.Entry) error) error
	// Origin and VerifierKey describe the log.
	Origin() string
	VerifierKey() string
	// Endorse appends an endorsement sent by a client at addr without a
	// token, exactly as the gRPC Endorse call does (the same rate limits,
	// rules and errors). Its errors are gRPC statuses with safe messages.
	Endorse(ctx context.Context, addr net.Addr, req *pb.EndorseRequest) (*pb.EndorseResponse, error)
}

// Config configures the pages.
type Config struct {
	// Source is the log.
	Source Source
	// Logger receives what went wrong while serving; default discards.
	Logger *slog.Logger
}

// Handler serves the pages.
type Handler struct {
	src   Source
	log   *slog.Logger
	view  *view
	pages *template.Template
	mux   *http.ServeMux
}

//go:embed templates/*.html
var templates embed.FS

// ContentSecurityPolicy is sent with every response: scripts only from the
// server itself (and WebAssembly compiled from them), no inline script or
// style, nothing from any other host.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// New returns the pages' handler.
func New(cfg Config) (*Handler, error) {
	t, err := webui.Templates()
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	t, err = t.Funcs(funcs).ParseFS(templates, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	h := &Handler{src: cfg.Source, log: cfg.Logger, pages: t, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.view = newView(h.log)
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /letters/{id}", h.letter)
	h.mux.HandleFunc("POST /letters/{id}/sign", h.sign)
	h.mux.HandleFunc("GET /verify", h.verify)
	h.mux.HandleFunc("GET /static/{file}", h.static)
	return h, nil
}

var funcs = template.FuncMap{
	"date": func(unix int64) string { return time.Unix(unix, 0).UTC().Format("2006-01-02 15:04") },
}

// ServeHTTP serves a page, with the security headers of every response.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// page starts a page's data: its language, from ?lang= or the browser's
// languages, and a language switch that keeps the rest of the query.
func (h *Handler) page(r *http.Request, titleKey string, args ...any) webui.Page {
	lang := webui.Negotiate(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
	p := webui.NewPage(lang, "", func(code string) string {
		q := r.URL.Query()
		q.Set("lang", code)
		return r.URL.Path + "?" + q.Encode()
	})
	p.Title = p.T(titleKey, args...)
	p.Static, p.Home, p.Verify = "/static/", withLang("/", lang), withLang("/verify", lang)
	p.Footer = p.T("footer.log", h.src.Origin())
	return p
}

func withLang(path, lang string) string {
	return path + "?lang=" + url.QueryEscape(lang)
}

func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := h.pages.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("web: render", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "the page could not be built", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

func (h *Handler) unavailable(w http.ResponseWriter, err error) {
	h.log.Error("web: reading the log", slog.Any("error", err))
	http.Error(w, "the log cannot be read now; try again soon", http.StatusServiceUnavailable)
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	p := h.page(r, "verify.title")
	h.render(w, "verify", webui.VerifyPage{Page: p, LogKey: h.src.VerifierKey(), Tiles: "/log/"})
}

func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "verifier.wasm" {
		h.wasm(w, r)
		return
	}
	if name == webui.WasmFile {
		http.NotFound(w, r)
		return
	}
	b, err := readStatic(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", etag(b))
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// wasm serves the verifier's WebAssembly as it is stored: gzipped, with
// Content-Encoding: gzip (every browser that runs WebAssembly accepts it).
func (h *Handler) wasm(w http.ResponseWriter, r *http.Request) {
	b, err := readStatic(webui.WasmFile)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/wasm")
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", etag(b))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// maxSignRequest bounds the body of a signing request.
const maxSignRequest = 64 << 10

type signResponse struct {
	Receipt   string `json:"receipt,omitempty"`
	Index     uint64 `json:"index"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Error     string `json:"error,omitempty"`
	Field     string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v signResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// sign takes an endorsement signed in the browser (a protobuf
// EndorseRequest) and appends it through the source's Endorse, which is the
// gRPC call's path. The content type cannot be sent by a form of another
// site without the browser asking first, which this server never allows.
func (h *Handler) sign(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/x-protobuf" {
		writeJSON(w, http.StatusUnsupportedMediaType, signResponse{Error: "the body must be a protobuf EndorseRequest (application/x-protobuf)"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSignRequest))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, signResponse{Error: fmt.Sprintf("the body must be at most %d bytes", maxSignRequest)})
		return
	}
	req := new(pb.EndorseRequest)
	if err := proto.Unmarshal(body, req); err != nil {
		writeJSON(w, http.StatusBadRequest, signResponse{Error: "the body is not a protobuf EndorseRequest"})
		return
	}
	if id := req.GetEndorsement().GetLetterId(); id != r.PathValue("id") {
		writeJSON(w, http.StatusBadRequest, signResponse{Error: "endorsement.letter_id: must be the letter of this page", Field: "endorsement.letter_id"})
		return
	}
	if req.GetIdempotencyKey() != "" {
		writeJSON(w, http.StatusBadRequest, signResponse{Error: "idempotency_key: must be empty", Field: "idempotency_key"})
		return
	}
	addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		addr = &net.TCPAddr{}
	}
	resp, err := h.src.Endorse(r.Context(), addr, req)
	if err != nil {
		code, out := fromStatus(err)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, code, out)
		return
	}
	res := resp.GetResult()
	writeJSON(w, http.StatusOK, signResponse{Receipt: base64.StdEncoding.EncodeToString(res.GetReceipt()), Index: res.GetIndex(), Duplicate: res.GetDuplicate()})
}

// fromStatus maps a gRPC status to an HTTP code and its safe message.
func fromStatus(err error) (int, signResponse) {
	st, ok := status.FromError(err)
	if !ok {
		return http.StatusInternalServerError, signResponse{Error: "internal error"}
	}
	out := signResponse{Error: st.Message()}
	codes := map[codes.Code]int{
		codes.InvalidArgument: http.StatusBadRequest, codes.Unauthenticated: http.StatusUnauthorized,
		codes.PermissionDenied: http.StatusForbidden, codes.AlreadyExists: http.StatusConflict,
		codes.FailedPrecondition: http.StatusConflict, codes.NotFound: http.StatusNotFound,
		codes.ResourceExhausted: http.StatusTooManyRequests, codes.Unavailable: http.StatusServiceUnavailable,
		codes.OutOfRange: http.StatusBadRequest, codes.DeadlineExceeded: http.StatusGatewayTimeout,
	}
	code, ok := codes[st.Code()]
	if !ok {
		code = http.StatusInternalServerError
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			out.Field = br.GetFieldViolations()[0].GetField()
		}
	}
	return code, out
}

func unmarshal(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return errors.New("not a record")
	}
	return nil
}

func atoi(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return def
	}
	return n
}
