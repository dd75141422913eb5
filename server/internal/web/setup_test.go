package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

const testTimeout = 2 * time.Minute

// liveServer is a real server on loopback ports, with an organiser client.
type liveServer struct {
	URL    string
	Client *client.Client
	Org    ed25519.PrivateKey
	Srv    *server.Server
}

// startLive serves a new data folder on loopback ports until the test ends.
func startLive(t *testing.T, o servertest.Options) *liveServer {
	t.Helper()
	s := servertest.Start(t, o)
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	return &liveServer{URL: s.HTTP, Client: s.Dial(t, s.Token), Org: org, Srv: s.Srv}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (ls *liveServer) publish(t *testing.T, id, title string, policy pb.Policy) *pb.Letter {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "..", "client", "testdata", "sample-letter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	l := client.NewLetter(ls.Client.Origin(), client.LetterDraft{ID: id, Title: title, Text: string(text), Language: "en", Policy: policy}, ls.Org)
	if _, err := ls.Client.PublishLetter(testContext(t), l, ""); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	return l
}

// sampleRow is a row of client/testdata/sample-signatories.csv.
type sampleRow struct {
	Name, Affiliation string
	Private, Invalid  bool
}

func readSample(t *testing.T) []sampleRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "client", "testdata", "sample-signatories.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []sampleRow
	for _, r := range all[1:] {
		rows = append(rows, sampleRow{Name: r[0], Affiliation: r[1], Private: r[2] == "private", Invalid: strings.HasPrefix(r[3], "invalid:")})
	}
	return rows
}

// endorsed is an endorsement the test made, with its receipt.
type endorsed struct {
	Row     sampleRow
	Receipt []byte
	Index   uint64
}

// endorseSample endorses every valid row of the sample as the organiser,
// in one stream, and returns the receipts of the accepted ones.
func (ls *liveServer) endorseSample(t *testing.T, l *pb.Letter) []endorsed {
	t.Helper()
	ctx := testContext(t)
	st, err := ls.Client.EndorseStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sent []sampleRow
	for _, r := range readSample(t) {
		if r.Invalid {
			continue
		}
		vis := pb.Visibility_VISIBILITY_PUBLIC
		if r.Private {
			vis = pb.Visibility_VISIBILITY_PRIVATE
		}
		e := client.NewEndorsement(ls.Client.Origin(), l, client.Signer{Fields: records.Fields{Name: r.Name, Affiliation: r.Affiliation},
			Visibility: vis, OrganiserKey: ls.Org})
		if err := st.Send(e, ""); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, r)
	}
	st.CloseSend()
	var out []endorsed
	for _, r := range sent {
		res, rej, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if rej != nil || res.Duplicate {
			continue // the sample's exact duplicates
		}
		out = append(out, endorsed{Row: r, Receipt: res.Receipt, Index: res.Verified.Index})
	}
	return out
}

// endorseOne endorses one public name as the organiser.
func (ls *liveServer) endorseOne(t *testing.T, l *pb.Letter, name string) *client.Result {
	t.Helper()
	e := client.NewEndorsement(ls.Client.Origin(), l, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: ls.Org})
	res, err := ls.Client.Endorse(testContext(t), e, "")
	if err != nil {
		t.Fatalf("endorse %q: %v", name, err)
	}
	return res
}
