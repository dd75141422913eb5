package receiptpage

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"

	qrcode "github.com/yeqown/go-qrcode/v2"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Page is what one receipt's page shows.
type Page struct {
	// Letter is the letter signed: its title and language.
	Letter *pb.Letter
	// Receipt is the receipt file; Verified what verifying it found.
	Receipt  []byte
	Verified *receipt.Verified
	// LogKey is the log's verifier key (note format).
	LogKey string
	// VerifyURL is the log's verify page, such as
	// https://ledger.example.org/verify.
	VerifyURL string
	// HideName keeps the signer's name off the page and out of the QR
	// code: for private signers and names kept apart.
	HideName bool
}

// Rendered is a page's content, ready to lay out as HTML, PDF or an
// e-mail: its QR code is computed once. Make it with [Page.Render].
type Rendered struct {
	*content
	receipt []byte
}

// Render computes a page's content (the link and its QR code). It fails on
// a receipt that does not parse, or a link too long for any QR code.
func (p Page) Render() (*Rendered, error) {
	c, err := p.content()
	if err != nil {
		return nil, err
	}
	return &Rendered{c, p.Receipt}, nil
}

// content is a page's content, ready to lay out.
type content struct {
	Text                       Text
	Lang, Letter, Name, LogKey string
	Index                      uint64
	Link                       string
	QR                         [][]bool
}

func (p Page) content() (*content, error) {
	link, err := VerifyLink(p.VerifyURL, p.Receipt, p.HideName)
	if err != nil {
		return nil, err
	}
	qr, err := qrMatrix(link)
	if err != nil {
		return nil, err
	}
	t, lang := TextFor(p.Letter.GetLanguage())
	c := &content{Text: t, Lang: lang, Letter: p.Letter.GetTitle(), Index: p.Verified.Index, LogKey: LogKeyFingerprint(p.LogKey), Link: link, QR: qr}
	switch {
	case p.HideName || p.Verified.Disclosure == nil:
		c.Name = t.Private
	default:
		c.Name = p.Verified.Disclosure.GetName()
	}
	return c, nil
}

// LogKeyFingerprint returns records.KeyFingerprint of the Ed25519 key in a
// note verifier key ("origin+hash+base64"), or "" if it is not one.
func LogKeyFingerprint(verifierKey string) string {
	parts := strings.SplitN(strings.TrimSpace(verifierKey), "+", 3)
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) != 33 {
		return ""
	}
	return records.KeyFingerprint(b[1:])
}

// matrixWriter keeps the modules of a QR code.
type matrixWriter struct{ m [][]bool }

func (w *matrixWriter) Write(mat qrcode.Matrix) error {
	w.m = make([][]bool, mat.Height())
	for y := range w.m {
		w.m[y] = make([]bool, mat.Width())
	}
	mat.Iterate(qrcode.IterDirection_ROW, func(x, y int, v qrcode.QRValue) { w.m[y][x] = v.IsSet() })
	return nil
}

func (w *matrixWriter) Close() error { return nil }

// qrMatrix encodes text as a QR code (error correction M) and returns its
// modules, dark ones true, rows first.
func qrMatrix(text string) ([][]bool, error) {
	q, err := qrcode.NewWith(text, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium), qrcode.WithEncodingMode(qrcode.EncModeByte))
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	var w matrixWriter
	if err := q.Save(&w); err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	return w.m, nil
}

// svg draws a QR code with a quiet zone of 4 modules.
func svg(m [][]bool) template.HTML {
	n := len(m) + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges" role="img" aria-label="QR code"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n, n, n)
	for y, row := range m {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+4, y+4)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String())
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Text.Title}}</title>
<style>
body { font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #000; background: #fff; }
h1 { font-size: 1.5em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1em; }
dt { font-weight: bold; }
dd { margin: 0; word-break: break-word; }
.qr { width: 7cm; height: 7cm; margin: 1em 0; }
.link { font-size: .7em; word-break: break-all; }
code { font-size: .9em; }
@page { size: A4; margin: 1.5cm; }
</style>
</head>
<body>
<h1>{{.Text.Title}}</h1>
<dl>
<dt>{{.Text.Letter}}</dt><dd>{{.Letter}}</dd>
<dt>{{.Text.SignedAs}}</dt><dd>{{.Name}}</dd>
<dt>{{.Text.Index}}</dt><dd>{{.Index}}</dd>
<dt>{{.Text.LogKey}}</dt><dd><code>{{.LogKey}}</code></dd>
</dl>
<div class="qr">{{.SVG}}</div>
<p class="link"><a href="{{.Link}}">{{.Link}}</a></p>
<p>{{.Text.Scan}}</p>
<p>{{.Text.Keep}}</p>
<p><code>{{.Text.Computer}}</code></p>
<p>{{.Text.NoWithdraw}}</p>
</body>
</html>
`))

// HTML returns the page as a self-contained HTML document (no scripts, no
// outside resources; the QR code is inline SVG), laid out to print on one
// page.
func HTML(p Page) ([]byte, error) {
	r, err := p.Render()
	if err != nil {
		return nil, err
	}
	return r.HTML()
}

// HTML returns the page as HTML (see the function HTML).
func (r *Rendered) HTML() ([]byte, error) {
	c := r.content
	var b bytes.Buffer
	err := pageTemplate.Execute(&b, struct {
		*content
		SVG template.HTML
	}{c, svg(c.QR)})
	return b.Bytes(), err
}
