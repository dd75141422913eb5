package receiptpage

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Attachment is a file attached to an e-mail.
type Attachment struct {
	Name, ContentType string
	Data              []byte
}

// Email returns an e-mail (RFC 5322, MIME) from from to to carrying a
// receipt: the texts of the page in the letter's language, the receipt
// file and the attachments given (the page as HTML or PDF). It fails on an
// address that does not parse.
func Email(from, to string, p Page, receiptName string, attachments ...Attachment) ([]byte, error) {
	r, err := p.Render()
	if err != nil {
		return nil, err
	}
	return r.Email(from, to, receiptName, attachments...)
}

// Email returns the e-mail carrying the receipt (see the function Email).
func (r *Rendered) Email(from, to string, receiptName string, attachments ...Attachment) ([]byte, error) {
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("sender %q: %w", from, err)
	}
	toAddr, err := mail.ParseAddress(to)
	if err != nil {
		return nil, fmt.Errorf("recipient %q: %w", to, err)
	}
	c := r.content
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	id := make([]byte, 12)
	rand.Read(id)
	var h bytes.Buffer
	fmt.Fprintf(&h, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@undersigned>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n",
		fromAddr.String(), toAddr.String(), mime.QEncoding.Encode("utf-8", fmt.Sprintf(c.Text.Subject, c.Letter)),
		time.Now().UTC().Format(time.RFC1123Z), hex.EncodeToString(id), mw.Boundary())
	text := strings.Join([]string{
		fmt.Sprintf(c.Text.Attached, c.Letter, c.Index),
		c.Text.SignedAs + ": " + c.Name,
		c.Text.LogKey + ": " + c.LogKey,
		c.Text.Scan, c.Link, c.Text.Keep, c.Text.Computer,
	}, "\r\n\r\n") + "\r\n"
	part, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, err
	}
	writeBase64(part, []byte(text))
	all := append([]Attachment{{Name: receiptName, ContentType: "application/octet-stream", Data: r.receipt}}, attachments...)
	for _, a := range all {
		part, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {a.ContentType},
			"Content-Transfer-Encoding": {"base64"},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})},
		})
		if err != nil {
			return nil, err
		}
		writeBase64(part, a.Data)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return append(h.Bytes(), body.Bytes()...), nil
}

// writeBase64 writes b in base64 lines of 76 characters.
func writeBase64(w interface{ Write([]byte) (int, error) }, b []byte) {
	s := base64.StdEncoding.EncodeToString(b)
	for len(s) > 76 {
		w.Write([]byte(s[:76] + "\r\n"))
		s = s[76:]
	}
	w.Write([]byte(s + "\r\n"))
}
