package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt/receipttest"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// outcome is what the server answered to one endorsement of a stream.
type outcome struct {
	res *client.Result
	rej *pb.Rejection
}

// streamEndorse sends es through one EndorseStream, receiving as it sends,
// and returns the outcomes in order.
func streamEndorse(t *testing.T, c *client.Client, es []*client.Endorsement) []outcome {
	t.Helper()
	ctx := testContext(t)
	stream, err := c.EndorseStream(ctx)
	if err != nil {
		t.Fatalf("EndorseStream: %v", err)
	}
	sent := make(chan error, 1)
	go func() {
		for _, e := range es {
			if err := stream.Send(e, ""); err != nil {
				sent <- fmt.Errorf("send: %w", err)
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	out := make([]outcome, 0, len(es))
	for i := range es {
		res, rej, err := stream.Recv()
		if err != nil {
			t.Fatalf("receive the outcome of endorsement %d (%q): %v", i, es[i].Disclosure.GetName(), err)
		}
		out = append(out, outcome{res, rej})
	}
	if _, _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last outcome, Recv = %v, want io.EOF", err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	return out
}

// sampleEndorsement builds the endorsement of a sample row the way the
// import command does, without checking the fields first.
func sampleEndorsement(origin string, l *pb.Letter, org []byte, r sampleRow) *client.Endorsement {
	vis := pb.Visibility_VISIBILITY_PUBLIC
	if r.Private {
		vis = pb.Visibility_VISIBILITY_PRIVATE
	}
	return client.NewEndorsement(origin, l, client.Signer{
		Fields:       records.CanonicalFields(records.Fields{Name: r.Name, Affiliation: r.Affiliation}),
		Visibility:   vis,
		OrganiserKey: org,
	})
}

// ruleOfInvalidRow returns a fragment of the rule the server must give for
// an invalid sample row, from what its note says is wrong.
func ruleOfInvalidRow(t *testing.T, r sampleRow) string {
	t.Helper()
	switch {
	case strings.Contains(r.Note, "category Cc"):
		return "(Cc)"
	case strings.Contains(r.Note, "category Cf"):
		return "(Cf)"
	case strings.Contains(r.Note, "over 200 code points"):
		return "at most 200 code points"
	case strings.Contains(r.Note, "empty"):
		return "must not be empty"
	}
	t.Fatalf("line %d: no expected rule for the note %q: extend ruleOfInvalidRow", r.Line, r.Note)
	return ""
}

// TestSampleImport imports every row of the sample through EndorseStream
// and checks what comes back, what the server serves afterwards, and that
// no private name is ever served.
func TestSampleImport(t *testing.T) {
	ts := startServer(t, t.TempDir())
	served := &recorder{}
	c := ts.dial(t, ts.Token, served.dialOptions()...)
	letter := ts.publish(t, c, "riverside-library", pb.Policy_POLICY_CURATED)
	rows := readSample(t)
	es := make([]*client.Endorsement, len(rows))
	for i, r := range rows {
		es[i] = sampleEndorsement(c.Origin(), letter, ts.Org, r)
	}
	outcomes := streamEndorse(t, c, es)

	// What the sample says should happen.
	var valid, invalid []int
	firstOfKey := map[string]int{} // key -> first row with it
	publicKeys := map[string]bool{}
	privateKeys := map[string]bool{}
	for i, r := range rows {
		if r.invalid() {
			invalid = append(invalid, i)
			continue
		}
		valid = append(valid, i)
		if _, ok := firstOfKey[r.key()]; !ok {
			firstOfKey[r.key()] = i
		}
		if r.Private {
			privateKeys[r.key()] = true
		} else {
			publicKeys[r.key()] = true
		}
	}
	if len(invalid) == 0 || len(privateKeys) == 0 || len(valid) == len(firstOfKey) {
		t.Fatalf("the sample should hold invalid rows, private rows and duplicates: %d invalid, %d private, %d valid, %d distinct",
			len(invalid), len(privateKeys), len(valid), len(firstOfKey))
	}

	t.Run("every valid row is accepted", func(t *testing.T) {
		for _, i := range valid {
			if o := outcomes[i]; o.res == nil {
				t.Errorf("line %d (%q, %s): rejected: %v", rows[i].Line, rows[i].Name, rows[i].Note, o.rej)
			}
		}
	})

	t.Run("every invalid row is rejected with its field and rule", func(t *testing.T) {
		for _, i := range invalid {
			r, o := rows[i], outcomes[i]
			if o.rej == nil {
				t.Errorf("line %d (%s): accepted at index %d", r.Line, r.Note, o.res.Verified.Index)
				continue
			}
			rule := ruleOfInvalidRow(t, r)
			if codes.Code(o.rej.GetCode()) != codes.InvalidArgument {
				t.Errorf("line %d (%s): code %v, want InvalidArgument", r.Line, r.Note, codes.Code(o.rej.GetCode()))
			}
			if o.rej.GetField() != "disclosure.name" {
				t.Errorf("line %d (%s): field %q, want disclosure.name", r.Line, r.Note, o.rej.GetField())
			}
			if !strings.Contains(o.rej.GetRule(), rule) {
				t.Errorf("line %d (%s): rule %q does not say %q", r.Line, r.Note, o.rej.GetRule(), rule)
			}
			if !strings.Contains(o.rej.GetMessage(), "disclosure.name") {
				t.Errorf("line %d (%s): message %q does not name the field", r.Line, r.Note, o.rej.GetMessage())
			}
		}
	})

	t.Run("exact duplicates get the first record", func(t *testing.T) {
		groups := map[string][]int{}
		for _, i := range valid {
			groups[rows[i].key()] = append(groups[rows[i].key()], i)
		}
		multi := 0
		for _, i := range valid {
			if strings.HasPrefix(rows[i].Note, "exact duplicate") && len(groups[rows[i].key()]) < 2 {
				t.Errorf("line %d is noted as a duplicate but no other row has its fields", rows[i].Line)
			}
		}
		for key, g := range groups {
			if outcomes[g[0]].res == nil {
				continue // reported above
			}
			if len(g) > 1 {
				multi++
			}
			// The stream admits concurrently, so any one row of a group may
			// be the one written; the others must be its duplicates.
			firsts := 0
			want := outcomes[g[0]].res.Verified
			for _, i := range g {
				res := outcomes[i].res
				if res == nil {
					continue
				}
				if !res.Duplicate {
					firsts++
				}
				if res.Verified.Index != want.Index {
					t.Errorf("line %d: index %d, line %d of the same person: %d", rows[i].Line, res.Verified.Index, rows[g[0]].Line, want.Index)
				}
				_, v, err := client.VerifyOffline(res.Receipt, c.Verifier())
				if err != nil {
					t.Fatalf("line %d: %v", rows[i].Line, err)
				}
				_, w, _ := client.VerifyOffline(outcomes[g[0]].res.Receipt, c.Verifier())
				if !bytes.Equal(v.LeafHash, w.LeafHash) {
					t.Errorf("line %d: the receipt's record differs from line %d's", rows[i].Line, rows[g[0]].Line)
				}
				if v.Disclosure == nil || disclosureKey(v.Disclosure) != key {
					t.Errorf("line %d: the receipt's disclosure is %v", rows[i].Line, v.Disclosure)
				}
			}
			if firsts != 1 {
				t.Errorf("%d rows with the fields of line %d: %d marked not duplicate, want exactly 1", len(g), rows[g[0]].Line, firsts)
			}
		}
		if multi < 3 {
			t.Errorf("only %d groups of duplicates; the sample has at least 3", multi)
		}
	})

	t.Run("roster names every public signer once and counts the private", func(t *testing.T) {
		entries, counts := rosterAll(t, c, letter.GetId(), 37)
		seen := map[string]int{}
		private := 0
		var last int64 = -1
		for _, e := range entries {
			if int64(e.GetIndex()) <= last {
				t.Errorf("roster index %d after %d", e.GetIndex(), last)
			}
			last = int64(e.GetIndex())
			switch e.GetVisibility() {
			case pb.Visibility_VISIBILITY_PUBLIC:
				if e.GetDisclosure() == nil {
					t.Errorf("public roster entry %d has no disclosure", e.GetIndex())
					continue
				}
				k := disclosureKey(e.GetDisclosure())
				seen[k]++
				if want := outcomes[firstOfKey[k]].res; want != nil && want.Verified.Index != e.GetIndex() {
					t.Errorf("roster has %q at %d, the import wrote it at %d", e.GetDisclosure().GetName(), e.GetIndex(), want.Verified.Index)
				}
			case pb.Visibility_VISIBILITY_PRIVATE:
				private++
				if e.GetDisclosure() != nil {
					t.Errorf("private roster entry %d names %q", e.GetIndex(), e.GetDisclosure().GetName())
				}
			default:
				t.Errorf("roster entry %d has visibility %v", e.GetIndex(), e.GetVisibility())
			}
		}
		for k := range publicKeys {
			if seen[k] != 1 {
				t.Errorf("the roster lists %q %d times, want once", strings.ReplaceAll(k, "\x00", " | "), seen[k])
			}
		}
		for k, n := range seen {
			if !publicKeys[k] {
				t.Errorf("the roster lists %q (%d times), which no public row gives", strings.ReplaceAll(k, "\x00", " | "), n)
			}
		}
		if got, want := counts.GetPublic(), uint64(len(publicKeys)); got != want {
			t.Errorf("Counts.Public = %d, want %d", got, want)
		}
		if got, want := counts.GetPrivate(), uint64(len(privateKeys)); got != want {
			t.Errorf("Counts.Private = %d, want %d", got, want)
		}
		if uint64(private) != counts.GetPrivate() {
			t.Errorf("the roster has %d private entries, Counts.Private = %d", private, counts.GetPrivate())
		}
		if counts.GetWithdrawn()+counts.GetRedacted()+counts.GetSuperseded() != 0 {
			t.Errorf("counts %v: nothing was withdrawn, redacted or superseded", counts)
		}
	})

	t.Run("names are kept exactly as given after NFC and trimming", func(t *testing.T) {
		checked := 0
		for _, i := range valid {
			r, res := rows[i], outcomes[i].res
			if r.Private || res == nil || nfcTrim(r.Name) == r.Name {
				continue
			}
			resp, err := c.API().GetEntries(testContext(t), &pb.GetEntriesRequest{Start: res.Verified.Index, End: res.Verified.Index + 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := resp.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if name := got.GetEntries()[0].GetDisclosure().GetName(); name != nfcTrim(r.Name) {
				t.Errorf("line %d: served name %q, want %q", r.Line, name, nfcTrim(r.Name))
			}
			checked++
		}
		if checked < 2 {
			t.Errorf("only %d public rows needed NFC or trimming; the sample has a decomposed and a padded name", checked)
		}
	})

	t.Run("find is insensitive to case and diacritics", func(t *testing.T) {
		for _, tc := range []struct{ query, contains string }{
			{"muller", "Müller"},
			{"MÜLLER", "Müller"},
			{"łapinska", "Łapińska"},
			{"ŁAPIŃSKA", "Łapińska"},
			{"уладыка", "Ўладыка"},
			{"ШЧАРБАКОВА", "Шчарбакова"},
			{"ＭＵＬＬＥＲ", "Müller"}, // full-width: the one fold of client/names
			{"muller  soren", "Müller Sören"},
		} {
			resp, err := c.API().FindEndorsements(testContext(t), &pb.FindEndorsementsRequest{LetterId: letter.GetId(), Query: tc.query})
			if err != nil {
				t.Fatalf("find %q: %v", tc.query, err)
			}
			want := 0
			for k := range publicKeys {
				if strings.Contains(k[:strings.IndexByte(k, 0)], tc.contains) {
					want++
				}
			}
			if len(resp.GetEntries()) != want || want == 0 {
				t.Errorf("find %q: %d entries, want %d", tc.query, len(resp.GetEntries()), want)
			}
			for _, e := range resp.GetEntries() {
				if !strings.Contains(e.GetDisclosure().GetName(), tc.contains) {
					t.Errorf("find %q returned %q", tc.query, e.GetDisclosure().GetName())
				}
			}
		}
	})

	t.Run("every receipt verifies", func(t *testing.T) {
		ctx := testContext(t)
		checked := 0
		for _, i := range valid {
			res := outcomes[i].res
			if res == nil {
				continue
			}
			r, v, err := client.VerifyOffline(res.Receipt, c.Verifier())
			if err != nil {
				t.Errorf("line %d: offline: %v", rows[i].Line, err)
				continue
			}
			// A duplicate's receipt is the first row's record: the client
			// holds its disclosure only when public (served), and never its
			// secret, which the first row's receipt keeps (secrets are random).
			if !res.Duplicate && (v.Disclosure == nil || !v.HasSecret) {
				t.Errorf("line %d: the completed receipt lacks the disclosure (%v) or the secret (%v)", rows[i].Line, v.Disclosure, v.HasSecret)
			}
			if res.Duplicate && v.HasSecret {
				t.Errorf("line %d: a duplicate's receipt carries a secret that cannot open its lock", rows[i].Line)
			}
			st, err := c.Verify(ctx, res.Receipt)
			if err != nil {
				t.Errorf("line %d: online: %v", rows[i].Line, err)
				continue
			}
			if st.State != client.StateCounted {
				t.Errorf("line %d: online state %v, want counted", rows[i].Line, st.State)
			}
			if st.Latest.Size < v.Checkpoint.Size {
				t.Errorf("line %d: latest size %d is below the receipt's %d", rows[i].Line, st.Latest.Size, v.Checkpoint.Size)
			}
			index, record, err := receipttest.VerifyIndependently(res.Receipt, c.VerifierKey())
			if err != nil {
				t.Errorf("line %d: independent check: %v", rows[i].Line, err)
				continue
			}
			if index != v.Index || !bytes.Equal(record, r.Extra.GetRecord()) {
				t.Errorf("line %d: the independent check read index %d, want %d, or another record", rows[i].Line, index, v.Index)
			}
			checked++
		}
		if checked != len(valid) {
			t.Errorf("verified %d receipts of %d valid rows", checked, len(valid))
		}
	})

	t.Run("nothing served names a private signer", func(t *testing.T) {
		ctx := testContext(t)
		// Pad the log past one full tile with a second letter, so that
		// full and partial tiles and bundles are all served.
		padding := ts.publish(t, c, "padding", pb.Policy_POLICY_CURATED)
		if size := logSize(t, c); size < layout.TileWidth+20 {
			var pad []*client.Endorsement
			for i := range layout.TileWidth + 20 - size {
				pad = append(pad, ts.endorsement(c.Origin(), padding, fmt.Sprintf("Padding Signer %03d", i), "Padding"))
			}
			for _, o := range streamEndorse(t, c, pad) {
				if o.rej != nil {
					t.Fatalf("padding rejected: %v", o.rej)
				}
			}
		}
		size := logSize(t, c)

		// Everything the gRPC API serves, through the recording connection.
		entries := entriesAll(t, c)
		if uint64(len(entries)) != size {
			t.Fatalf("GetEntries returned %d entries, the log has %d", len(entries), size)
		}
		var disclosures []*pb.Disclosure
		for _, e := range entries {
			if e.GetDisclosure() != nil {
				disclosures = append(disclosures, e.GetDisclosure())
			}
		}
		for _, id := range []string{letter.GetId(), padding.GetId()} {
			roster, _ := rosterAll(t, c, id, 0)
			for _, e := range roster {
				if e.GetDisclosure() != nil {
					disclosures = append(disclosures, e.GetDisclosure())
				}
			}
			if _, err := c.API().GetLetter(ctx, &pb.GetLetterRequest{LetterId: id}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.API().ListLetters(ctx, &pb.ListLettersRequest{}); err != nil {
			t.Fatal(err)
		}
		for i := range size {
			_, err := c.API().GetEndorsement(ctx, &pb.GetEndorsementRequest{Index: i})
			if err != nil && status.Code(err) != codes.NotFound {
				t.Fatalf("GetEndorsement(%d): %v", i, err)
			}
			if _, err := c.API().GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: i}); err != nil {
				t.Fatalf("GetInclusionProof(%d): %v", i, err)
			}
		}
		var privateRows []sampleRow
		for _, i := range valid {
			if rows[i].Private {
				privateRows = append(privateRows, rows[i])
			}
		}
		for _, r := range privateRows {
			name := nfcTrim(r.Name)
			for _, q := range append([]string{name}, strings.Fields(name)...) {
				resp, err := c.API().FindEndorsements(ctx, &pb.FindEndorsementsRequest{LetterId: letter.GetId(), Query: q})
				if err != nil {
					t.Fatalf("find %q: %v", q, err)
				}
				for _, e := range resp.GetEntries() {
					disclosures = append(disclosures, e.GetDisclosure())
				}
			}
		}
		grpcBytes := served.bytes()

		// Everything the HTTP API serves.
		var httpBytes, bundleBytes []byte
		var bundled []records.BundledDisclosure
		fetch := func(path string) []byte {
			code, h, body := httpGet(t, ts.HTTP, path)
			if code != http.StatusOK {
				t.Errorf("GET %s: %d %s", path, code, body)
			}
			for k, vs := range h {
				httpBytes = append(httpBytes, k...)
				for _, v := range vs {
					httpBytes = append(httpBytes, v...)
				}
			}
			httpBytes = append(httpBytes, body...)
			return body
		}
		fetch("/log/checkpoint")
		tiles, bundles, disclosureBundles := logResources(size)
		if !slices.ContainsFunc(tiles, func(p string) bool { return !strings.Contains(p, ".p/") }) ||
			!slices.ContainsFunc(tiles, func(p string) bool { return strings.Contains(p, ".p/") }) ||
			!slices.ContainsFunc(tiles, func(p string) bool { return strings.HasPrefix(p, "/log/tile/1/") }) {
			t.Fatalf("at size %d the tiles %v should include full, partial and level 1 tiles", size, tiles)
		}
		for _, p := range append(tiles, bundles...) {
			fetch(p)
		}
		for _, p := range disclosureBundles {
			body := fetch(p)
			bundleBytes = append(bundleBytes, body...)
			var ds []records.BundledDisclosure
			if err := json.Unmarshal(body, &ds); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			bundled = append(bundled, ds...)
		}
		for _, d := range bundled {
			disclosures = append(disclosures, &pb.Disclosure{Name: d.Name, Affiliation: d.Affiliation, Country: d.Country})
		}
		all := slices.Concat(grpcBytes, httpBytes)

		// A private name that is also public text (the same name signed
		// publicly with another affiliation) cannot be searched for; the
		// disclosures are checked for it instead.
		var public strings.Builder
		for k := range publicKeys {
			public.WriteString(k)
		}
		public.WriteString(letter.GetText() + letter.GetTitle() + padding.GetTitle())
		searched := 0
		for _, r := range privateRows {
			name := nfcTrim(r.Name)
			if !strings.Contains(public.String(), name) {
				searched++
				if i := bytes.Index(all, []byte(name)); i >= 0 {
					t.Errorf("line %d: the private name %q is served (gRPC %v, HTTP %v)", r.Line, name,
						bytes.Contains(grpcBytes, []byte(name)), bytes.Contains(httpBytes, []byte(name)))
				}
			}
			for _, d := range disclosures {
				if disclosureKey(d) == r.key() {
					t.Errorf("line %d: a disclosure of the private endorsement of %q is served", r.Line, name)
				}
			}
		}
		if searched < len(privateRows)/2 {
			t.Errorf("only %d of %d private names could be searched for", searched, len(privateRows))
		}

		// Public names are served, in GetEntries and in the bundles.
		inEntries, inBundles := map[string]bool{}, map[string]bool{}
		for _, e := range entries {
			if d := e.GetDisclosure(); d != nil {
				inEntries[disclosureKey(d)] = true
			}
		}
		for _, d := range bundled {
			inBundles[d.Name+"\x00"+d.Affiliation+"\x00"+d.Country] = true
		}
		for k := range publicKeys {
			name := k[:strings.IndexByte(k, 0)]
			if !inEntries[k] || !bytes.Contains(grpcBytes, []byte(name)) {
				t.Errorf("GetEntries does not serve the public disclosure %q", name)
			}
			if !inBundles[k] {
				t.Errorf("the disclosure bundles do not serve the public disclosure %q", name)
			}
		}
		if len(bundleBytes) == 0 {
			t.Error("no disclosure bundle was served")
		}
	})

	t.Run("the data folder holds no private name", func(t *testing.T) {
		var needles [][]byte
		for _, i := range valid {
			r := rows[i]
			if !r.Private {
				continue
			}
			name := nfcTrim(r.Name)
			shared := false
			for k := range publicKeys {
				shared = shared || strings.Contains(k, name)
			}
			if !shared {
				needles = append(needles, []byte(name))
			}
		}
		if len(needles) == 0 {
			t.Fatal("no private name to look for")
		}
		if found := filesContaining(t, ts.Dir, needles...); len(found) > 0 {
			t.Errorf("private names are stored:\n%s", strings.Join(found, "\n"))
		}
		// A public name is there: the search itself works.
		if found := filesContaining(t, ts.Dir, []byte("Kowalczyk Pavel")); len(found) == 0 {
			t.Error("the public name Kowalczyk Pavel is not in the data folder either: the search is broken")
		}
	})
}

// logResources lists the tlog-tiles paths of a tree of size: every hash
// tile at every level, every entry bundle and every disclosure bundle,
// partial ones included.
func logResources(size uint64) (tiles, bundles, disclosures []string) {
	for level := uint64(0); size>>(layout.TileHeight*level) > 0; level++ {
		nodes := size >> (layout.TileHeight * level)
		for n := uint64(0); n*layout.TileWidth < nodes; n++ {
			p := layout.PartialTileSize(level, n, size)
			tiles = append(tiles, "/log/"+layout.TilePath(level, n, p))
			if level == 0 {
				bundles = append(bundles, "/log/"+layout.EntriesPath(n, p))
				disclosures = append(disclosures, "/log/disclosures/"+layout.NWithSuffix(0, n, p))
			}
		}
	}
	return tiles, bundles, disclosures
}
