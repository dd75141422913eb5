package web_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/signing"
	"github.com/undersigned/undersigned/client/webui"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

// findBrowser returns Debian's chromium (or another Chromium found on the
// PATH). Without one the browser tests skip, except under CI=true, where
// .ci/run installs it and they must run.
func findBrowser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium on the PATH: .ci/run installs Debian's chromium package")
	}
	t.Skip("no Chromium on the PATH (apt-get install chromium): the browser tests are skipped")
	return ""
}

// request is one request the browser sent.
type request struct {
	URL, Method, Body string
	// Document is the URL of the page that sent it.
	Document string
	Headers  []string
}

// tab is a headless Chromium tab with its network log.
type tab struct {
	ctx context.Context
	dl  string

	mu       sync.Mutex
	requests []request
	problems []string
}

func newTab(t *testing.T) *tab {
	path := findBrowser(t)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	tb := &tab{ctx: ctx, dl: t.TempDir()}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			// The URL as sent: browsers keep the fragment to themselves
			// (DevTools reports it apart, in URLFragment).
			r := request{URL: e.Request.URL, Method: e.Request.Method, Document: e.DocumentURL}
			for _, p := range e.Request.PostDataEntries {
				r.Body += string(p.Bytes)
			}
			for k, v := range e.Request.Headers {
				r.Headers = append(r.Headers, fmt.Sprintf("%s: %v", k, v))
			}
			tb.requests = append(tb.requests, r)
		case *runtime.EventExceptionThrown:
			tb.problems = append(tb.problems, "exception: "+e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				tb.problems = append(tb.problems, "console error")
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	_, err = chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: tb.dl})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func (tb *tab) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs an action that returns a value.
func value[T any](t *testing.T, tb *tab, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func eval[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	return value(t, tb, expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// takeRequests returns the requests sent since the last call, and the
// script errors seen.
func (tb *tab) takeRequests() ([]request, []string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	r, p := tb.requests, tb.problems
	tb.requests, tb.problems = nil, nil
	return r, p
}

func (tb *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("UNDERSIGNED_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := value(t, tb, "screenshot", chromedp.FullScreenshot(100))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// verifyState opens /verify with the receipt in the URL fragment and
// returns the data-state of #result once the check is done.
func (tb *tab) verifyState(t *testing.T, base string, rcpt []byte, shot string, page ...string) string {
	t.Helper()
	path := "verify"
	if len(page) > 0 {
		path = page[0]
	}
	u := base + "/" + path + "#r=" + base64.RawURLEncoding.EncodeToString(rcpt)
	tb.run(t, "verify", chromedp.Navigate("about:blank"), chromedp.Navigate(u))
	state := value(t, tb, "verify result", chromedp.Poll[string](
		`(() => { const r = document.getElementById('result'); return r && !r.hidden && r.dataset.state; })()`,
		chromedp.WithPollingTimeout(time.Minute)))
	if ms := eval[string](t, tb, `(document.getElementById('verify') || {dataset: {}}).dataset.verifyMs || ''`); ms != "" {
		t.Logf("%s: the receipt was checked in %s ms once the page was loaded (BENCHMARKS.md)", state, ms)
	}
	if shot != "" {
		tb.screenshot(t, shot)
	}
	return state
}

func TestBrowser(t *testing.T) {
	tb := newTab(t)
	ls := startLive(t, servertest.Options{OpenRate: server.RateLimits{PerAddress: 100, AddressBurst: 100}})
	ctx := testContext(t)
	sample := ls.publish(t, "library-hours", "An open letter on the right to sign without fear", pb.Policy_POLICY_CURATED)
	open := ls.publish(t, "open-library", "Keep the library open: sign it yourself", pb.Policy_POLICY_OPEN)
	done := ls.endorseSample(t, sample)
	if len(done) < 150 {
		t.Fatalf("only %d endorsements of the sample were accepted", len(done))
	}
	// Three receipts to follow: one stays counted, one is withdrawn, one
	// redacted. Their checkpoints are older than the log's latest.
	var keep, withdraw, redact endorsed
	for _, e := range done {
		switch {
		case e.Row.Private:
		case keep.Receipt == nil && e.Index > 20:
			keep = e
		case withdraw.Receipt == nil && e.Index > 20:
			withdraw = e
		case redact.Receipt == nil && e.Index > 20:
			redact = e
		}
	}
	for _, act := range []struct {
		e  endorsed
		fn func(context.Context, client.Action) (*client.Result, error)
	}{{withdraw, ls.Client.Withdraw}, {redact, ls.Client.Redact}} {
		r, v, err := client.VerifyOffline(act.e.Receipt, ls.Client.Verifier())
		if err != nil {
			t.Fatal(err)
		}
		a, err := client.ActionFromReceipt(ls.Client.Origin(), v, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := act.fn(ctx, a); err != nil {
			t.Fatalf("withdraw or redact %d: %v", act.e.Index, err)
		}
	}

	t.Run("letter page", func(t *testing.T) { testLetterPage(t, tb, ls, done, withdraw, redact) })
	t.Run("sign an open letter", func(t *testing.T) { testSign(t, tb, ls, open) })
	t.Run("search", func(t *testing.T) { testSearch(t, tb, ls) })
	t.Run("verify", func(t *testing.T) { testVerify(t, tb, ls, keep, withdraw, redact) })
	t.Run("offline bundle", func(t *testing.T) { testBundle(t, tb, ls, withdraw) })
	t.Run("accessibility", func(t *testing.T) { testAccessibility(t, tb, ls) })
}

// rosterNames reads every name of a letter's roster, page by page, the
// way a reader without JavaScript would.
func rosterNames(t *testing.T, tb *tab, ls *liveServer, id string) []string {
	var all []string
	for page := 1; ; page++ {
		tb.run(t, "roster page", chromedp.Navigate(fmt.Sprintf("%s/letters/%s?lang=en&page=%d", ls.URL, id, page)))
		names := eval[[]string](t, tb, `[...document.querySelectorAll('#roster-table td.name')].map(e => e.textContent)`)
		next := eval[bool](t, tb, `!!document.querySelector('a[rel=next]')`)
		all = append(all, names...)
		if !next {
			return all
		}
	}
}

func testLetterPage(t *testing.T, tb *tab, ls *liveServer, done []endorsed, withdrawn, redacted endorsed) {
	got := rosterNames(t, tb, ls, "library-hours")
	want := map[string]bool{}
	privateOnly := map[string]bool{}
	for _, e := range done {
		name := records.CanonicalField(e.Row.Name)
		if e.Row.Private {
			privateOnly[name] = true
		}
	}
	counted := 0
	for _, e := range done {
		name := records.CanonicalField(e.Row.Name)
		if !e.Row.Private && e.Index != redacted.Index && e.Index != withdrawn.Index {
			want[name] = true
			delete(privateOnly, name) // a private signer may share a public one's name
		}
		counted++
	}
	gotSet := map[string]bool{}
	for _, n := range got {
		gotSet[n] = true
	}
	for n := range want {
		if !gotSet[n] {
			t.Errorf("the roster lacks the public name %q", n)
		}
	}
	tb.run(t, "letter page", chromedp.Navigate(ls.URL+"/letters/library-hours?lang=en"))
	html := eval[string](t, tb, `document.documentElement.outerHTML`)
	counts := eval[map[string]string](t, tb, `Object.fromEntries([...document.querySelectorAll('[data-count]')].map(e => [e.dataset.count, e.textContent]))`)
	chart := eval[bool](t, tb, `!!document.querySelector('#chart svg polyline')`)
	for n := range privateOnly {
		if strings.Contains(html, n) {
			t.Errorf("the page shows the private name %q", n)
		}
	}
	if redacted.Row.Name != "" && !want[records.CanonicalField(redacted.Row.Name)] && strings.Contains(html, records.CanonicalField(redacted.Row.Name)) {
		t.Errorf("the page shows the redacted name %q", redacted.Row.Name)
	}
	c, err := ls.Client.API().GetRoster(testContext(t), &pb.GetRosterRequest{LetterId: "library-hours", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[string]string{"public": fmt.Sprint(c.GetCounts().GetPublic()), "private": fmt.Sprint(c.GetCounts().GetPrivate()),
		"redacted": fmt.Sprint(c.GetCounts().GetRedacted()), "withdrawn": fmt.Sprint(c.GetCounts().GetWithdrawn()),
		"superseded": fmt.Sprint(c.GetCounts().GetSuperseded()),
		"counted":    fmt.Sprint(c.GetCounts().GetPublic() + c.GetCounts().GetPrivate() + c.GetCounts().GetRedacted())}
	for k, v := range wantCounts {
		if counts[k] != v {
			t.Errorf("count %s: the page shows %q, the server's GetRoster %s", k, counts[k], v)
		}
	}
	if c.GetCounts().GetWithdrawn() != 1 || c.GetCounts().GetRedacted() != 1 {
		t.Errorf("counts %v, want one withdrawn and one redacted", c.GetCounts())
	}
	if !chart {
		t.Error("the page has no chart")
	}
	for _, kind := range []string{"withdrawal", "redaction"} {
		if !strings.Contains(html, `data-kind="`+kind+`"`) {
			t.Errorf("the history lacks the %s", kind)
		}
	}
	_ = counted
	for _, lang := range webui.Languages {
		tb.run(t, "letter page "+lang, chromedp.Navigate(ls.URL+"/letters/library-hours?lang="+lang))
		tb.screenshot(t, "letter-"+lang)
		tb.run(t, "index "+lang, chromedp.Navigate(ls.URL+"/?lang="+lang))
		tb.screenshot(t, "index-"+lang)
	}
	if _, problems := tb.takeRequests(); len(problems) > 0 {
		t.Errorf("script errors: %v", problems)
	}
}

func testSign(t *testing.T, tb *tab, ls *liveServer, open *pb.Letter) {
	const name = "Лапінская Ганна"
	tb.run(t, "sign", chromedp.Navigate(ls.URL+"/letters/open-library?lang=be"),
		chromedp.WaitVisible("#sign-form"),
		chromedp.SendKeys("#sign-name", name), chromedp.SendKeys("#sign-affiliation", "Бібліятэка"))
	tb.screenshot(t, "sign-be")
	tb.run(t, "submit", chromedp.Click(`#sign-form button[type=submit]`))
	value(t, tb, "signed", chromedp.Poll[bool](`document.querySelectorAll('#sign-result a').length === 2 || document.getElementById('sign-status').textContent.startsWith('Не')`,
		chromedp.WithPollingTimeout(time.Minute)))
	status := value(t, tb, "status", chromedp.Text("#sign-status"))
	tb.screenshot(t, "signed-be")
	index := eval[string](t, tb, `document.getElementById('sign-result').dataset.index || ''`)
	if index == "" {
		t.Fatalf("not signed: %s", status)
	}
	tb.run(t, "download", chromedp.Click(`#sign-result a:nth-of-type(1)`), chromedp.Click(`#sign-result a:nth-of-type(2)`))
	rcptPath := filepath.Join(tb.dl, "open-library-"+index+".tlog-proof")
	keyPath := filepath.Join(tb.dl, "open-library-signer.key")
	var rcpt, key []byte
	deadline := time.Now().Add(time.Minute)
	for {
		rcpt, _ = os.ReadFile(rcptPath)
		key, _ = os.ReadFile(keyPath)
		if len(rcpt) > 0 && len(key) > 0 {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(tb.dl)
			t.Fatalf("the downloads did not arrive (status %q, folder %v)", status, entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// What `undersigned verify` checks: offline, then online.
	st, err := ls.Client.Verify(testContext(t), rcpt)
	if err != nil {
		t.Fatalf("verify the downloaded receipt: %v", err)
	}
	if st.State != client.StateCounted || st.Disclosure.GetName() != name {
		t.Errorf("the downloaded receipt: %v, name %q", st.State, st.Disclosure.GetName())
	}
	seed, err := signing.ParseSignerSeed(key)
	if err != nil {
		t.Fatalf("the downloaded key: %v", err)
	}
	want := records.SignerKeyForLetter(seed, ls.Client.Origin(), open.GetId()).Public()
	e := st.Record.GetEndorsement()
	if got := e.GetSigner().GetPublicKey(); !want.(ed25519.PublicKey).Equal(ed25519.PublicKey(got)) {
		t.Error("the downloaded key did not sign the endorsement")
	}
	if e.GetOrganiser() != nil || e.GetVerification() != pb.Verification_VERIFICATION_SIGNER_KEY {
		t.Errorf("the endorsement signed in the browser: %v", e)
	}
}

func testSearch(t *testing.T, tb *tab, ls *liveServer) {
	for _, c := range []struct{ letter, typed, want string }{
		{"open-library", "lapinska", "Лапінская Ганна"},
		{"library-hours", "LAPINSKA hanna", "Łapińska Hanna"},
		{"library-hours", "лапінская", "Łapińska Hanna"},
	} {
		// The query is set, not typed key by key: typing into a page still
		// loading once lost keys, and the search then found nothing. The
		// browser still submits the form.
		tb.run(t, "search", chromedp.Navigate(ls.URL+"/letters/"+c.letter+"?lang=en"),
			chromedp.WaitVisible("#q"), chromedp.SetValue("#q", c.typed), chromedp.Submit("#q"),
			chromedp.WaitVisible("#matches"))
		names := eval[[]string](t, tb, `[...document.querySelectorAll('#roster-table td.name')].map(e => e.textContent)`)
		if !slices.Contains(names, c.want) {
			sent := eval[string](t, tb, `new URLSearchParams(location.search).get('q')`)
			t.Errorf("searching %s for %q (the page was asked for %q) found %q, want %q among them", c.letter, c.typed, sent, names, c.want)
		}
		if c.letter == "open-library" {
			tb.screenshot(t, "search")
		}
	}
}

// tamper returns a copy of a receipt with one byte changed in part:
// "proof", "record" or "checkpoint".
func tamper(t *testing.T, b []byte, part string) []byte {
	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	switch part {
	case "proof":
		r.Proof[0][3] ^= 1
	case "record":
		r.Extra.Record[len(r.Extra.Record)-5] ^= 1
	case "checkpoint":
		i := strings.Index(string(r.Checkpoint), "\n") + 3 // in the size line
		r.Checkpoint[i] ^= 1
	}
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testVerify(t *testing.T, tb *tab, ls *liveServer, keep, withdrawn, redacted endorsed) {
	tb.takeRequests()
	for _, c := range []struct {
		name string
		rcpt []byte
		want string
		e    endorsed
	}{
		{"counted", keep.Receipt, "counted", keep},
		{"withdrawn", withdrawn.Receipt, "withdrawn", withdrawn},
		{"redacted", redacted.Receipt, "redacted", redacted},
		{"proof changed", tamper(t, keep.Receipt, "proof"), "invalid", keep},
		{"record changed", tamper(t, keep.Receipt, "record"), "invalid", keep},
		{"checkpoint changed", tamper(t, keep.Receipt, "checkpoint"), "invalid", keep},
	} {
		shot := ""
		if c.name == c.want {
			shot = "verify-" + c.want
		}
		if got := tb.verifyState(t, ls.URL, c.rcpt, shot); got != c.want {
			reason := value(t, tb, "reason", chromedp.Text("#result"))
			t.Errorf("%s: data-state %q (%s), want %q", c.name, got, reason, c.want)
		}
		reqs, problems := tb.takeRequests()
		if len(problems) > 0 {
			t.Errorf("%s: script errors: %v", c.name, problems)
		}
		checkNoLeak(t, c.name, reqs, c.rcpt, c.e)
	}
	// A link that names the entry instead of carrying the receipt.
	for _, c := range []struct {
		e    endorsed
		want string
	}{{keep, "counted"}, {withdrawn, "withdrawn"}} {
		r, err := receipt.Parse(c.e.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		leaf := base64.RawURLEncoding.EncodeToString(receipt.LeafHash(r.Extra.GetRecord()))
		u := fmt.Sprintf("%s/verify#o=%s&i=%d&h=%s", ls.URL, url.QueryEscape(ls.Client.Origin()), c.e.Index, leaf)
		tb.run(t, "verify a reference", chromedp.Navigate("about:blank"), chromedp.Navigate(u))
		got := value(t, tb, "reference result", chromedp.Poll[string](
			`(() => { const r = document.getElementById('result'); return r && !r.hidden && r.dataset.state; })()`,
			chromedp.WithPollingTimeout(time.Minute)))
		if got != c.want {
			t.Errorf("the reference to %d: data-state %q, want %q", c.e.Index, got, c.want)
		}
		reqs, _ := tb.takeRequests()
		checkNoLeak(t, "reference", reqs, c.e.Receipt, c.e)
	}
	for _, lang := range webui.Languages {
		tb.run(t, "verify "+lang, chromedp.Navigate(ls.URL+"/verify?lang="+lang), chromedp.WaitVisible("#receipt-form"))
		tb.screenshot(t, "verify-page-"+lang)
	}
}

// checkNoLeak fails if any request of the check carries anything of the
// receipt: its bytes or lines, its index or checkpoint size as a part of
// a URL, its hashes in any common spelling, or the name.
func checkNoLeak(t *testing.T, name string, reqs []request, rcpt []byte, e endorsed) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatalf("%s: the network log is empty", name)
	}
	r, err := receipt.Parse(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	var cpSize uint64
	if lines := strings.Split(string(r.Checkpoint), "\n"); len(lines) > 1 {
		cpSize, _ = strconv.ParseUint(lines[1], 10, 64)
	}
	var needles []string
	for _, l := range strings.Split(string(rcpt), "\n") {
		if len(l) >= 12 {
			needles = append(needles, l, url.QueryEscape(l))
		}
	}
	hashes := append(slices.Clone(r.Proof), receipt.LeafHash(r.Extra.GetRecord()))
	for _, h := range hashes {
		needles = append(needles, base64.StdEncoding.EncodeToString(h)[:16], base64.RawURLEncoding.EncodeToString(h)[:16], hex.EncodeToString(h)[:16])
	}
	full := base64.RawURLEncoding.EncodeToString(rcpt)
	needles = append(needles, full[:32], full[len(full)-32:])
	if n := records.CanonicalField(e.Row.Name); n != "" {
		needles = append(needles, n, url.QueryEscape(n), url.PathEscape(n), strings.ToLower(n))
	}
	for _, q := range reqs {
		if q.Method != "GET" {
			t.Errorf("%s: the check sent a %s to %s", name, q.Method, q.URL)
		}
		all := q.URL + "\n" + q.Body + "\n" + strings.Join(q.Headers, "\n")
		for _, n := range needles {
			if strings.Contains(all, n) {
				t.Errorf("%s: a request carries part of the receipt (%q): %.120s", name, n, q.URL)
			}
		}
		u, err := url.Parse(q.URL)
		if err != nil {
			continue
		}
		if u.Fragment != "" || strings.Contains(u.RawQuery, "r=") {
			t.Errorf("%s: a request carries the fragment: %s", name, q.URL)
		}
		for _, seg := range strings.FieldsFunc(u.Path+"/"+u.RawQuery, func(r rune) bool { return r == '/' || r == '.' || r == '=' || r == '&' }) {
			n, err := strconv.ParseUint(strings.TrimLeft(strings.TrimPrefix(seg, "x"), "0"), 10, 64)
			if err != nil {
				continue
			}
			if n == r.Index || n == cpSize {
				t.Errorf("%s: the URL %s names the receipt's index %d or checkpoint size %d", name, q.URL, r.Index, cpSize)
			}
		}
	}
}

var errNoAxe = errors.New("no axe-core")

// axeSource returns axe-core's script: $UNDERSIGNED_AXE_JS, which .ci/run
// sets after installing axe-core from npm.
func axeSource(t *testing.T) string {
	p := os.Getenv("UNDERSIGNED_AXE_JS")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("UNDERSIGNED_AXE_JS is not set: .ci/run installs axe-core from npm and sets it")
		}
		t.Skip("UNDERSIGNED_AXE_JS is not set (npm install axe-core, then point it at axe.min.js): accessibility not checked")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v: %v", errNoAxe, err)
	}
	return string(b)
}

func testAccessibility(t *testing.T, tb *tab, ls *liveServer) {
	axe := axeSource(t)
	type violation struct {
		ID, Impact, Help string
		Nodes            []struct{ Target []string }
	}
	run := `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical'))`
	// First a page with a known fault, to see that the check can fail.
	tb.run(t, "axe control", chromedp.Navigate(`data:text/html,<html><body><img src="x.png"></body></html>`))
	eval[chromedp.Void](t, tb, axe+";undefined")
	if found := eval[[]violation](t, tb, run); len(found) == 0 {
		t.Fatal("axe-core found nothing on a page with an image without alt text")
	}
	for _, lang := range webui.Languages {
		for _, page := range []string{"/", "/letters/library-hours", "/letters/open-library", "/verify"} {
			u := ls.URL + page + "?lang=" + lang
			tb.run(t, "axe "+u, chromedp.Navigate(u), chromedp.WaitReady("footer"))
			eval[chromedp.Void](t, tb, axe+";undefined")
			found := eval[[]violation](t, tb, run)
			for _, v := range found {
				t.Errorf("%s: %s (%s): %s at %v", u, v.ID, v.Impact, v.Help, v.Nodes)
			}
		}
	}
}

// testBundle opens the verify page of a delivery bundle from the disk, as
// an addressee without a network would: a valid receipt is "included" (its
// later state cannot be known offline), a changed one invalid.
func testBundle(t *testing.T, tb *tab, ls *liveServer, e endorsed) {
	tb.takeRequests()
	dir := t.TempDir()
	files, err := webui.BundleFiles(ls.Client.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		rcpt []byte
		want string
	}{{e.Receipt, "included"}, {tamper(t, e.Receipt, "proof"), "invalid"}} {
		if got := tb.verifyState(t, "file://"+dir, c.rcpt, "", "verify.ru.html"); got != c.want {
			t.Errorf("the bundle's page: data-state %q, want %q", got, c.want)
		}
	}
	tb.screenshot(t, "bundle-verify-ru")
	if reqs, problems := tb.takeRequests(); len(problems) > 0 {
		t.Errorf("script errors: %v", problems)
	} else {
		for _, r := range reqs {
			// (A page left before may still finish its own requests.)
			if strings.HasPrefix(r.Document, "file://") && !strings.HasPrefix(r.URL, "file://") {
				t.Errorf("the bundle's page fetched %s", r.URL)
			}
		}
	}
}
