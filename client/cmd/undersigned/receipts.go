package main

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/receiptpage"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// deliveryFlags say what import makes of each receipt for its signer: a
// printable page (HTML, PDF) and an e-mail.
type deliveryFlags struct {
	pages, verifyURL                          string
	emailColumn, smtpAddr, smtpFrom, smtpUser string
	smtpPasswordFile, emailOut                string
}

func (d *deliveryFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&d.pages, "pages", "", "also write a printable page beside each new receipt: html, pdf or html,pdf")
	fs.StringVar(&d.verifyURL, "verify-url", "", "the log's verify page for the pages' QR codes and links (default: http://HOST:7421/verify, HOST that of --server)")
	fs.StringVar(&d.emailColumn, "email-column", "", "e-mail each new receipt to the address in the column with this `HEADER`")
	fs.StringVar(&d.smtpAddr, "smtp", "", "with --email-column: the SMTP server, `HOST:PORT` (STARTTLS when it offers it)")
	fs.StringVar(&d.smtpFrom, "smtp-from", "", "with --email-column: the sender's address")
	fs.StringVar(&d.smtpUser, "smtp-user", "", "with --smtp: the user to log in as (PLAIN, over TLS or to localhost only)")
	fs.StringVar(&d.smtpPasswordFile, "smtp-password-file", "", "with --smtp-user: a file holding the password")
	fs.StringVar(&d.emailOut, "email-out", "", "with --email-column: write the e-mails as .eml files to this `DIR` instead of sending them")
}

// check validates the flags before anything is sent.
func (d *deliveryFlags) check(server string) error {
	for _, p := range strings.Split(d.pages, ",") {
		if p != "" && p != "html" && p != "pdf" {
			return usagef("import: --pages must be html, pdf or html,pdf")
		}
	}
	if d.emailColumn != "" {
		if d.smtpFrom == "" {
			return usagef("import: --email-column needs --smtp-from")
		}
		if (d.smtpAddr == "") == (d.emailOut == "") {
			return usagef("import: --email-column needs --smtp HOST:PORT to send, or --email-out DIR to write the e-mails to files")
		}
	}
	if d.verifyURL == "" {
		host, _, err := net.SplitHostPort(server)
		if err != nil {
			host = server
		}
		d.verifyURL = "http://" + net.JoinHostPort(host, "7421") + "/verify"
	}
	return nil
}

func (d *deliveryFlags) wanted() bool { return d.pages != "" || d.emailColumn != "" }

// deliverReceipts writes the pages of the receipts written in this run and
// sends (or writes) their e-mails; a receipt sent by e-mail gets a file
// beside it (RECEIPT.emailed), so that a rerun sends those that are not.
// It returns how many e-mails went out.
func deliverReceipts(e *env, d deliveryFlags, c *client.Client, l *pb.Letter, rows []*row) (int, error) {
	var auth smtp.Auth
	if d.smtpUser != "" {
		pw, err := os.ReadFile(d.smtpPasswordFile)
		if err != nil {
			return 0, usagef("import: --smtp-password-file: %v", err)
		}
		host, _, _ := net.SplitHostPort(d.smtpAddr)
		auth = smtp.PlainAuth("", d.smtpUser, strings.TrimSpace(string(pw)), host)
	}
	if d.emailOut != "" {
		if err := os.MkdirAll(d.emailOut, 0o700); err != nil {
			return 0, usagef("import: %v", err)
		}
	}
	from, err := mail.ParseAddress(d.smtpFrom)
	if d.emailColumn != "" && err != nil {
		return 0, usagef("import: --smtp-from %q: %v", d.smtpFrom, err)
	}
	sent := 0
	for _, r := range rows {
		base := strings.TrimSuffix(r.path, receipt.Extension)
		// A receipt of this run gets its pages; one of an earlier run
		// that was not e-mailed yet gets its e-mail.
		mailed := base + ".emailed"
		_, statErr := os.Stat(mailed)
		unsent := d.emailColumn != "" && d.emailOut == "" && errors.Is(statErr, os.ErrNotExist)
		if r.path == "" || (!r.fresh && !unsent) {
			continue
		}
		b, err := os.ReadFile(r.path)
		if err != nil {
			return sent, err
		}
		_, v, err := client.VerifyOffline(b, c.Verifier())
		if err != nil {
			return sent, fmt.Errorf("%s: %w", r.path, err)
		}
		p := receiptpage.Page{Letter: l, Receipt: b, Verified: v, LogKey: c.VerifierKey(), VerifyURL: d.verifyURL,
			HideName: r.Visibility == pb.Visibility_VISIBILITY_PRIVATE}
		page, err := p.Render()
		if err != nil {
			return sent, fmt.Errorf("%s: %w", r.path, err)
		}
		attach, err := writePages(d, page, base)
		if err != nil {
			return sent, fmt.Errorf("%s: %w", r.path, err)
		}
		if d.emailColumn == "" {
			continue
		}
		if r.email == "" {
			fmt.Fprintf(e.stderr, "import: row %d has no e-mail address: its receipt is only in %s\n", r.Number, r.path)
			continue
		}
		msg, err := page.Email(d.smtpFrom, r.email, filepath.Base(r.path), attach...)
		if err != nil {
			fmt.Fprintf(e.stderr, "import: row %d: %v: its receipt is only in %s\n", r.Number, err, r.path)
			continue
		}
		if d.emailOut != "" {
			if err := writeFileAtomic(filepath.Join(d.emailOut, filepath.Base(base)+".eml"), msg, 0o600); err != nil {
				return sent, err
			}
		} else {
			to, _ := mail.ParseAddress(r.email)
			if err := smtp.SendMail(d.smtpAddr, auth, from.Address, []string{to.Address}, msg); err != nil {
				return sent, fmt.Errorf("import: e-mail to row %d: %w (the receipts are written; rerun with the same flags to send the rest)", r.Number, err)
			}
			if err := writeFileAtomic(mailed, []byte(r.email+"\n"), 0o600); err != nil {
				return sent, err
			}
		}
		sent++
	}
	return sent, nil
}

// deliverAndSay delivers the receipts (see deliverReceipts) and says how
// many e-mails went out.
func deliverAndSay(e *env, d deliveryFlags, c *client.Client, l *pb.Letter, rows []*row) error {
	sent, err := deliverReceipts(e, d, c, l, rows)
	switch {
	case d.emailColumn == "":
	case d.emailOut != "":
		fmt.Fprintf(e.stdout, "%d e-mails written to %s\n", sent, d.emailOut)
	default:
		fmt.Fprintf(e.stdout, "%d e-mails sent\n", sent)
	}
	return err
}

// writePages writes the pages --pages asks for beside a receipt (base is
// its path without the extension) and returns them as attachments.
func writePages(d deliveryFlags, p *receiptpage.Rendered, base string) ([]receiptpage.Attachment, error) {
	var attach []receiptpage.Attachment
	for _, kind := range strings.Split(d.pages, ",") {
		var data []byte
		var ctype string
		var err error
		switch kind {
		case "html":
			data, err = p.HTML()
			ctype = "text/html; charset=utf-8"
		case "pdf":
			data, err = p.PDF()
			ctype = "application/pdf"
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(base+"."+kind, data, 0o600); err != nil {
			return nil, err
		}
		attach = append(attach, receiptpage.Attachment{Name: filepath.Base(base) + "." + kind, ContentType: ctype, Data: data})
	}
	return attach, nil
}
