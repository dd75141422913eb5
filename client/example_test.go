package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

// startServer serves a new log in a temporary folder and returns its gRPC
// address, its first organiser token and a function that stops it.
func startServer() (addr, token string, stop func()) {
	dir, err := os.MkdirTemp("", "undersigned-example-")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: dir, Origin: "example.org/letters", Engine: servertest.EmbeddedEngine})
	if err != nil {
		log.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { srv.Serve(ctx, gl, hl); close(done) }()
	tok, err := os.ReadFile(srv.TokenPath)
	if err != nil {
		log.Fatal(err)
	}
	return gl.Addr().String(), strings.TrimSpace(string(tok)), func() { cancel(); <-done; os.RemoveAll(dir) }
}

// An organiser publishes a letter and endorses it for a signer; the signer
// keeps the receipt, and can check it offline with only the log's key, or
// online against the log as it is now.
func Example() {
	addr, token, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, client.Config{Addr: addr, Token: token})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, organiser, _ := ed25519.GenerateKey(rand.Reader)
	letter := client.NewLetter(c.Origin(), client.LetterDraft{
		ID:    "library-hours",
		Title: "Keep the library open",
		Text:  "We ask the council to keep the library open in the evenings.\n",
	}, organiser)
	if _, err := c.PublishLetter(ctx, letter, ""); err != nil {
		log.Fatal(err)
	}

	e := client.NewEndorsement(c.Origin(), letter, client.Signer{
		Fields:       records.Fields{Name: "Łapińska Hanna", Affiliation: "Retired railway worker"},
		Verification: pb.Verification_VERIFICATION_IN_PERSON,
		OrganiserKey: organiser,
	})
	res, err := c.Endorse(ctx, e, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index:", res.Verified.Index)

	// Offline: only the log's verifier key is needed.
	_, v, err := client.VerifyOffline(res.Receipt, c.Verifier())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed by:", v.Disclosure.GetName())

	// Online: the latest checkpoint must extend the receipt's.
	st, err := c.Verify(ctx, res.Receipt)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("state:", st.State)
	// Output:
	// index: 1
	// signed by: Łapińska Hanna
	// state: counted
}

// A signer withdraws their endorsement with the withdrawal secret in their
// receipt: no token is needed.
func ExampleClient_Withdraw() {
	addr, token, stop := startServer()
	defer stop()
	ctx := context.Background()
	organiserClient, err := client.Dial(ctx, client.Config{Addr: addr, Token: token})
	if err != nil {
		log.Fatal(err)
	}
	defer organiserClient.Close()
	_, organiser, _ := ed25519.GenerateKey(rand.Reader)
	letter := client.NewLetter(organiserClient.Origin(), client.LetterDraft{ID: "l", Title: "A letter", Text: "Text.\n"}, organiser)
	if _, err := organiserClient.PublishLetter(ctx, letter, ""); err != nil {
		log.Fatal(err)
	}
	res, err := organiserClient.Endorse(ctx, client.NewEndorsement(organiserClient.Origin(), letter, client.Signer{
		Fields: records.Fields{Name: "Alexei"}, OrganiserKey: organiser,
	}), "")
	if err != nil {
		log.Fatal(err)
	}

	// The signer, without a token.
	signer, err := client.Dial(ctx, client.Config{Addr: addr})
	if err != nil {
		log.Fatal(err)
	}
	defer signer.Close()
	r, v, err := client.VerifyOffline(res.Receipt, signer.Verifier())
	if err != nil {
		log.Fatal(err)
	}
	a, err := client.ActionFromReceipt(signer.Origin(), v, r, nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := signer.Withdraw(ctx, a); err != nil {
		log.Fatal(err)
	}
	st, err := signer.Verify(ctx, res.Receipt)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("state:", st.State)
	// Output:
	// state: withdrawn
}
