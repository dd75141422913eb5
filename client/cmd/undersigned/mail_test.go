package main

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client"
)

// mailpitVersion is the SMTP server the e-mail test sends to, built from
// the Go module proxy.
const mailpitVersion = "v1.33.1"

// mailpitBinary returns a mailpit binary: $UNDERSIGNED_MAILPIT, or one
// built with go install into the user's cache folder (once; later runs
// reuse it). Without one it skips, except under CI=true, where it fails.
func mailpitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("UNDERSIGNED_MAILPIT"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "undersigned-test-tools", "mailpit-"+mailpitVersion)
	bin := filepath.Join(dir, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/axllent/mailpit@"+mailpitVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("building mailpit %s: %v\n%s", mailpitVersion, err, out)
		}
		t.Skipf("mailpit %s could not be built (set UNDERSIGNED_MAILPIT to a mailpit binary): %v", mailpitVersion, err)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startMailpit starts mailpit and returns its SMTP address and the base
// URL of its API.
func startMailpit(t *testing.T) (smtpAddr, api string) {
	t.Helper()
	bin := mailpitBinary(t)
	smtpAddr, httpAddr := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--smtp", smtpAddr, "--listen", httpAddr, "--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--max", "1000", "--quiet")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	api = "http://" + httpAddr + "/api/v1"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(api + "/messages")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return smtpAddr, api
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit did not answer in 30 s: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func getBytes(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// TestEmailReceipts sends the sample import's receipts by e-mail to a real
// SMTP server (mailpit), reads every message back over mailpit's API, and
// checks that each one reached its signer with a receipt that verifies, a
// page in the letter's language whose link's receipt verifies too, and no
// private signer's name on a page. --email-out writes the same e-mails to
// files without sending.
func TestEmailReceipts(t *testing.T) {
	smtpAddr, api := startMailpit(t)
	c, _, dataDir := newAuditCLI(t)
	publishSample(t, c)
	sample, _ := filepath.Abs("../../testdata/sample-signatories.csv")
	recs, err := csv.NewReader(bytes.NewReader(must(os.ReadFile(sample)))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(append(recs[0], "E-mail"))
	addrOf := map[string]int{} // address -> spreadsheet row
	for i, r := range recs[1:] {
		addr := fmt.Sprintf("signer%d@example.org", i+2)
		addrOf[addr] = i + 2
		w.Write(append(r, addr))
	}
	w.Flush()
	os.WriteFile(filepath.Join(c.dir, "s.csv"), buf.Bytes(), 0o644)

	code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--ignore", "note", "--pages", "html",
		"--email-column", "E-mail", "--smtp", smtpAddr, "--smtp-from", "Organisers <letters@example.org>")
	if code != exitFailed || !strings.Contains(out, "194 e-mails sent") {
		t.Fatalf("import: exit %d, want %d with 194 e-mails\n%s%s", code, exitFailed, out, errs)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dataDir, "log.pub"))))))
	if err != nil {
		t.Fatal(err)
	}
	private := map[int]string{}
	for i, r := range recs[1:] {
		if r[2] == "private" {
			private[i+2] = strings.TrimSpace(r[0])
		}
	}

	var list struct {
		Total    int `json:"total"`
		Messages []struct {
			ID string `json:"ID"`
			To []struct {
				Address string `json:"Address"`
			} `json:"To"`
			Subject string `json:"Subject"`
		} `json:"messages"`
	}
	getJSON(t, api+"/messages?limit=1000", &list)
	if list.Total != 194 || len(list.Messages) != 194 {
		t.Fatalf("mailpit holds %d messages, want 194", list.Total)
	}
	link := regexp.MustCompile(`href="[^"]*#r=([A-Za-z0-9_-]+)"`)
	short := 0
	for _, m := range list.Messages {
		row := addrOf[m.To[0].Address]
		if !strings.Contains(m.Subject, "An open letter") && !strings.Contains(m.Subject, "Library hours") {
			t.Errorf("subject %q", m.Subject)
		}
		var msg struct {
			Attachments []struct {
				PartID   string `json:"PartID"`
				FileName string `json:"FileName"`
			} `json:"Attachments"`
		}
		getJSON(t, api+"/message/"+m.ID, &msg)
		if len(msg.Attachments) != 2 {
			t.Fatalf("row %d: %d attachments, want the receipt and its page", row, len(msg.Attachments))
		}
		for _, a := range msg.Attachments {
			data := getBytes(t, api+"/message/"+m.ID+"/part/"+a.PartID)
			if !strings.Contains(a.FileName, fmt.Sprintf("-row%d", row)) {
				t.Errorf("row %d got %s", row, a.FileName)
			}
			switch {
			case strings.HasSuffix(a.FileName, ".tlog-proof"):
				if _, v, err := client.VerifyOffline(data, verifier); err != nil || !strings.HasPrefix(a.FileName, fmt.Sprintf("%06d-", v.Index)) {
					t.Errorf("row %d: the receipt %s does not verify: %v", row, a.FileName, err)
				}
			case strings.HasSuffix(a.FileName, ".html"):
				if name, ok := private[row]; ok && bytes.Contains(data, []byte(name)) {
					t.Errorf("row %d: the page names the private signer", row)
				}
				mm := link.FindSubmatch(data)
				if _, ok := private[row]; ok {
					if mm != nil || !bytes.Contains(data, []byte("#o=cli.test%2Faudit&amp;i=")) {
						t.Errorf("row %d: a private signer's page links the whole receipt", row)
					}
					continue
				}
				if mm == nil {
					// Too long for a QR code (a long affiliation): linked
					// by origin, index and leaf hash.
					idx := regexp.MustCompile(`#o=cli.test%2Faudit&amp;i=([0-9]+)&amp;h=`).FindSubmatch(data)
					if idx == nil || !strings.HasPrefix(a.FileName, fmt.Sprintf("%06s-", idx[1])) {
						t.Errorf("row %d: the page has neither link", row)
					}
					short++
					continue
				}
				rb, err := base64.RawURLEncoding.DecodeString(string(mm[1]))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := client.VerifyOffline(rb, verifier); err != nil {
					t.Errorf("row %d: the page's link does not verify: %v", row, err)
				}
			default:
				t.Errorf("row %d: an attachment %s", row, a.FileName)
			}
		}
	}

	if short > 2 {
		t.Errorf("%d public pages link by index: receipts of a log of 190 entries fit in a QR code", short)
	}

	// --email-out writes the e-mails instead (a rerun sends nothing new,
	// so a new letter).
	text, _ := filepath.Abs("../../testdata/sample-letter.txt")
	if code, _, errs := c.run("letter", "publish", "--id", "second", "--title", "Second", "--text", text, "--language", "ru"); code != 0 {
		t.Fatal(errs)
	}
	os.WriteFile(filepath.Join(c.dir, "two.csv"), []byte("name,email\nАнна Тест,anna@example.org\n"), 0o644)
	code, out, errs = c.run("import", "--letter", "second", "--csv", "two.csv", "--receipts", "r2", "--pages", "html,pdf",
		"--email-column", "email", "--email-out", "mail", "--smtp-from", "letters@example.org")
	if code != 0 || !strings.Contains(out, "1 e-mails written") {
		t.Fatalf("--email-out: exit %d\n%s%s", code, out, errs)
	}
	emls, _ := filepath.Glob(filepath.Join(c.dir, "mail", "*.eml"))
	pdfs, _ := filepath.Glob(filepath.Join(c.dir, "r2", "*.pdf"))
	if len(emls) != 1 || len(pdfs) != 1 {
		t.Fatalf("%d .eml files, %d PDFs", len(emls), len(pdfs))
	}
	eml := string(must(os.ReadFile(emls[0])))
	if !strings.Contains(eml, "=?utf-8?q?") || !strings.Contains(eml, ".pdf") || !strings.Contains(eml, "To: <anna@example.org>") {
		t.Errorf("the e-mail:\n%.600s", eml)
	}
	getJSON(t, api+"/messages?limit=1000", &list)
	if list.Total != 194 {
		t.Errorf("--email-out sent e-mails: mailpit holds %d", list.Total)
	}
}
