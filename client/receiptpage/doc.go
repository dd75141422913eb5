// Package receiptpage makes what a signer can keep of a receipt without a
// terminal: a one-page printable HTML document and a PDF with the letter's
// title, the signer's name (unless it is to be kept apart), the index, the
// log key's fingerprint, plain instructions in the letter's language
// (English, Belarusian or Russian), and a QR code of a link to the verify
// page of the log's web site.
//
// # The verify link
//
// The link is the verify page's URL with a fragment, which browsers never
// send to the server:
//
//   - #r=R, R the receipt in unpadded base64url (RFC 4648 §5), without its
//     withdrawal secret, so that a printed page cannot withdraw the
//     signature: the page verifies it in the browser as it would the file.
//   - #o=O&i=I&h=H when the receipt is too long for a QR code that prints
//     and scans well (see [MaxLinkLength]), or the signer is private: O is
//     the log's origin (URL-encoded), I the index in decimal and H the
//     record's leaf hash in unpadded base64url. The page fetches the entry
//     and an inclusion proof from the log and checks that its leaf hash is
//     H; a private signer's name is in no link.
package receiptpage
