package receiptpage

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/undersigned/undersigned/client/receipt"
)

// MaxLinkLength is the longest link put in a QR code whole: about version
// 33 at error correction M (149 modules), which printed 7 cm wide has
// modules of under half a millimetre, still read by phones from paper. A
// longer receipt (a receipt grows with the log: a proof hash per level of
// the tree) is linked by origin, index and leaf hash.
const MaxLinkLength = 1600

// VerifyLink returns the link to verifyURL (the verify page, such as
// https://ledger.example.org/verify) for a receipt: the receipt itself
// without its withdrawal secret, or, when that is too long or short is
// set, the origin, index and leaf hash. It fails on a receipt that does
// not parse.
func VerifyLink(verifyURL string, rcpt []byte, short bool) (string, error) {
	r, err := receipt.Parse(rcpt)
	if err != nil {
		return "", err
	}
	base := strings.TrimSuffix(verifyURL, "#")
	if !short && r.Extra != nil {
		r.Extra.WithdrawalSecret = nil
		b, err := r.Marshal()
		if err != nil {
			return "", fmt.Errorf("receipt: %w", err)
		}
		link := base + "#r=" + base64.RawURLEncoding.EncodeToString(b)
		if len(link) <= MaxLinkLength {
			return link, nil
		}
	}
	origin, _, _ := strings.Cut(string(r.Checkpoint), "\n")
	leaf := receipt.LeafHash(r.Extra.GetRecord())
	return fmt.Sprintf("%s#o=%s&i=%d&h=%s", base, url.QueryEscape(origin), r.Index, base64.RawURLEncoding.EncodeToString(leaf)), nil
}
