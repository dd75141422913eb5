package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
)

// sourceFile, in an audit state folder, remembers where the log was read
// from, so that the next audit of that folder reads the same place.
const sourceFile = "source.json"

// auditSource is where an audit read the log: a gRPC server or a
// tlog-tiles URL.
type auditSource struct {
	Server string `json:"server,omitempty"`
	Tiles  string `json:"tiles,omitempty"`
}

func (s auditSource) String() string {
	if s.Tiles != "" {
		return s.Tiles
	}
	return "grpc://" + s.Server
}

// rememberedSource reads the source an earlier audit of dir used.
func rememberedSource(dir string) (auditSource, bool) {
	var s auditSource
	b, err := os.ReadFile(filepath.Join(dir, sourceFile))
	if err != nil || json.Unmarshal(b, &s) != nil || (s.Server == "" && s.Tiles == "") {
		return auditSource{}, false
	}
	return s, true
}

// rememberSource writes the source of an audit into its state folder.
func rememberSource(dir string, s auditSource) error {
	b, _ := json.MarshalIndent(s, "", "  ")
	return writeFileAtomic(filepath.Join(dir, sourceFile), append(b, '\n'), 0o600)
}

// resolveSource fills in the source of an audit that names none: the one
// the state folder remembers (the named one, or the only one under the
// config folder). A --tiles or --server given now wins.
func (e *env) resolveSource(f *auditFlags) {
	if f.tiles != "" || e.g.serverSet {
		return
	}
	dir := f.state
	if dir == "" {
		root, err := e.configDir()
		if err != nil {
			return
		}
		matches, _ := filepath.Glob(filepath.Join(root, "audit", "*", sourceFile))
		if len(matches) != 1 {
			return
		}
		dir = filepath.Dir(matches[0])
	}
	if s, ok := rememberedSource(dir); ok {
		f.tiles, e.g.server = s.Tiles, s.Server
		if s.Server == "" {
			e.g.server = defaultAddr
		}
	}
}

// auditReport is what audit --report writes: what a journalist cites.
type auditReport struct {
	Tool        string `json:"tool"`
	ToolVersion string `json:"tool_version"`
	AuditedAt   string `json:"audited_at"`
	Source      string `json:"source"`
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	// Checkpoint is the signed checkpoint the log was verified against,
	// as served (a signed note).
	Checkpoint string `json:"checkpoint"`
	TreeSize   uint64 `json:"tree_size"`
	RootHash   string `json:"root_hash"`
	// From is the tree size trusted before this audit; EntriesFetched
	// how many entries it read.
	From           uint64                `json:"from"`
	EntriesFetched uint64                `json:"entries_fetched"`
	OK             bool                  `json:"ok"`
	Violations     []audit.Violation     `json:"violations"`
	Warnings       []audit.Warning       `json:"warnings"`
	Letters        []reportLetter        `json:"letters"`
	Changes        []audit.LetterChanges `json:"changes"`
	NotChecked     uint64                `json:"disclosures_not_checked,omitempty"`
	// ForeignNotChecked counts the entries read from a source that serves
	// no foreign marks.
	ForeignNotChecked uint64 `json:"foreign_marks_not_checked,omitempty"`
}

// reportLetter is a letter's counts at the audited checkpoint.
type reportLetter struct {
	Letter         string       `json:"letter"`
	Title          string       `json:"title"`
	Index          uint64       `json:"index"`
	OrganiserKeys  []string     `json:"organiser_keys"` // valid at the audited checkpoint
	Counts         audit.Counts `json:"counts"`
	ClosedIndex    *int64       `json:"closed_index,omitempty"`
	DeliveredIndex *int64       `json:"delivered_index,omitempty"`
}

// toolVersion is the module version and VCS revision of this build.
func toolVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += " (modified)"
		}
	}
	return v
}

// writeAuditReport writes the report of an audit as JSON.
func writeAuditReport(path string, st *audit.State, rep *audit.Report, src auditSource) error {
	r := auditReport{
		Tool: "undersigned audit", ToolVersion: toolVersion(), AuditedAt: time.Now().UTC().Format(time.RFC3339),
		Source: src.String(), Origin: rep.Origin, VerifierKey: st.VerifierKey(),
		Checkpoint: string(st.Checkpoint()), TreeSize: st.Size(),
		From: rep.From, EntriesFetched: rep.Fetched, OK: rep.OK(),
		Violations: append([]audit.Violation{}, rep.Violations...), Warnings: append([]audit.Warning{}, rep.Warnings...),
		Changes: append([]audit.LetterChanges{}, rep.Letters...), NotChecked: rep.NotChecked,
		ForeignNotChecked: rep.ForeignNotChecked,
	}
	// The root hash is the third line of the checkpoint's body.
	if lines := strings.SplitN(r.Checkpoint, "\n", 4); len(lines) >= 3 {
		if h, err := base64.StdEncoding.DecodeString(lines[2]); err == nil {
			r.RootHash = fmt.Sprintf("%x", h)
		}
	}
	r.Letters = []reportLetter{}
	for _, li := range st.Letters() {
		rl := reportLetter{Letter: li.Letter.GetId(), Title: li.Letter.GetTitle(), Index: li.Index, OrganiserKeys: []string{}}
		for _, k := range li.OrganiserKeys {
			rl.OrganiserKeys = append(rl.OrganiserKeys, records.KeyFingerprint(k))
		}
		if li.ClosedIndex >= 0 {
			rl.ClosedIndex = &li.ClosedIndex
		}
		if li.DeliveredIndex >= 0 {
			rl.DeliveredIndex = &li.DeliveredIndex
		}
		if ro, err := st.Roster(li.Letter.GetId(), 0); err == nil {
			rl.Counts = ro.Counts
		}
		r.Letters = append(r.Letters, rl)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return errors.New("audit report: " + err.Error())
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}
