package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// TestWitnessDown runs a server with two fake witnesses, both needed, on
// each engine. With one witness down, a write waits for the bound and
// fails with Unavailable naming it, and neither its address nor its
// answer; a write under way when it comes back completes, a retry of the
// failed one returns its record, every receipt carries both
// cosignatures, nothing admitted is lost, and the metrics count it.
func TestWitnessDown(t *testing.T) {
	for _, engine := range []servertest.Engine{servertest.Embedded, servertest.TrillianMemory} {
		t.Run(engine.String(), func(t *testing.T) { testWitnessDown(t, engine) })
	}
}

func testWitnessDown(t *testing.T, engine servertest.Engine) {
	ctx := context.Background()
	dir, key := servertest.NewFolder(t, "")
	path, fakes := witnesstest.FakePolicy(t, t.TempDir(), key, "a", "b")
	p, err := policy.Parse(readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	const wait = time.Second
	s := servertest.Start(t, servertest.Options{Engine: engine, Dir: dir, WitnessPolicy: path, WitnessWait: wait})
	cl := s.Dial(t, s.Token)
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "witnessed", Title: "Witnessed", Text: "Sign here.\n"}, org)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	endorsement := func(name string) *client.Endorsement {
		return client.NewEndorsement(cl.Origin(), l, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: org})
	}
	var receipts [][]byte
	r, err := cl.Endorse(ctx, endorsement("Before the outage"), "")
	if err != nil {
		t.Fatal(err)
	}
	receipts = append(receipts, r.Receipt)

	fakes[1].SetFault(witnesstest.Unavailable, 0)
	during := endorsement("During the outage")
	var header, trailer metadata.MD
	start := time.Now()
	_, err = cl.API().Endorse(cl.Context(ctx), &pb.EndorseRequest{Endorsement: during.Endorsement, Disclosure: during.Disclosure},
		grpc.Header(&header), grpc.Trailer(&trailer))
	took := time.Since(start)
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || took < wait || took > wait+10*time.Second {
		t.Fatalf("a write with witness b down: %v after %v, want Unavailable after about %v", err, took, wait)
	}
	msg := st.Message()
	if !strings.Contains(msg, "b did not answer") || strings.Contains(msg, "a did not") {
		t.Errorf("the message %q does not name b alone", msg)
	}
	for _, leak := range []string{"127.0.0.1", "http", "maintenance", "503"} {
		if strings.Contains(msg, leak) {
			t.Errorf("the message %q holds %q", msg, leak)
		}
	}
	if id := header.Get(server.RequestIDHeader); len(id) != 1 || !strings.Contains(msg, id[0]) {
		t.Errorf("the message %q does not name the request id %v", msg, id)
	}

	waiting := make(chan *client.Result, 1)
	go func() {
		r, err := cl.Endorse(ctx, endorsement("Waiting when the witness comes back"), "")
		if err != nil {
			t.Errorf("the write under way when the witness came back: %v", err)
		}
		waiting <- r
	}()
	time.Sleep(wait / 4) // the write is admitted and waits
	fakes[1].SetFault(witnesstest.Honest, 0)
	if r := <-waiting; r != nil {
		receipts = append(receipts, r.Receipt)
	}
	again, err := cl.Endorse(ctx, during, "")
	if err != nil {
		t.Fatalf("the failed write, retried once the witness is back: %v", err)
	}
	if !again.Duplicate {
		t.Errorf("the retry was appended again, not returned as the record admitted before")
	}
	receipts = append(receipts, again.Receipt)

	for i, b := range receipts {
		rc, err := receipt.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := p.Check(rc.Checkpoint); err != nil || !res.Met {
			t.Errorf("receipt %d: %v %v", i, err, res)
		}
		if _, _, err := client.VerifyOffline(b, cl.Verifier()); err != nil {
			t.Errorf("receipt %d: %v", i, err)
		}
	}
	var names []string
	for _, e := range entriesAll(t, cl) {
		if d := e.GetDisclosure(); d != nil {
			names = append(names, d.GetName())
		}
	}
	if got := strings.Join(names, ","); got != "Before the outage,During the outage,Waiting when the witness comes back" &&
		got != "Before the outage,Waiting when the witness comes back,During the outage" {
		t.Errorf("the log holds %q", got)
	}
	_, _, metrics := httpGet(t, s.HTTP, "/metrics")
	for _, want := range []string{"undersigned_witness_wait_timeouts_total 1", `undersigned_witness_failures_total{reason="unanswered",witness="b"}`, "undersigned_witness_published_size"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestWitnessedCheckpointServed: with witnesses, the checkpoint of the
// HTTP API, of GetCheckpoint and of the web page carry the cosignatures,
// and a restarted server serves the one it stored before any witness
// answers again.
func TestWitnessedCheckpointServed(t *testing.T) {
	dir, key := servertest.NewFolder(t, "")
	path, fakes := witnesstest.FakePolicy(t, t.TempDir(), key, "a", "b")
	p, err := policy.Parse(readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	log := servertest.NewLog(t, servertest.Options{Dir: dir, WitnessPolicy: path, WitnessWait: time.Second})
	s := log.Start(t)
	cl := s.Dial(t, s.Token)
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "served", Title: "Served", Text: "Sign here.\n"}, org)
	if _, err := cl.PublishLetter(testContext(t), l, ""); err != nil {
		t.Fatal(err)
	}
	code, _, body := httpGet(t, s.HTTP, "/log/checkpoint")
	if res, err := p.Check(body); code != http.StatusOK || err != nil || !res.Met {
		t.Fatalf("/log/checkpoint: %d %v %v\n%s", code, err, res, body)
	}
	resp, err := cl.API().GetCheckpoint(testContext(t), &pb.GetCheckpointRequest{})
	if err != nil || string(resp.GetCheckpoint()) != string(body) {
		t.Fatalf("GetCheckpoint: %v\n%s", err, resp.GetCheckpoint())
	}
	s.Stop(t)
	for _, f := range fakes {
		f.SetFault(witnesstest.Silent, 0)
	}
	s = log.Start(t)
	if code, _, again := httpGet(t, s.HTTP, "/log/checkpoint"); code != http.StatusOK || string(again) != string(body) {
		t.Fatalf("after a restart with the witnesses silent: %d\n%s\nwant\n%s", code, again, body)
	}
}
