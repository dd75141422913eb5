package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/servertest"
)

// testTimeout bounds every call a test makes; tests fail rather than hang.
const testTimeout = 30 * time.Second

// testServer is a server on a data folder, served in the test's process,
// with an organiser key generated for the test.
type testServer struct {
	*servertest.Server
	// Org is an organiser key generated for the test.
	Org ed25519.PrivateKey
}

type serverOption func(*servertest.Options)

func withOrigin(origin string) serverOption {
	return func(o *servertest.Options) { o.Origin = origin }
}

func withOpenRate(r server.RateLimits) serverOption {
	return func(o *servertest.Options) { o.OpenRate = r }
}

// startServer starts a server on dir, on the embedded engine with a fast
// batch age and the shortest checkpoint interval Tessera allows, and
// serves it until the test ends.
func startServer(t *testing.T, dir string, opts ...serverOption) *testServer {
	t.Helper()
	o := servertest.Options{Dir: dir}
	for _, f := range opts {
		f(&o)
	}
	ts := &testServer{Server: servertest.Start(t, o), Org: newOrganiserKey(t)}
	readToken(t, ts.Srv.TokenPath)
	return ts
}

// stop stops serving and closes the server; it may be called more than
// once.
func (ts *testServer) stop(t *testing.T) { ts.Stop(t) }

func newOrganiserKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the token file: %v", err)
	}
	tok := strings.TrimSpace(string(b))
	if !strings.HasPrefix(tok, ledger.TokenPrefix) {
		t.Fatalf("token file %s holds %q, want a token starting %q", path, tok, ledger.TokenPrefix)
	}
	return tok
}

// dial returns a client that sends token with its writes (none when
// token is empty), pinned to the key in the data folder's log.pub.
func (ts *testServer) dial(t *testing.T, token string, opts ...grpc.DialOption) *client.Client {
	t.Helper()
	return ts.Dial(t, token, opts...)
}

// conn returns a raw gRPC connection to the server.
func (ts *testServer) conn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return ts.Conn(t)
}

// logPub returns the verifier key the data folder publishes.
func (ts *testServer) logPub(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.Dir, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// sampleLetterText is the text of client/testdata/sample-letter.txt.
func sampleLetterText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "client", "testdata", "sample-letter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// publish publishes a letter with the sample text, signed by ts.Org.
func (ts *testServer) publish(t *testing.T, c *client.Client, id string, policy pb.Policy) *pb.Letter {
	t.Helper()
	l := client.NewLetter(c.Origin(), client.LetterDraft{
		ID: id, Title: "Keep the library open (" + id + ")", Text: sampleLetterText(t), Language: "en", Policy: policy,
	}, ts.Org)
	if _, err := c.PublishLetter(testContext(t), l, ""); err != nil {
		t.Fatalf("publish letter %q: %v", id, err)
	}
	return l
}

// endorsement builds a public endorsement of l signed by ts.Org.
func (ts *testServer) endorsement(origin string, l *pb.Letter, name, affiliation string) *client.Endorsement {
	return client.NewEndorsement(origin, l, client.Signer{
		Fields:       records.Fields{Name: name, Affiliation: affiliation},
		OrganiserKey: ts.Org,
	})
}

// endorse sends e and fails the test if it is refused.
func endorse(t *testing.T, c *client.Client, e *client.Endorsement) *client.Result {
	t.Helper()
	r, err := c.Endorse(testContext(t), e, "")
	if err != nil {
		t.Fatalf("endorse %q: %v", e.Disclosure.GetName(), err)
	}
	return r
}

// logSize returns the size of the latest published checkpoint.
func logSize(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	info, err := c.API().GetLogInfo(testContext(t), &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatalf("GetLogInfo: %v", err)
	}
	return info.GetSize()
}

// wantCode fails the test unless err is a gRPC status with code.
func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", code)
	}
	if got := status.Code(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
}

// wantField fails the test unless err is InvalidArgument naming field in
// its message and in its BadRequest detail.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument)
	st := status.Convert(err)
	if !strings.Contains(st.Message(), field) {
		t.Errorf("message %q does not name the field %q", st.Message(), field)
	}
	found := false
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if strings.HasPrefix(v.GetField(), field) && v.GetDescription() != "" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("no BadRequest field violation for %q with a rule in %v", field, st.Details())
	}
}

// rosterAll reads every page of a letter's roster with pages of pageSize.
func rosterAll(t *testing.T, c *client.Client, letterID string, pageSize uint32) ([]*pb.RosterEntry, *pb.Counts) {
	t.Helper()
	var out []*pb.RosterEntry
	var counts *pb.Counts
	var size uint64
	token := ""
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatal("the roster does not end")
		}
		resp, err := c.API().GetRoster(testContext(t), &pb.GetRosterRequest{LetterId: letterID, PageSize: pageSize, PageToken: token, TreeSize: size})
		if err != nil {
			t.Fatalf("GetRoster: %v", err)
		}
		if page == 0 {
			counts, size = resp.GetCounts(), resp.GetTreeSize()
		} else if resp.GetTreeSize() != size {
			t.Fatalf("roster page %d is at tree size %d, the first at %d", page, resp.GetTreeSize(), size)
		}
		out = append(out, resp.GetEntries()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return out, counts
}

// entriesAll reads every entry of the published log.
func entriesAll(t *testing.T, c *client.Client) []*pb.Entry {
	t.Helper()
	stream, err := c.API().GetEntries(testContext(t), &pb.GetEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.Entry
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("GetEntries: %v", err)
		}
		out = append(out, resp.GetEntries()...)
	}
}

// httpGet fetches path from the HTTP API.
func httpGet(t *testing.T, base, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// filesContaining returns the files under dir (relative paths) that hold
// any of needles.
func filesContaining(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				rel, _ := filepath.Rel(dir, path)
				found = append(found, fmt.Sprintf("%s holds %q", rel, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return found
}

// nfcTrim is the form the format keeps a field in, computed here
// independently of the records package.
func nfcTrim(s string) string { return strings.TrimSpace(norm.NFC.String(s)) }

// sampleRow is a row of client/testdata/sample-signatories.csv.
type sampleRow struct {
	Line        int
	Name        string
	Affiliation string
	Private     bool
	Note        string
}

func (r sampleRow) invalid() bool { return strings.HasPrefix(r.Note, "invalid:") }

// key identifies the row's person as the dedup index does: the canonical
// name, affiliation and (empty) country.
func (r sampleRow) key() string { return nfcTrim(r.Name) + "\x00" + nfcTrim(r.Affiliation) + "\x00" }

func disclosureKey(d *pb.Disclosure) string {
	return d.GetName() + "\x00" + d.GetAffiliation() + "\x00" + d.GetCountry()
}

func readSample(t *testing.T) []sampleRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "client", "testdata", "sample-signatories.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 4
	all, err := r.ReadAll()
	if err != nil {
		t.Fatalf("read the sample: %v", err)
	}
	if got := strings.Join(all[0], ","); got != "name,affiliation,visibility,note" {
		t.Fatalf("sample header is %q", got)
	}
	var rows []sampleRow
	for i, rec := range all[1:] {
		if v := rec[2]; v != "" && v != "public" && v != "private" {
			t.Fatalf("sample row %d: visibility %q", i+2, v)
		}
		rows = append(rows, sampleRow{Line: i + 2, Name: rec[0], Affiliation: rec[1], Private: rec[2] == "private", Note: rec[3]})
	}
	return rows
}

// recorder keeps every message a connection receives from the server,
// marshalled, so that a test can search everything the server served.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) add(m any) {
	if pm, ok := m.(proto.Message); ok {
		b, _ := proto.Marshal(pm)
		r.mu.Lock()
		r.buf.Write(b)
		r.mu.Unlock()
	}
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

func (r *recorder) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil {
				r.add(reply)
			} else {
				r.mu.Lock()
				r.buf.WriteString(status.Convert(err).Message())
				r.mu.Unlock()
			}
			return err
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return recordedStream{s, r}, nil
		}),
	}
}

type recordedStream struct {
	grpc.ClientStream
	r *recorder
}

func (s recordedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.r.add(m)
	}
	return err
}
