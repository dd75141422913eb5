package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

// TestTrillianOutage cuts a frontend off Trillian for longer than it takes
// to call itself unhealthy, with a write waiting, and checks that it
// recovers by itself when Trillian is back: the waiting write gets its
// receipt, and new writes go through.
func TestTrillianOutage(t *testing.T) {
	ctx := context.Background()
	var conn *servertest.CuttableConn
	s := servertest.Start(t, servertest.Options{Engine: servertest.TrillianMemory,
		TrillianConn: func(c grpc.ClientConnInterface) grpc.ClientConnInterface {
			conn = servertest.NewCuttable(c)
			return conn
		}})
	cl := s.Dial(t, s.Token)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "outage", Title: "Outage", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	endorse := func(ctx context.Context, name string) error {
		e := client.NewEndorsement(cl.Origin(), l, client.Signer{
			Fields: records.Fields{Name: name}, OrganiserKey: key,
		})
		_, err := cl.Endorse(ctx, e, "")
		return err
	}
	if err := endorse(ctx, "Before the outage"); err != nil {
		t.Fatal(err)
	}

	conn.Cut(true)
	waiting := make(chan error, 1)
	go func() { waiting <- endorse(ctx, "During the outage") }()
	// Past the point where the frontend calls itself unhealthy (5 s of
	// failed steps): writes are refused meanwhile.
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Until then a write is admitted and waits: give up on it after
		// a moment (it is appended once Trillian is back).
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := endorse(pctx, "Refused during the outage")
		cancel()
		if status.Code(err) == codes.Unavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s into the outage, a write got %v, want Unavailable", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	conn.Cut(false)

	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("the write admitted during the outage: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a minute after Trillian came back, the write admitted during the outage has no receipt")
	}
	deadline = time.Now().Add(time.Minute)
	for {
		err := endorse(ctx, "After the outage")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after Trillian came back, writes still fail: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTrillianOutageTellsNothing cuts a frontend off Trillian and checks
// what callers are told: Unavailable, with no address, host name or text
// of Trillian's, and a request id, under which the server's log holds the
// full error. It checks a read that asks Trillian, a write once the
// frontend calls itself unhealthy, and /healthz.
func TestTrillianOutageTellsNothing(t *testing.T) {
	ctx := context.Background()
	var conn *servertest.CuttableConn
	s := servertest.Start(t, servertest.Options{Engine: servertest.TrillianMemory,
		TrillianConn: func(c grpc.ClientConnInterface) grpc.ClientConnInterface {
			conn = servertest.NewCuttable(c)
			return conn
		}})
	cl := s.Dial(t, s.Token)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "outage", Title: "Outage", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	endorse := func(ctx context.Context, name string, opts ...grpc.CallOption) error {
		e := client.NewEndorsement(cl.Origin(), l, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: key})
		_, err := cl.API().Endorse(cl.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure}, opts...)
		return err
	}
	if err := endorse(ctx, "Before the outage"); err != nil {
		t.Fatal(err)
	}
	conn.Cut(true)
	defer conn.Cut(false)

	// checkSafe checks what a caller got, and reports whether the log
	// holds the full error of Trillian's under its request id.
	checkSafe := func(t *testing.T, what string, err error, header, trailer metadata.MD) bool {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.Unavailable {
			t.Fatalf("%s: %v, want Unavailable", what, err)
		}
		for _, leak := range []string{"10.20.30.40", "8090", "dial", "connection refused", "internal.example", "transport", "rillian"} {
			if strings.Contains(st.Message(), leak) {
				t.Errorf("%s: the message %q holds %q", what, st.Message(), leak)
			}
		}
		id := header.Get(server.RequestIDHeader)
		if len(id) != 1 || id[0] == "" || !slices.Equal(trailer.Get(server.RequestIDHeader), id) {
			t.Fatalf("%s: request id %q in the header, %q in the trailer; want one, the same", what, id, trailer.Get(server.RequestIDHeader))
		}
		if !strings.Contains(st.Message(), id[0]) {
			t.Errorf("%s: the message %q does not name the request id %s", what, st.Message(), id[0])
		}
		for _, line := range strings.Split(s.Logs.String(), "\n") {
			if strings.Contains(line, "request_id="+id[0]) && strings.Contains(line, "dial tcp 10.20.30.40:8090") {
				return true
			}
		}
		return false
	}

	t.Run("a read that asks Trillian", func(t *testing.T) {
		var header, trailer metadata.MD
		// Inclusion proofs come from the tiles the frontend built; a
		// consistency proof is Trillian's.
		_, err := cl.API().GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 1, ToSize: 2}, grpc.Header(&header), grpc.Trailer(&trailer))
		if !checkSafe(t, "GetConsistencyProof", err, header, trailer) {
			t.Errorf("the server's log holds no line with the request id and the full error:\n%s", s.Logs)
		}
	})
	t.Run("a write once the frontend is unhealthy", func(t *testing.T) {
		// Until the frontend calls itself unhealthy (after 5 s of failed
		// steps) a write is admitted and waits; the caller gives up on it
		// after a moment and gets Unavailable too, for its own deadline.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var header, trailer metadata.MD
			wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			err := endorse(wctx, "Refused during the outage", grpc.Header(&header), grpc.Trailer(&trailer))
			cancel()
			if status.Code(err) == codes.Unavailable && checkSafe(t, "Endorse", err, header, trailer) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("30 s into the outage, a write got %v, and no refusal for the outage was logged:\n%s", err, s.Logs)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("healthz", func(t *testing.T) {
		resp, err := http.Get(s.HTTP + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get(server.RequestIDHeader)
		if resp.StatusCode != http.StatusServiceUnavailable || id == "" || !strings.HasPrefix(string(body), "unhealthy") {
			t.Fatalf("/healthz: %s, request id %q, %q; want 503 unhealthy with a request id", resp.Status, id, body)
		}
		for _, leak := range []string{"10.20.30.40", "8090", "dial", "connection refused", "internal.example", "rillian"} {
			if strings.Contains(string(body), leak) {
				t.Errorf("/healthz says %q, which holds %q", body, leak)
			}
		}
		if !strings.Contains(s.Logs.String(), "request_id="+id) {
			t.Errorf("the server's log does not name the request id %s of /healthz", id)
		}
	})
}
