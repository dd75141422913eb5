package receiptpage_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"image"
	"image/color"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receiptpage"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
)

// decodeQR reads a QR code's modules back with an independent decoder.
func decodeQR(t *testing.T, m [][]bool) string {
	t.Helper()
	const scale = 4
	n := len(m) + 8
	img := image.NewGray(image.Rect(0, 0, n*scale, n*scale))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for y, row := range m {
		for x, dark := range row {
			if dark {
				for dy := range scale {
					for dx := range scale {
						img.SetGray((x+4)*scale+dx, (y+4)*scale+dy, color.Gray{})
					}
				}
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("the QR code does not decode: %v", err)
	}
	return res.GetText()
}

// endorse serves a log, publishes a letter in lang and endorses name.
func endorse(t *testing.T, lang, name, affiliation string) (*pb.Letter, *client.Result, string) {
	t.Helper()
	ctx := context.Background()
	s := servertest.Start(t, servertest.Options{Origin: "page.test/undersigned"})
	c := s.Dial(t, s.Token)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(c.Origin(), client.LetterDraft{ID: "l", Title: "Права подпісу", Text: "Text.\n", Language: lang}, key)
	if _, err := c.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	r, err := c.Endorse(ctx, client.NewEndorsement(c.Origin(), l, client.Signer{Fields: records.Fields{Name: name, Affiliation: affiliation}, OrganiserKey: key}), "")
	if err != nil {
		t.Fatal(err)
	}
	return l, r, c.VerifierKey()
}

// TestPage: the page shows the title, the name, the index and the log key's
// fingerprint, in the letter's language; its QR code decodes to the link;
// the link's receipt verifies and cannot withdraw.
func TestPage(t *testing.T) {
	l, r, key := endorse(t, "be", "Бяляцкая Таццяна", "Маці траіх дзяцей")
	p := receiptpage.Page{Letter: l, Receipt: r.Receipt, Verified: r.Verified, LogKey: key, VerifyURL: "https://ledger.example.org/verify"}
	html, err := receiptpage.HTML(p)
	if err != nil {
		t.Fatal(err)
	}
	fp := receiptpage.LogKeyFingerprint(key)
	for _, want := range []string{"Права подпісу", "Бяляцкая Таццяна", ">" + strconv.FormatUint(r.Verified.Index, 10) + "<", fp, "Ваш подпіс пад адкрытым лістом", `lang="be"`} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if len(fp) != 16 || bytes.Contains(html, []byte("<script")) || bytes.Contains(html, []byte("src=")) {
		t.Errorf("fingerprint %q, or the page loads something", fp)
	}
	link, _ := receiptpage.VerifyLink(p.VerifyURL, r.Receipt, false)
	m, err := receiptpage.QRMatrix(link)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeQR(t, m); got != link {
		t.Fatalf("the QR code says %q, want %q", got, link)
	}
	frag, ok := strings.CutPrefix(link, "https://ledger.example.org/verify#r=")
	if !ok {
		t.Fatalf("link %q", link)
	}
	rb, err := base64.RawURLEncoding.DecodeString(frag)
	if err != nil {
		t.Fatal(err)
	}
	rc, v, err := client.VerifyOffline(rb, mustVerifier(t, key))
	if err != nil || v.Disclosure.GetName() != "Бяляцкая Таццяна" || len(rc.Extra.GetWithdrawalSecret()) != 0 {
		t.Fatalf("the link's receipt: %v, %+v, secret %x", err, v, rc.Extra.GetWithdrawalSecret())
	}

	// The PDF: one page, the Go fonts embedded.
	pdf, err := receiptpage.PDF(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || bytes.Count(pdf, []byte("/Type /Page\n")) != 1 {
		t.Errorf("not a one-page PDF: %d pages", bytes.Count(pdf, []byte("/Type /Page\n")))
	}

	// Hidden names: the short link, no name on the page.
	p.HideName = true
	html, _ = receiptpage.HTML(p)
	if bytes.Contains(html, []byte("Бяляцкая")) {
		t.Error("a hidden name is on the page")
	}
	short, _ := receiptpage.VerifyLink(p.VerifyURL, r.Receipt, true)
	u, err := url.Parse(short)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(u.Fragment)
	leaf, _ := base64.RawURLEncoding.DecodeString(q.Get("h"))
	if q.Get("o") != "page.test/undersigned" || q.Get("i") != strconv.FormatUint(r.Verified.Index, 10) || !bytes.Equal(leaf, r.Verified.LeafHash) {
		t.Errorf("short link %q", short)
	}
	if !bytes.Contains(html, []byte("#o=page.test%2Fundersigned&amp;i=")) {
		t.Errorf("the page of a hidden name does not use the short link")
	}
}

// TestLanguages: Russian and English pages; an unknown language is English.
func TestLanguages(t *testing.T) {
	for lang, want := range map[string]string{"ru": "Ваша подпись под открытым письмом", "en": "Your signature under an open letter", "de": "Your signature", "be-Latn": "Ваш подпіс"} {
		if got, _ := receiptpage.TextFor(lang); !strings.HasPrefix(got.Title, want) {
			t.Errorf("%s: %q", lang, got.Title)
		}
	}
}

func mustVerifier(t *testing.T, key string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLongReceiptsLinkShort: a receipt too long for the QR code is linked
// by origin, index and leaf hash.
func TestLongReceiptsLinkShort(t *testing.T) {
	_, r, _ := endorse(t, "en", "Bialiatskaya Tatsiana", "Mother of three")
	long := "https://ledger.example.org/" + strings.Repeat("x", receiptpage.MaxLinkLength) + "/verify"
	link, err := receiptpage.VerifyLink(long, r.Receipt, false)
	if err != nil || strings.Contains(link, "#r=") || !strings.Contains(link, "#o=") {
		t.Errorf("link %q, %v", link, err)
	}
}
