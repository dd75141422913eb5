package web_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// TestBrowserWitnessed: on a server with a witness policy, /verify gets
// the policy (without the witnesses' addresses) and checks receipts
// against it in the browser: a receipt whose checkpoint both witnesses
// cosigned is counted, saying by whom; the same receipt without the
// cosignatures is counted too, the log's latest checkpoint (which meets
// the policy, and contains it) standing for them, and says so.
func TestBrowserWitnessed(t *testing.T) {
	tb := newTab(t)
	dir, key := servertest.NewFolder(t, "")
	path, _ := witnesstest.FakePolicy(t, t.TempDir(), key, "alpha", "beta")
	ls := startLive(t, servertest.Options{Dir: dir, WitnessPolicy: path})
	letter := ls.publish(t, "witnessed", "Witnessed", pb.Policy_POLICY_CURATED)
	e := client.NewEndorsement(ls.Client.Origin(), letter, client.Signer{Fields: records.Fields{Name: "Ада Лавлейс"}, OrganiserKey: ls.Org})
	r, err := ls.Client.Endorse(testContext(t), e, "")
	if err != nil {
		t.Fatal(err)
	}
	rcpt := r.Receipt

	tb.run(t, "verify page", chromedp.Navigate(ls.URL+"/verify?lang=en"))
	attr := eval[string](t, tb, `document.getElementById('verify').dataset.policy || ''`)
	if !strings.Contains(attr, "witness alpha ") || !strings.Contains(attr, "quorum fakes") || strings.Contains(attr, "http") {
		t.Fatalf("the page's policy: %q", attr)
	}
	if state := tb.verifyState(t, ls.URL, rcpt, "verify-witnessed"); state != "counted" {
		t.Fatalf("a cosigned receipt: %s\n%s", state, details(t, tb))
	}
	if d := details(t, tb); !strings.Contains(d, "Witnesses: witness quorum \"fakes\" (all of (alpha, beta)) met: cosigned by alpha, beta") {
		t.Errorf("the details of a cosigned receipt: %s", d)
	}
	bare := stripCosignatures(t, rcpt)
	if state := tb.verifyState(t, ls.URL, bare, ""); state != "counted" {
		t.Fatalf("a receipt without its cosignatures, online: %s\n%s", state, details(t, tb))
	}
	if d := details(t, tb); !strings.Contains(d, "NOT met") || !strings.Contains(d, "latest checkpoint") {
		t.Errorf("the details of a receipt without its cosignatures: %s", d)
	}
	if _, problems := tb.takeRequests(); len(problems) > 0 {
		t.Errorf("script errors: %v", problems)
	}
}

// details returns the lines the page shows under the result.
func details(t *testing.T, tb *tab) string {
	t.Helper()
	return eval[string](t, tb, `[...document.querySelectorAll('#result .details li, #result .reason')].map(e => e.textContent).join('\n')`)
}

// stripCosignatures returns the receipt with its checkpoint's first
// signature, the log's, alone.
func stripCosignatures(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(r.Checkpoint, []byte("\n\n"))
	end := bytes.IndexByte(r.Checkpoint[i+2:], '\n')
	r.Checkpoint = r.Checkpoint[:i+2+end+1]
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
