// Package webui holds what the web page of undersigned shows in a browser
// and what both the server and `undersigned deliver` need: the verify page
// (its template, script and the verifier compiled to WebAssembly), the
// shared layout and style sheet, and the catalogues of strings in English,
// Belarusian and Russian (one JSON file per language under i18n/).
//
// The WebAssembly is built from package webcheck by `go generate
// ./client/webui` and committed (gzipped), so that a server needs no build
// step at run time. CI fails when it is stale.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"strings"
	"sync"

	"golang.org/x/text/language"
)

//go:embed i18n/*.json templates/*.html static
var files embed.FS

// Languages are the languages of the pages, the default first.
var Languages = []string{"en", "be", "ru"}

// Static returns the files served under the static prefix: style.css,
// undersigned.js, wasm_exec.js and verifier.wasm.gz (the WebAssembly, gzipped).
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}

// WasmFile is the name of the gzipped WebAssembly in [Static]; serve it as
// "verifier.wasm" with Content-Encoding: gzip.
const WasmFile = "verifier.wasm.gz"

var catalogues = sync.OnceValues(func() (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, lang := range Languages {
		b, err := files.ReadFile("i18n/" + lang + ".json")
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", lang, err)
		}
		out[lang] = m
	}
	return out, nil
})

// Catalogue returns the strings of a language, by key. It fails only if
// the embedded catalogues are broken, which the package's tests rule out.
func Catalogue(lang string) (map[string]string, error) {
	c, err := catalogues()
	if err != nil {
		return nil, err
	}
	m, ok := c[lang]
	if !ok {
		return nil, fmt.Errorf("no catalogue for language %q", lang)
	}
	return m, nil
}

var matcher = language.NewMatcher([]language.Tag{language.English, language.MustParse("be"), language.Russian})

// Negotiate picks the page's language: the one asked for (a ?lang=
// parameter), or else the best match of the browser's Accept-Language, or
// else English.
func Negotiate(asked, acceptLanguage string) string {
	for _, l := range Languages {
		if asked == l {
			return l
		}
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return Languages[0]
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return Languages[0]
	}
	return Languages[i]
}

// Missing is what [Page.T] returns around a key that no catalogue holds;
// tests look for it.
const Missing = "⟦missing:"

// LangLink is one entry of the language switch.
type LangLink struct {
	Code, Name, Href string
	Current          bool
}

// Page is what every page's layout needs.
type Page struct {
	// Lang is the page's language, one of [Languages].
	Lang string
	// Title is the page's title.
	Title string
	// Static is the prefix of the static files: "/static/" on the server,
	// "" in a delivery bundle.
	Static string
	// Home and Verify link to the letters and the verify page; Home may
	// be empty.
	Home, Verify string
	// Langs is the language switch.
	Langs []LangLink
	// Footer is the footer's text.
	Footer string
}

// NewPage returns a page in lang whose language switch links to href(code).
func NewPage(lang, title string, href func(code string) string) Page {
	p := Page{Lang: lang, Title: title}
	for _, code := range Languages {
		name := code
		if c, err := Catalogue(code); err == nil {
			name = c["lang.name"]
		}
		p.Langs = append(p.Langs, LangLink{Code: code, Name: name, Href: href(code), Current: code == lang})
	}
	return p
}

// T returns the string key in the page's language, formatted with args
// (fmt verbs) when there are any.
func (p Page) T(key string, args ...any) string {
	c, err := Catalogue(p.Lang)
	if err != nil {
		return Missing + key + "⟧"
	}
	s, ok := c[key]
	if !ok {
		return Missing + key + "⟧"
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// JSStrings returns the strings the page's script shows: the keys that
// start with "js.", without that prefix.
func (p Page) JSStrings() map[string]string {
	out := map[string]string{}
	c, err := Catalogue(p.Lang)
	if err != nil {
		return out
	}
	for k, v := range c {
		if rest, ok := strings.CutPrefix(k, "js."); ok {
			out[rest] = v
		}
	}
	return out
}

// Templates returns the layout and the verify page, parsed: "top" and
// "bottom" wrap a page of the layout, "verify" is the verify page. Callers
// clone it to add pages of their own.
func Templates() (*template.Template, error) {
	return template.New("").ParseFS(files, "templates/*.html")
}

// Fingerprint returns the SHA-256 of a verifier key, in groups of four hex
// digits, as the verify page shows it.
func Fingerprint(verifierKey string) string {
	h := sha256.Sum256([]byte(verifierKey))
	x := hex.EncodeToString(h[:])
	var groups []string
	for i := 0; i < len(x); i += 4 {
		groups = append(groups, x[i:i+4])
	}
	return strings.Join(groups, " ")
}

// VerifyPage is the data of the verify page.
type VerifyPage struct {
	Page
	// LogKey is the log's verifier key (note format).
	LogKey string
	// Tiles is the URL of the log's tlog-tiles root ("/log/") for the
	// online check, or "" for a page that checks offline only.
	Tiles string
	// Policy is the server's witness policy for verifiers (C2SP
	// tlog-policy, without the witnesses' URLs), or "": receipts and the
	// log's checkpoint must carry cosignatures that meet it.
	Policy string
	// Bundled is true for the copy in a delivery bundle, which loads the
	// WebAssembly from a script (browsers do not fetch from file: pages).
	Bundled bool
}

// Fingerprint returns the fingerprint of the page's log key.
func (v VerifyPage) Fingerprint() string { return Fingerprint(v.LogKey) }

// RenderVerify writes the verify page.
func RenderVerify(w io.Writer, v VerifyPage) error {
	t, err := Templates()
	if err != nil {
		return err
	}
	return t.ExecuteTemplate(w, "verify", v)
}

// BundleFiles returns the files of the offline verify page for a delivery
// bundle, by name: verify.html (English) and verify.LANG.html for the other
// languages, with logKey built in, and the script, style sheet and
// WebAssembly they load.
func BundleFiles(logKey string) (map[string][]byte, error) {
	out := map[string][]byte{}
	pageName := func(code string) string {
		if code == Languages[0] {
			return "verify.html"
		}
		return "verify." + code + ".html"
	}
	for _, lang := range Languages {
		p := NewPage(lang, "", pageName)
		p.Title, p.Verify, p.Footer = p.T("verify.title"), pageName(lang), p.T("footer.bundle")
		var b bytes.Buffer
		if err := RenderVerify(&b, VerifyPage{Page: p, LogKey: logKey, Bundled: true}); err != nil {
			return nil, err
		}
		out[pageName(lang)] = b.Bytes()
	}
	for _, name := range []string{"style.css", "undersigned.js", "wasm_exec.js"} {
		b, err := fs.ReadFile(Static(), name)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
	gz, err := fs.ReadFile(Static(), WasmFile)
	if err != nil {
		return nil, err
	}
	out["verifier.wasm.js"] = []byte("globalThis.undersignedWasmGzip = \"" + base64.StdEncoding.EncodeToString(gz) + "\";\n")
	return out, nil
}
