package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
)

// infoServer answers GetLogInfo for a log, and keeps the tree sizes its
// callers said they know.
type infoServer struct {
	pb.UnimplementedLedgerServiceServer
	origin, key string

	mu    sync.Mutex
	known []string
}

func (s *infoServer) GetLogInfo(ctx context.Context, _ *pb.GetLogInfoRequest) (*pb.GetLogInfoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.known = append(s.known, strings.Join(md.Get(client.KnownSizeHeader), ","))
	s.mu.Unlock()
	return &pb.GetLogInfoResponse{Origin: s.origin, VerifierKey: s.key, Size: 1}, nil
}

// TestKnownSizeKept: the command line keeps, per log, the size of the
// checkpoints it verified (a receipt's) in its config folder, and sends it
// with every later call, to whichever server of the log answers, so that
// one behind it catches up first (issue 12).
func TestKnownSizeKept(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Origin: "cli.test/undersigned"})
	c := &cli{t: t, server: s.Addr, token: s.Srv.TokenPath, config: t.TempDir(), dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(c.dir, "text.txt"), []byte("We ask.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := c.run("letter", "publish", "--id", "kept", "--title", "Kept", "--text", "text.txt"); code != 0 {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	if code, _, errOut := c.run("endorse", "--letter", "kept", "--name", "Kept Signer", "--receipt", "r.tlog-proof"); code != 0 {
		t.Fatalf("endorse: %d %s", code, errOut)
	}
	file := filepath.Join(c.config, "tree-sizes", url.PathEscape("cli.test/undersigned"))
	b, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(b)) != "2" {
		t.Fatalf("the config folder keeps %q (%v) for the log, want the receipt's size 2", b, err)
	}

	// Another server of the log (here one that only describes it) is sent
	// that size with every call.
	other := &infoServer{origin: "cli.test/undersigned", key: s.VerifierKey}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterLedgerServiceServer(g, other)
	go g.Serve(l)
	defer g.Stop()
	c.server = l.Addr().String()
	if code, out, errOut := c.run("log"); code != 0 || !strings.Contains(out, "origin:       cli.test/undersigned") {
		t.Fatalf("log: %d %s %s", code, out, errOut)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	// Dial asks before it knows which log it reached; the command's own
	// call carries the size kept.
	if len(other.known) != 2 || other.known[1] != strconv.Itoa(2) {
		t.Errorf("the calls carried the known sizes %q, want the second to carry 2", other.known)
	}
}
