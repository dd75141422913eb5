package main

import (
	"encoding/csv"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/undersigned/undersigned/server/servertest"
)

// TestImportUnknownOutcomes: while the server cannot write (Trillian cut
// off), an import's rows are not rejections: they go to FILE.unknown.csv,
// the rejects file does not list them, the summary counts them apart and
// says to run the import again, and the import exits 1 with that advice;
// no message names an internal address (issue 17, item 5). Run again once
// the server is well, every row gets its receipt.
func TestImportUnknownOutcomes(t *testing.T) {
	var conn *servertest.CuttableConn
	s := servertest.Start(t, servertest.Options{Engine: servertest.TrillianMemory, Origin: "cli-unknown.test/undersigned",
		TrillianConn: func(c grpc.ClientConnInterface) grpc.ClientConnInterface {
			conn = servertest.NewCuttable(c)
			return conn
		}})
	c := &cli{t: t, server: s.Addr, token: s.Srv.TokenPath, config: t.TempDir(), dir: t.TempDir()}
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	if code, out, errs := c.run("letter", "publish", "--id", "unknown", "--title", "Unknown", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	csvPath := filepath.Join(c.dir, "s.csv")
	if err := os.WriteFile(csvPath, []byte("name,affiliation\nAda Unknown,Lab\nBo Unknown,Mill\n\u3164,Nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conn.Cut(true)
	waitHealthz(t, s.HTTP, http.StatusServiceUnavailable)
	code, out, errs := c.run("import", "--letter", "unknown", "--csv", "s.csv", "--receipts", "r")
	if code != exitFailed || !strings.Contains(errs, "run the import again") {
		t.Fatalf("import while the server cannot write: exit %d, want %d advising to run it again\n%s%s", code, exitFailed, out, errs)
	}
	if !strings.Contains(out, "1 rejected, 2 not known") || !strings.Contains(out, "s.csv.unknown.csv") {
		t.Errorf("the summary does not count the unknown rows apart:\n%s", out)
	}
	unknown := readCSV(t, csvPath+".unknown.csv")
	rejects := readCSV(t, csvPath+".rejects.csv")
	if len(unknown) != 3 || unknown[1][1] != "Ada Unknown" || unknown[2][1] != "Bo Unknown" {
		t.Errorf("unknown.csv holds %q, want the two rows", unknown)
	}
	if len(rejects) != 2 || rejects[1][0] != "4" {
		t.Errorf("rejects.csv holds %q, want only row 4 (a blank-looking name)", rejects)
	}
	for _, all := range []string{out, errs, strings.Join(unknown[1], ","), strings.Join(unknown[2], ",")} {
		for _, internal := range []string{"10.20.30.40", "8090", "dial tcp", "connection refused"} {
			if strings.Contains(all, internal) {
				t.Errorf("the import tells %q: %s", internal, all)
			}
		}
	}

	conn.Cut(false)
	waitHealthz(t, s.HTTP, http.StatusOK)
	code, out, errs = c.run("import", "--letter", "unknown", "--csv", "s.csv", "--receipts", "r")
	if code != exitFailed || !strings.Contains(out, "2 accepted now") || !strings.Contains(out, "0 not known") {
		t.Fatalf("the rerun: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(csvPath + ".unknown.csv"); !os.IsNotExist(err) {
		t.Errorf("the rerun left %s.unknown.csv: %v", csvPath, err)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitHealthz waits until the server's /healthz answers code.
func waitHealthz(t *testing.T, base string, code int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer %d within a minute", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
