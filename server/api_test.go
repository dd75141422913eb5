package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/servertest"
)

// TestReflectionAndHealth lists the services through the reflection API,
// as grpcurl does, and asks the health service.
func TestReflectionAndHealth(t *testing.T) {
	ts := startServer(t, t.TempDir())
	conn := ts.conn(t)
	ctx := testContext(t)

	t.Run("reflection lists and describes the ledger service", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.CloseSend()
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"undersigned.v1.LedgerService", "grpc.health.v1.Health"} {
			if !slices.Contains(names, want) {
				t.Errorf("reflection lists %v, without %s", names, want)
			}
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
			FileContainingSymbol: "undersigned.v1.LedgerService"}}); err != nil {
			t.Fatal(err)
		}
		resp, err = stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var methods []string
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(raw, fd); err != nil {
				t.Fatal(err)
			}
			for _, s := range fd.GetService() {
				if fd.GetPackage()+"."+s.GetName() == "undersigned.v1.LedgerService" {
					for _, m := range s.GetMethod() {
						methods = append(methods, m.GetName())
					}
				}
			}
		}
		for _, want := range []string{"PublishLetter", "EndorseStream", "GetRoster", "GetEndorsement"} {
			if !slices.Contains(methods, want) {
				t.Errorf("the described service has methods %v, without %s", methods, want)
			}
		}
	})

	t.Run("health says serving", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health: %v, want SERVING", resp.GetStatus())
		}
		code, _, body := httpGet(t, ts.HTTP, "/healthz")
		if code != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
			t.Errorf("/healthz: %d %q", code, body)
		}
	})
}

// TestCheckpoint checks that GetCheckpoint and GetLogInfo agree and that
// the checkpoint verifies with the key the data folder publishes: a C2SP
// checkpoint of the origin, with no extension lines and one signature.
func TestCheckpoint(t *testing.T) {
	ts := startServer(t, t.TempDir(), withOrigin("example.test/undersigned/checkpoint"))
	c := ts.dial(t, ts.Token)
	ctx := testContext(t)
	letter := ts.publish(t, c, "checkpoint-letter", pb.Policy_POLICY_CURATED)
	endorse(t, c, ts.endorsement(c.Origin(), letter, "Checkpoint Signer", ""))

	resp, err := c.API().GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(ts.logPub(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(resp.GetCheckpoint(), note.VerifierList(v))
	if err != nil {
		t.Fatalf("the checkpoint does not verify with log.pub: %v", err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
		t.Errorf("%d verified and %d unverified signatures, want exactly one verified", len(n.Sigs), len(n.UnverifiedSigs))
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("checkpoint body %q: want origin, size and hash lines only", n.Text)
	}
	if lines[0] != "example.test/undersigned/checkpoint" || v.Name() != lines[0] {
		t.Errorf("origin line %q, key name %q", lines[0], v.Name())
	}
	if size, err := strconv.ParseUint(lines[1], 10, 64); err != nil || size != resp.GetSize() || size != 2 {
		t.Errorf("size line %q, response size %d; want 2", lines[1], resp.GetSize())
	}
	info, err := c.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetSize() != resp.GetSize() || info.GetOrigin() != lines[0] || info.GetVerifierKey() != ts.logPub(t) || info.GetEngine() != "embedded" {
		t.Errorf("log info %v does not match the checkpoint and log.pub", info)
	}
	// Another server with the same log and key signs the same bytes.
	if signed, err := note.Sign(&note.Note{Text: n.Text}, mustSigner(t, ts)); err != nil || !bytes.Equal(signed, resp.GetCheckpoint()) {
		t.Errorf("re-signing the body gives other bytes (%v): the checkpoint is not canonical", err)
	}
}

// mustSigner returns the log's signer, from the data folder's key.
func mustSigner(t *testing.T, ts *testServer) note.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.Dir, datadir.LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHTTPTiles checks the tlog-tiles API and /metrics over a log of more
// than one full tile.
func TestHTTPTiles(t *testing.T) {
	ts := startServer(t, t.TempDir())
	c := ts.dial(t, ts.Token)
	ctx := testContext(t)
	letter := ts.publish(t, c, "tiles-letter", pb.Policy_POLICY_CURATED)
	var es []*client.Endorsement
	for i := range 300 {
		es = append(es, ts.endorsement(c.Origin(), letter, fmt.Sprintf("Tile Signer %03d", i), ""))
	}
	for _, o := range streamEndorse(t, c, es) {
		if o.rej != nil {
			t.Fatalf("rejected: %v", o.rej)
		}
	}
	cp, err := c.API().GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	size := cp.GetSize()
	if size != 301 {
		t.Fatalf("size %d, want 301", size)
	}
	entries := entriesAll(t, c)

	t.Run("checkpoint", func(t *testing.T) {
		code, h, body := httpGet(t, ts.HTTP, "/log/checkpoint")
		if code != http.StatusOK || !bytes.Equal(body, cp.GetCheckpoint()) {
			t.Errorf("/log/checkpoint: %d %q, want GetCheckpoint's %q", code, body, cp.GetCheckpoint())
		}
		if strings.Contains(h.Get("Cache-Control"), "immutable") {
			t.Errorf("the checkpoint is served as immutable: %q", h.Get("Cache-Control"))
		}
	})

	tiles, bundles, disclosures := logResources(size)
	t.Run("every resource of the published tree is served", func(t *testing.T) {
		for _, p := range slices.Concat(tiles, bundles, disclosures) {
			code, h, body := httpGet(t, ts.HTTP, p)
			if code != http.StatusOK {
				t.Errorf("GET %s: %d %s", p, code, body)
				continue
			}
			cc := h.Get("Cache-Control")
			full := !strings.Contains(p, ".p/") && !strings.HasPrefix(p, "/log/disclosures/")
			if full != strings.Contains(cc, "immutable") {
				t.Errorf("GET %s: Cache-Control %q; immutable should be %v", p, cc, full)
			}
			if cc == "" {
				t.Errorf("GET %s: no Cache-Control", p)
			}
		}
	})

	t.Run("tiles and bundles hold the log", func(t *testing.T) {
		_, _, raw := httpGet(t, ts.HTTP, "/log/"+layout.TilePath(0, 0, 0))
		var tile api.HashTile
		if err := tile.UnmarshalText(raw); err != nil || len(tile.Nodes) != layout.TileWidth {
			t.Fatalf("tile 0/000: %d nodes, %v", len(tile.Nodes), err)
		}
		var bundle api.EntryBundle
		_, _, raw = httpGet(t, ts.HTTP, "/log/"+layout.EntriesPath(1, layout.PartialTileSize(0, 1, size)))
		if err := bundle.UnmarshalText(raw); err != nil || len(bundle.Entries) != int(size-layout.EntryBundleWidth) {
			t.Fatalf("entry bundle 001: %d entries, %v", len(bundle.Entries), err)
		}
		for i, e := range bundle.Entries {
			if !bytes.Equal(e, entries[layout.EntryBundleWidth+i].GetRecord()) {
				t.Errorf("entry %d of the bundle differs from GetEntries", layout.EntryBundleWidth+i)
			}
		}
		for _, i := range []int{0, 1, 255} {
			if want := rfc6962.DefaultHasher.HashLeaf(entries[i].GetRecord()); !bytes.Equal(tile.Nodes[i], want) {
				t.Errorf("tile node %d is not the leaf hash of entry %d", i, i)
			}
		}
		var ds []records.BundledDisclosure
		_, _, raw = httpGet(t, ts.HTTP, "/log/disclosures/000")
		if err := json.Unmarshal(raw, &ds); err != nil || len(ds) != layout.EntryBundleWidth-1 {
			t.Fatalf("disclosures 000: %d, %v; want %d (every entry but the letter)", len(ds), err, layout.EntryBundleWidth-1)
		}
		if ds[0].Index != 1 || !strings.HasPrefix(ds[0].Name, "Tile Signer") || len(ds[0].Salt) == 0 {
			t.Errorf("first disclosure %+v", ds[0])
		}
	})

	t.Run("nothing beyond the published tree", func(t *testing.T) {
		for _, p := range []string{
			"/log/" + layout.TilePath(0, 1, 0),                 // full tile 1 does not exist yet
			"/log/" + layout.TilePath(0, 2, 0),                 // nor tile 2
			"/log/" + layout.TilePath(0, 1, uint8(size%256)+1), // a partial tile wider than the tree
			"/log/" + layout.TilePath(1, 0, 0),                 // the full level 1 tile
			"/log/" + layout.TilePath(1, 0, 2),                 // level 1 has one node
			"/log/" + layout.EntriesPath(1, 0),                 // full bundle 1
			"/log/" + layout.EntriesPath(2, 0),                 // bundle 2
			"/log/disclosures/" + layout.NWithSuffix(0, 1, 0),  // its disclosures
			"/log/disclosures/" + layout.NWithSuffix(0, 1, uint8(size%256)+1),
		} {
			if code, _, body := httpGet(t, ts.HTTP, p); code != http.StatusNotFound {
				t.Errorf("GET %s: %d %q, want 404", p, code, body)
			}
		}
		for _, p := range []string{"/log/tile/0/abc", "/log/tile/99/000", "/log/tile/entries/000.p/0", "/log/disclosures/x000"} {
			if code, _, _ := httpGet(t, ts.HTTP, p); code != http.StatusBadRequest && code != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 400 or 404", p, code)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, _, body := httpGet(t, ts.HTTP, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		var appended float64 = -1
		for _, line := range strings.Split(string(body), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "undersigned_ledger_appended_total" {
				appended, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		if appended != float64(size) {
			t.Errorf("undersigned_ledger_appended_total = %v, want %d\n%s", appended, size, body)
		}
		if !bytes.Contains(body, []byte("# TYPE undersigned_ledger_appended_total counter")) {
			t.Error("/metrics does not declare undersigned_ledger_appended_total a counter")
		}
	})
}

// TestLoopbackTCP serves on real loopback listeners with Serve, writes and
// reads through them, and stops by cancelling the context.
func TestLoopbackTCP(t *testing.T) {
	dir := t.TempDir()
	s, err := server.New(context.Background(), server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, gl, hl) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-served
		}
	})

	token := readToken(t, s.TokenPath)
	c, err := client.Dial(testContext(t), client.Config{Addr: gl.Addr().String(), Token: token})
	if err != nil {
		t.Fatalf("dial %s: %v", gl.Addr(), err)
	}
	defer c.Close()
	org := newOrganiserKey(t)
	letter := client.NewLetter(c.Origin(), client.LetterDraft{ID: "tcp-letter", Title: "Over TCP", Text: sampleLetterText(t)}, org)
	if _, err := c.PublishLetter(testContext(t), letter, ""); err != nil {
		t.Fatal(err)
	}
	r, err := c.Endorse(testContext(t), client.NewEndorsement(c.Origin(), letter, client.Signer{Fields: records.Fields{Name: "Over Loopback", Affiliation: "TCP"}, OrganiserKey: org}), "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Verify(testContext(t), r.Receipt); err != nil || st.State != client.StateCounted {
		t.Fatalf("verify over TCP: %v, %v", st, err)
	}

	base := "http://" + hl.Addr().String()
	cp, err := c.API().GetCheckpoint(testContext(t), &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := httpGet(t, base, "/log/checkpoint"); code != http.StatusOK || !bytes.Equal(body, cp.GetCheckpoint()) {
		t.Errorf("/log/checkpoint over TCP: %d %q", code, body)
	}
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if h, err := healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health over TCP: %v, %v", h, err)
	}

	cancel()
	select {
	case err := <-served:
		stopped = true
		if err != nil {
			t.Errorf("Serve returned %v after the context was cancelled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after the context was cancelled")
	}
	// Both ports are closed.
	for _, addr := range []string{gl.Addr().String(), hl.Addr().String()} {
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			t.Errorf("%s still accepts connections after Serve returned", addr)
		}
	}
	callCtx, callCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer callCancel()
	if _, err := c.API().GetLogInfo(callCtx, &pb.GetLogInfoRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a call after the stop: %v, want Unavailable", err)
	}
}

// TestReadErrors checks the codes of reads that cannot be answered.
func TestReadErrors(t *testing.T) {
	ts := startServer(t, t.TempDir())
	c := ts.dial(t, ts.Token)
	ctx := testContext(t)
	letter := ts.publish(t, c, "read-errors", pb.Policy_POLICY_CURATED)
	endorse(t, c, ts.endorsement(c.Origin(), letter, "Only Signer", ""))
	api := c.API()
	entries := func(start, end uint64) error {
		s, err := api.GetEntries(ctx, &pb.GetEntriesRequest{Start: start, End: end})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"inclusion of an index beyond the tree", func() error {
			_, err := api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: 2})
			return err
		}, codes.OutOfRange, ""},
		{"inclusion in a tree beyond the published one", func() error {
			_, err := api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: 0, TreeSize: 3})
			return err
		}, codes.OutOfRange, ""},
		{"consistency from a larger tree", func() error {
			_, err := api.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 2, ToSize: 1})
			return err
		}, codes.OutOfRange, ""},
		{"entries beyond the published tree", func() error { return entries(0, 3) }, codes.OutOfRange, ""},
		{"entries starting after their end", func() error { return entries(2, 1) }, codes.OutOfRange, ""},
		{"an unknown letter", func() error {
			_, err := api.GetLetter(ctx, &pb.GetLetterRequest{LetterId: "no-such-letter"})
			return err
		}, codes.NotFound, ""},
		{"a letter id that is not a slug", func() error {
			_, err := api.GetLetter(ctx, &pb.GetLetterRequest{LetterId: "Not A Slug"})
			return err
		}, codes.InvalidArgument, "letter_id"},
		{"the roster of an unknown letter", func() error {
			_, err := api.GetRoster(ctx, &pb.GetRosterRequest{LetterId: "no-such-letter"})
			return err
		}, codes.NotFound, ""},
		{"a forged page token", func() error {
			_, err := api.GetRoster(ctx, &pb.GetRosterRequest{LetterId: letter.GetId(), PageToken: "!!"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"a one-letter search", func() error {
			_, err := api.FindEndorsements(ctx, &pb.FindEndorsementsRequest{LetterId: letter.GetId(), Query: "o"})
			return err
		}, codes.InvalidArgument, "query"},
		{"the state of a letter record", func() error {
			_, err := api.GetEndorsement(ctx, &pb.GetEndorsementRequest{Index: 0})
			return err
		}, codes.NotFound, ""},
		{"the state of an index beyond the tree", func() error {
			_, err := api.GetEndorsement(ctx, &pb.GetEndorsementRequest{Index: 5})
			return err
		}, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.field != "" {
				wantField(t, err, tc.field)
			} else {
				wantCode(t, err, tc.code)
			}
		})
	}
}
