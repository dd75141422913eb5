package receiptpage

import (
	"bytes"
	"fmt"

	"github.com/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
)

// PDF returns the page as a one-page A4 PDF. The Go fonts are embedded: they
// cover Latin, Cyrillic and Greek letters.
func PDF(p Page) ([]byte, error) {
	r, err := p.Render()
	if err != nil {
		return nil, err
	}
	return r.PDF()
}

// PDF returns the page as a PDF (see the function PDF).
func (r *Rendered) PDF() ([]byte, error) {
	c := r.content
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreator("undersigned", true)
	pdf.SetTitle(c.Text.Title, true)
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.AddUTF8FontFromBytes("gomono", "", gomono.TTF)
	pdf.SetMargins(20, 20, 20)
	pdf.SetAutoPageBreak(false, 15)
	pdf.AddPage()
	pdf.SetFont("go", "B", 18)
	pdf.MultiCell(0, 9, c.Text.Title, "", "L", false)
	pdf.Ln(3)
	row := func(label, value, font string) {
		pdf.SetFont("go", "B", 11)
		pdf.CellFormat(52, 6, label, "", 0, "L", false, 0, "")
		pdf.SetFont(font, "", 11)
		pdf.MultiCell(0, 6, value, "", "L", false)
	}
	row(c.Text.Letter, c.Letter, "go")
	row(c.Text.SignedAs, c.Name, "go")
	row(c.Text.Index, fmt.Sprint(c.Index), "go")
	row(c.Text.LogKey, c.LogKey, "gomono")
	// The QR code, 70 mm wide with its quiet zone.
	x0, y0 := pdf.GetX(), pdf.GetY()+4
	n := float64(len(c.QR) + 8)
	module := 70 / n
	pdf.SetFillColor(0, 0, 0)
	for y, r := range c.QR {
		for x, dark := range r {
			if dark {
				pdf.Rect(x0+float64(x+4)*module, y0+float64(y+4)*module, module, module, "F")
			}
		}
	}
	pdf.SetXY(x0, y0+72)
	pdf.SetFont("gomono", "", 6)
	pdf.MultiCell(0, 2.8, c.Link, "", "L", false)
	pdf.Ln(3)
	pdf.SetFont("go", "", 11)
	for _, s := range []string{c.Text.Scan, c.Text.Keep, c.Text.Computer, c.Text.NoWithdraw} {
		pdf.MultiCell(0, 5.5, s, "", "L", false)
		pdf.Ln(2)
	}
	var b bytes.Buffer
	if err := pdf.Output(&b); err != nil {
		return nil, fmt.Errorf("pdf: %w", err)
	}
	return b.Bytes(), nil
}
