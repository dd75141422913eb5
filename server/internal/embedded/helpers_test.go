package embedded_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/embedded"
	"github.com/undersigned/undersigned/server/servertest"
)

// testServer is a server on the embedded engine, served in the test's
// process, with an organiser key generated for the test.
type testServer struct {
	*servertest.Server
	Org ed25519.PrivateKey
}

func startServer(t *testing.T, dir string) *testServer {
	t.Helper()
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	return &testServer{Server: servertest.Start(t, servertest.Options{Dir: dir}), Org: org}
}

func (ts *testServer) dial(t *testing.T, token string) *client.Client { return ts.Dial(t, token) }

func (ts *testServer) stop(t *testing.T) { ts.Stop(t) }

// publish publishes a letter signed by ts.Org.
func (ts *testServer) publish(t *testing.T, c *client.Client, id string, policy pb.Policy) *pb.Letter {
	t.Helper()
	l := client.NewLetter(c.Origin(), client.LetterDraft{ID: id, Title: "A letter (" + id + ")", Text: "We ask for longer opening hours.\n", Policy: policy}, ts.Org)
	if _, err := c.PublishLetter(testContext(t), l, ""); err != nil {
		t.Fatalf("publish letter %q: %v", id, err)
	}
	return l
}

// endorsement builds a public endorsement of l signed by ts.Org.
func (ts *testServer) endorsement(origin string, l *pb.Letter, name, affiliation string) *client.Endorsement {
	return client.NewEndorsement(origin, l, client.Signer{Fields: records.Fields{Name: name, Affiliation: affiliation}, OrganiserKey: ts.Org})
}

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

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), servertest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// open opens a server on dir without serving it, as a start would.
func open(ctx context.Context, dir string) (*server.Server, error) {
	return server.New(ctx, server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine})
}

func runFsck(t *testing.T, dir string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	n, err := embedded.Fsck(context.Background(), dir, &out)
	if err != nil {
		t.Fatalf("fsck: %v\n%s", err, out.String())
	}
	return n, out.String()
}

// filesContaining lists the files under dir that hold any of the needles.
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

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
