package webui_test

import (
	"bytes"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/webui"
)

func TestCataloguesHaveTheSameKeys(t *testing.T) {
	en, err := webui.Catalogue("en")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range webui.Languages {
		c, err := webui.Catalogue(lang)
		if err != nil {
			t.Fatal(err)
		}
		for k := range en {
			if c[k] == "" {
				t.Errorf("%s lacks %q", lang, k)
			}
		}
		for k := range c {
			if _, ok := en[k]; !ok {
				t.Errorf("%s has %q, which English lacks", lang, k)
			}
		}
		if lang != "en" && c["verify.title"] == en["verify.title"] {
			t.Errorf("%s: verify.title is not translated", lang)
		}
	}
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct{ asked, accept, want string }{
		{"", "", "en"},
		{"ru", "be", "ru"},
		{"xx", "be-BY,be;q=0.9,en;q=0.5", "be"},
		{"", "ru-RU,ru;q=0.9", "ru"},
		{"", "de-DE,de;q=0.9", "en"},
		{"", "not a header", "en"},
	} {
		if got := webui.Negotiate(c.asked, c.accept); got != c.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", c.asked, c.accept, got, c.want)
		}
	}
}

func TestBundleFiles(t *testing.T) {
	const key = "example.org/log+12345678+AQ=="
	files, err := webui.BundleFiles(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range webui.Languages {
		name := "verify." + lang + ".html"
		if lang == "en" {
			name = "verify.html"
		}
		page := files[name]
		if !strings.Contains(html.UnescapeString(string(page)), `data-log-key="`+key+`"`) || !bytes.Contains(page, []byte(`lang="`+lang+`"`)) {
			t.Errorf("%s lacks the key or its language", name)
		}
		if bytes.Contains(page, []byte(webui.Missing)) {
			t.Errorf("%s shows a missing string", name)
		}
		if !bytes.Contains(page, []byte(`src="verifier.wasm.js"`)) || bytes.Contains(page, []byte("data-tiles=\"/")) {
			t.Errorf("%s does not load the WebAssembly from its script, or checks online", name)
		}
		var strs map[string]string
		start := bytes.Index(page, []byte(`id="strings">`)) + len(`id="strings">`)
		end := bytes.Index(page[start:], []byte("</script>"))
		if err := json.Unmarshal(page[start:start+end], &strs); err != nil || strs["counted"] == "" {
			t.Errorf("%s: the script's strings: %v", name, err)
		}
	}
	if !bytes.HasPrefix(files["verifier.wasm.js"], []byte("globalThis.undersignedWasmGzip = \"H4sI")) {
		t.Error("verifier.wasm.js does not hold the gzipped WebAssembly")
	}
}

// TestWasmLinksNoGRPC: the browser's build must not pull gRPC in through
// the proto package (it would double the WebAssembly's size).
func TestWasmLinksNoGRPC(t *testing.T) {
	goTool := runtime.GOROOT() + "/bin/go"
	cmd := exec.Command(goTool, "list", "-deps", "-tags", "undersigned_nogrpc", "./internal/wasm")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "google.golang.org/grpc") || strings.Contains(p, "net/http") {
			t.Errorf("the WebAssembly links %s", p)
		}
	}
	if !strings.Contains(string(out), "github.com/undersigned/undersigned/client/webcheck") {
		t.Error("the WebAssembly does not link client/webcheck")
	}
}
