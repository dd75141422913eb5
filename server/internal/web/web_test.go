package web

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/webui"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// endorsingSource is a memorySource whose Endorse answers what a test
// says.
type endorsingSource struct {
	*memorySource
	err  error
	got  *pb.EndorseRequest
	addr net.Addr
}

func (e *endorsingSource) Endorse(_ context.Context, addr net.Addr, req *pb.EndorseRequest) (*pb.EndorseResponse, error) {
	e.got, e.addr = req, addr
	if e.err != nil {
		return nil, e.err
	}
	return &pb.EndorseResponse{Result: &pb.WriteResult{Receipt: []byte("receipt"), Index: 7}}, nil
}

func get(t *testing.T, h http.Handler, path, acceptLanguage string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if acceptLanguage != "" {
		r.Header.Set("Accept-Language", acceptLanguage)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// smallOrganiser is the organiser key smallLetter lists: the pages follow
// the rules of a letter, under which only a listed key acts for it (they
// check no signature: the audit does).
var smallOrganiser = bytes.Repeat([]byte{7}, 32)

func smallLetter(t *testing.T) *memorySource {
	m := &memorySource{}
	m.add(t, &pb.Record{AcceptedAt: 1_800_000_000, Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "small", Title: "Small", Text: "Text.\n", Policy: pb.Policy_POLICY_OPEN,
		OrganiserKeys: [][]byte{smallOrganiser}}}}, nil)
	public := func(name string) *pb.Disclosure { return &pb.Disclosure{Name: name} }
	m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "small", Visibility: pb.Visibility_VISIBILITY_PUBLIC}}}, public("Ales Public"))
	// A source that served the disclosure of a private endorsement would
	// be wrong; the page still never shows it.
	m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "small", Visibility: pb.Visibility_VISIBILITY_PRIVATE}}}, public("Hanna Private"))
	m.add(t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "small", Visibility: pb.Visibility_VISIBILITY_PUBLIC}}}, public("Tatsiana Redacted"))
	return m
}

func TestPagesHeadersAndLanguages(t *testing.T) {
	h, err := New(Config{Source: smallLetter(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, accept, lang string
		code               int
	}{
		{"/", "", "en", 200},
		{"/?lang=ru", "be", "ru", 200},
		{"/letters/small", "be-BY,be;q=0.9", "be", 200},
		{"/verify", "ru", "ru", 200},
		{"/letters/nothing", "", "en", 404},
	} {
		w := get(t, h, c.path, c.accept)
		if w.Code != c.code {
			t.Errorf("%s: %d, want %d", c.path, w.Code, c.code)
		}
		if got := w.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("%s: Content-Security-Policy %q", c.path, got)
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s sets a cookie", c.path)
		}
		body := w.Body.String()
		if !strings.Contains(body, `<html lang="`+c.lang+`">`) {
			t.Errorf("%s with Accept-Language %q is not in %s", c.path, c.accept, c.lang)
		}
		if strings.Contains(body, webui.Missing) {
			t.Errorf("%s shows a missing string", c.path)
		}
		for _, third := range []string{"http://", "https://", "//cdn", "<style", " style=", "<script>"} {
			if strings.Contains(strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, ""), third) {
				t.Errorf("%s holds %q: no third-party resource, inline script or style", c.path, third)
			}
		}
	}
	w := get(t, h, "/static/verifier.wasm", "")
	if w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Content-Type") != "application/wasm" || !bytes.HasPrefix(w.Body.Bytes(), []byte{0x1f, 0x8b}) {
		t.Errorf("verifier.wasm: %v", w.Header())
	}
	if w := get(t, h, "/static/..%2fweb.go", ""); w.Code != http.StatusNotFound {
		t.Errorf("a path out of the static files: %d", w.Code)
	}
}

func TestPrivateAndRedactedNamesNeverShown(t *testing.T) {
	m := smallLetter(t)
	h, err := New(Config{Source: m})
	if err != nil {
		t.Fatal(err)
	}
	body := get(t, h, "/letters/small", "").Body.String()
	if !strings.Contains(body, "Ales Public") || !strings.Contains(body, "Tatsiana Redacted") {
		t.Fatal("the public names are not shown")
	}
	if strings.Contains(body, "Hanna Private") {
		t.Error("a private name is shown")
	}
	m.add(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: 3, Reason: pb.Reason_REASON_SAFETY,
		Authorisation: &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: &pb.Signature{PublicKey: smallOrganiser}}}}}}, nil)
	body = get(t, h, "/letters/small?q=tatsiana", "").Body.String()
	if strings.Contains(body, "Tatsiana Redacted") {
		t.Error("a redacted name is still shown")
	}
	for _, want := range []string{`data-count="public">1<`, `data-count="private">1<`, `data-count="redacted">1<`, `data-count="counted">3<`, `data-kind="redaction"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

func signRequest(t *testing.T, h http.Handler, letter, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/letters/"+letter+"/sign", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.RemoteAddr = "192.0.2.7:4321"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestSignEndpoint(t *testing.T) {
	src := &endorsingSource{memorySource: smallLetter(t)}
	h, err := New(Config{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := proto.Marshal(&pb.EndorseRequest{Endorsement: &pb.Endorsement{LetterId: "small"}})
	if w := signRequest(t, h, "small", "application/x-protobuf", req); w.Code != 200 || !strings.Contains(w.Body.String(), `"index":7`) {
		t.Fatalf("sign: %d %s", w.Code, w.Body)
	}
	if src.addr.String() != "192.0.2.7:4321" {
		t.Errorf("Endorse got the address %v: the rate limit per address needs the client's", src.addr)
	}
	if w := signRequest(t, h, "small", "application/x-www-form-urlencoded", req); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("a form post: %d", w.Code)
	}
	if w := signRequest(t, h, "other", "application/x-protobuf", req); w.Code != 400 || !strings.Contains(w.Body.String(), "endorsement.letter_id") {
		t.Errorf("another letter's endorsement: %d %s", w.Code, w.Body)
	}
	if w := signRequest(t, h, "small", "application/x-protobuf", []byte{0xff, 0xff}); w.Code != 400 {
		t.Errorf("not a protobuf: %d", w.Code)
	}
	bad := status.New(codes.InvalidArgument, "disclosure.name: must not be empty")
	bad, _ = bad.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "disclosure.name", Description: "must not be empty"}}})
	for _, c := range []struct {
		err  error
		code int
		want string
	}{
		{bad.Err(), 400, `"field":"disclosure.name"`},
		{status.Error(codes.ResourceExhausted, "rate limit for writes without a token"), 429, "rate limit"},
		{status.Error(codes.PermissionDenied, "letter small is curated"), 403, "curated"},
		{status.Error(codes.Internal, "internal error; the server's log has the details"), 500, "internal error"},
		{errors.New("dial tcp 10.0.0.5:5432: connection refused"), 500, "internal error"},
	} {
		src.err = c.err
		w := signRequest(t, h, "small", "application/x-protobuf", req)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.want) || strings.Contains(w.Body.String(), "10.0.0.5") {
			t.Errorf("%v: %d %s, want %d with %q", c.err, w.Code, w.Body, c.code, c.want)
		}
	}
}
