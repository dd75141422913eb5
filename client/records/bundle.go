package records

import pb "github.com/undersigned/undersigned/proto/undersignedv1"

// BundledDisclosure is one element of a disclosure bundle: the JSON array
// that the HTTP API serves at /log/disclosures/<N> (and <N>.p/<W>) beside
// entry bundle N, holding the public, unredacted disclosures of the
// bundle's endorsements (DESIGN.md §6). The salt is base64 (standard
// encoding, with padding) in JSON.
type BundledDisclosure struct {
	Index       uint64 `json:"index"`
	Salt        []byte `json:"salt"`
	Name        string `json:"name"`
	Affiliation string `json:"affiliation"`
	Country     string `json:"country"`
}

// NewBundledDisclosure returns the element of a disclosure bundle for the
// disclosure of the endorsement at index.
func NewBundledDisclosure(index uint64, d *pb.Disclosure) BundledDisclosure {
	return BundledDisclosure{Index: index, Salt: d.GetSalt(), Name: d.GetName(), Affiliation: d.GetAffiliation(), Country: d.GetCountry()}
}

// Disclosure returns the disclosure an element of a bundle holds.
func (b BundledDisclosure) Disclosure() *pb.Disclosure {
	return &pb.Disclosure{Salt: b.Salt, Name: b.Name, Affiliation: b.Affiliation, Country: b.Country}
}
