package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client/records"
)

// hostileMirror serves the log at target, except the resources whose path
// starts with prefix, which serve serves.
func hostileMirror(t *testing.T, target, prefix string, serve http.HandlerFunc) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, prefix) {
			serve(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/log/"
}

// endless writes chunk again and again, after head, until the client goes
// away (at most 4 GiB).
func endless(head, chunk string) http.HandlerFunc {
	c := []byte(chunk)
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := w.Write([]byte(head)); err != nil {
			return
		}
		for range (4 << 30) / len(c) {
			if _, err := w.Write(c); err != nil || r.Context().Err() != nil {
				return
			}
		}
	}
}

// trickle writes one byte every 50 ms until the client goes away.
func trickle(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	for r.Context().Err() == nil {
		if _, err := w.Write([]byte{0}); err != nil {
			return
		}
		rc.Flush()
		time.Sleep(50 * time.Millisecond)
	}
}

// silent accepts the request and never answers.
func silent(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// heapWatch samples the heap in use until stopped and returns its peak.
func heapWatch() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(stop); wg.Wait(); return peak.Load() }
}

// TestHostileMirror: a mirror of a real log that serves oversized,
// duplicate, out-of-bundle, slow and never-answering resources (the
// foreign marks among them), or hides the foreign marks. audit
// --tiles and monitor end with the violation that names the URL (and the
// index), or with a timeout error, within the fetch timeout, and the heap
// stays under 256 MB (it holds the test's server too).
func TestHostileMirror(t *testing.T) {
	c, httpURL, dataDir := newAuditCLI(t)
	logPub := filepath.Join(dataDir, "log.pub")
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	if code, out, errs := c.run("letter", "publish", "--id", "hostile", "--title", "Hostile", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	for _, name := range []string{"Ада Лавлейс", "Grace Hopper"} {
		if code, out, errs := c.run("endorse", "--letter", "hostile", "--name", name); code != 0 {
			t.Fatalf("endorse: exit %d\n%s%s", code, out, errs)
		}
	}
	salt := strings.Repeat("A", 43) + "="
	element := func(i int) string {
		return fmt.Sprintf(`{"index":%d,"salt":%q,"name":"x","affiliation":"","country":""}`, i, salt)
	}
	// The endless resources are read up to their caps (16 MiB for an entry
	// bundle): they get a fetch timeout long enough for that on a busy
	// machine under the race detector; the slow and silent ones 1 s.
	const long, short = 30 * time.Second, time.Second
	cases := []struct {
		name, prefix string
		serve        http.HandlerFunc
		code         int
		says         []string
	}{
		{"endless entry bundle", "/log/tile/entries/", endless("", strings.Repeat("\xff", 64<<10)), exitFailed,
			[]string{"VIOLATION", "source", "/log/tile/entries/000", "larger than the 16777472 bytes"}},
		{"endless checkpoint", "/log/checkpoint", endless("", strings.Repeat("x", 64<<10)), exitFailed,
			[]string{"VIOLATION", "source", "/log/checkpoint", "larger than"}},
		{"endless disclosure name", "/log/disclosures/", endless(`[{"index":1,"salt":"`+salt+`","name":"`, strings.Repeat("y", 64<<10)), exitFailed,
			[]string{"VIOLATION", "source", "/log/disclosures/000", "larger than the"}},
		{"endless disclosure array", "/log/disclosures/", endless("[", strings.Repeat(element(1)+",", 100)), exitFailed,
			[]string{"VIOLATION", "source", "/log/disclosures/000", "index 1: served twice"}},
		{"duplicate index", "/log/disclosures/", endless("", "["+element(1)+","+element(2)+","+element(1)+"]"), exitFailed,
			[]string{"VIOLATION", "source", "/log/disclosures/000", "index 1: served twice in disclosure bundle 0"}},
		{"out-of-bundle index", "/log/disclosures/", endless("", "["+element(300)+"]"), exitFailed,
			[]string{"VIOLATION", "source", "/log/disclosures/000", "index 300: outside disclosure bundle 0"}},
		{"endless foreign marks", "/log/foreign/", endless("[1", strings.Repeat(" ", 64<<10)), exitFailed,
			[]string{"VIOLATION", "source", "/log/foreign/000", fmt.Sprintf("larger than the %d bytes", records.MaxForeignMarksBytes)}},
		{"duplicate foreign mark", "/log/foreign/", endless("", "[2,1,2]"), exitFailed,
			[]string{"VIOLATION", "source", "/log/foreign/000", "index 2: marked twice in the foreign marks of bundle 0"}},
		{"out-of-bundle foreign mark", "/log/foreign/", endless("", "[256]"), exitFailed,
			[]string{"VIOLATION", "source", "/log/foreign/000", "index 256: outside entry bundle 0"}},
		{"hidden foreign marks", "/log/foreign/", http.NotFound, exitOK,
			[]string{"foreign marks not checked: 3 entries"}},
		{"slow entry bundle", "/log/tile/entries/", trickle, exitUsage, []string{"timeout", "/log/tile/entries/000"}},
		{"silent disclosures", "/log/disclosures/", silent, exitUsage, []string{"timeout", "/log/disclosures/000"}},
		{"silent checkpoint", "/log/checkpoint", silent, exitUsage, []string{"timeout", "/log/checkpoint"}},
		{"silent foreign marks", "/log/foreign/", silent, exitUsage, []string{"timeout", "/log/foreign/000"}},
	}
	for _, tc := range cases {
		for _, command := range []string{"audit", "monitor"} {
			t.Run(tc.name+" "+command, func(t *testing.T) {
				if tc.name == "endless disclosure array" {
					// Repeating one index: the first repeat ends it.
					tc.serve = endless("[", element(1)+",")
				}
				u := hostileMirror(t, httpURL, tc.prefix, tc.serve)
				state := fmt.Sprintf("state-%s-%s", strings.ReplaceAll(tc.name, " ", "-"), command)
				timeout := long
				if tc.code == exitUsage {
					timeout = short
				}
				args := []string{command, "--tiles", u, "--log-key", logPub, "--state", state, "--fetch-timeout", timeout.String()}
				if command == "monitor" {
					args = append(args, "--rounds", "1")
				}
				runtime.GC()
				peak := heapWatch()
				start := time.Now()
				code, out, errs := c.run(args...)
				took := time.Since(start)
				heap := peak()
				t.Logf("%s: exit %d in %v, peak heap %d MB", tc.name, code, took.Round(time.Millisecond), heap>>20)
				if code != tc.code {
					t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
				}
				for _, s := range tc.says {
					if !strings.Contains(out+errs, s) {
						t.Errorf("the output does not say %q:\n%s%s", s, out, errs)
					}
				}
				// Each fetch is bounded by the timeout; a few fetches may
				// come one after another (the partial resource, then the
				// full one). Generous, as the machine is shared.
				if took > 10*timeout {
					t.Errorf("took %v with a fetch timeout of %v", took, timeout)
				}
				if heap > 256<<20 {
					t.Errorf("peak heap %d MB, above 256 MB", heap>>20)
				}
			})
		}
	}
}
