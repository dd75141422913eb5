package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// restoreLog is a log on a Trillian and PostgreSQL of the test's own, with
// two frontends of separate data folders, that the test backs up and
// restores as deploy/README.md says.
type restoreLog struct {
	t        *testing.T
	tr       *privateTrillian
	tree     int64
	dirs     [2]string
	logs     [2]*servertest.Logs
	fronts   [2]*frontend
	org      ed25519.PrivateKey
	letter   *pb.Letter
	token    string
	known    string
	receipts map[string][]byte // by name
	n        int
}

const restoreOrigin = "restore.test/undersigned"

func (r *restoreLog) args() []string {
	return []string{"--trillian", r.tr.settings["TRILLIAN_ADDR"], "--tree-id", strconv.FormatInt(r.tree, 10),
		"--postgres", r.tr.settings["POSTGRES_URI"]}
}

// start starts both frontends.
func (r *restoreLog) start() {
	r.t.Helper()
	for i := range r.fronts {
		r.fronts[i] = servertest.StartProcess(r.t, servertest.ProcessOptions{Dir: r.dirs[i], Origin: restoreOrigin,
			Log: r.logs[i], Args: r.args()})
	}
}

// stop stops both frontends.
func (r *restoreLog) stop() {
	r.t.Helper()
	for _, f := range r.fronts {
		f.Stop(r.t)
	}
}

// endorse endorses n new names through the first frontend, keeping their
// receipts, and waits until the second serves the same checkpoint.
func (r *restoreLog) endorse(n int) []string {
	r.t.Helper()
	ctx := context.Background()
	c := r.fronts[0].Dial(r.t, r.token, r.known)
	defer c.Close()
	var names []string
	for range n {
		r.n++
		name := fmt.Sprintf("Restored Signer %03d", r.n)
		e := client.NewEndorsement(restoreOrigin, r.letter, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: r.org})
		res, err := c.Endorse(ctx, e, "")
		if err != nil {
			r.t.Fatalf("endorse %s: %v", name, err)
		}
		r.receipts[name] = res.Receipt
		names = append(names, name)
	}
	r.settle()
	return names
}

// settle waits until both frontends serve the same checkpoint.
func (r *restoreLog) settle() {
	r.t.Helper()
	get := func(f *frontend) []byte {
		resp, err := http.Get("http://" + f.HTTPAddr + "/log/checkpoint")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		return b
	}
	for deadline := time.Now().Add(time.Minute); ; {
		a, b := get(r.fronts[0]), get(r.fronts[1])
		if a != nil && bytes.Equal(a, b) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the frontends serve different checkpoints a minute on:\n%s\n%s", a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pg runs a PostgreSQL client program on one of the log's databases.
func (r *restoreLog) pg(prog string, args ...string) {
	r.t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s %q: %v\n%s", prog, args, err, out)
	}
}

// databases are the two databases, Trillian's and undersigned's, by name.
func (r *restoreLog) databases() map[string]string {
	return map[string]string{"trillian": r.tr.settings["TRILLIAN_POSTGRES_URI"], "undersigned": r.tr.settings["POSTGRES_URI"]}
}

// backup dumps the databases named (pg_dump, custom format) into dir.
func (r *restoreLog) backup(dir string, names ...string) {
	r.t.Helper()
	for _, n := range names {
		r.pg("pg_dump", "--format=custom", "--file="+filepath.Join(dir, n+".dump"), r.databases()[n])
	}
}

// restore restores the databases named from dir, as deploy/README.md
// says: Trillian's processes stopped, each database replaced whole.
func (r *restoreLog) restore(dir string, names ...string) {
	r.t.Helper()
	signer := r.tr.kill(r.t, "trillian_log_signer")
	server := r.tr.kill(r.t, "trillian_log_server")
	for _, n := range names {
		r.pg("pg_restore", "--clean", "--if-exists", "--single-transaction", "--dbname="+r.databases()[n], filepath.Join(dir, n+".dump"))
	}
	r.tr.restart(r.t, "trillian_log_server", server)
	r.tr.restart(r.t, "trillian_log_signer", signer)
}

// refused checks that both frontends refuse to sign, saying why, and
// serve nothing of the log they can no longer vouch for.
func (r *restoreLog) refused(why string) {
	r.t.Helper()
	ctx := context.Background()
	for i, f := range r.fronts {
		conn, err := grpc.NewClient(f.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			r.t.Fatal(err)
		}
		api := pb.NewLedgerServiceClient(conn)
		e := client.NewEndorsement(restoreOrigin, r.letter, client.Signer{Fields: records.Fields{Name: "Not While Refusing"}, OrganiserKey: r.org})
		wctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.token)
		for deadline := time.Now().Add(servertest.Timeout); ; {
			_, err := api.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
			if status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "request id") {
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("frontend %d: GetLogInfo while it refuses to sign: %v, want Unavailable", i, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := api.Endorse(wctx, &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure}); status.Code(err) != codes.Unavailable {
			r.t.Errorf("frontend %d: an endorsement while it refuses to sign: %v, want Unavailable", i, err)
		}
		for what, call := range map[string]func() error{
			"GetCheckpoint":     func() error { _, err := api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{}); return err },
			"GetInclusionProof": func() error { _, err := api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: 0}); return err },
			"GetConsistencyProof": func() error {
				_, err := api.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 1})
				return err
			},
		} {
			if err := call(); status.Code(err) != codes.Unavailable {
				r.t.Errorf("frontend %d: %s while it refuses to sign: %v, want Unavailable", i, what, err)
			}
		}
		conn.Close()
		for _, path := range []string{"/healthz", "/log/checkpoint", "/log/tile/0/000.p/1", "/log/tile/entries/000.p/1"} {
			resp, err := http.Get("http://" + f.HTTPAddr + path)
			if err != nil {
				r.t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				r.t.Errorf("frontend %d: %s while it refuses to sign: %d %s, want 503", i, path, resp.StatusCode, body)
			}
			if bytes.Contains(body, []byte("127.0.0.1")) || bytes.Contains(body, []byte("postgres")) {
				r.t.Errorf("frontend %d: %s tells an internal detail: %s", i, path, body)
			}
		}
		// Alive, so that nothing restarts it and erases the evidence.
		if code := httpStatus("http://" + f.HTTPAddr + "/livez"); code != http.StatusOK {
			r.t.Errorf("frontend %d: /livez while it refuses to sign: %d, want 200", i, code)
		}
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(r.logs[i].String(), why); {
			if time.Now().After(deadline) {
				r.t.Fatalf("frontend %d does not say %q:\n%s", i, why, r.logs[i])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// recover runs `undersigned-server recover` with the frontends' state
// folders and extra arguments, and returns what it printed.
func (r *restoreLog) recover(extra ...string) string {
	r.t.Helper()
	args := append([]string{"recover", "--data", r.dirs[0], "--state", r.dirs[0], "--state", r.dirs[1], "--window", "2"}, r.args()...)
	cmd := servertest.Command(append(args, extra...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("recover: %v\n%s", err, out)
	}
	return string(out)
}

// trillianSize is the size of Trillian's tree.
func (r *restoreLog) trillianSize() uint64 {
	r.t.Helper()
	env := trilliantest.Connect(r.t, r.tr.settings["TRILLIAN_ADDR"], r.tr.settings["POSTGRES_URI"])
	size, _, err := trillianlog.LatestRoot(context.Background(), env.Log, r.tree)
	if err != nil {
		r.t.Fatal(err)
	}
	return size
}

// verifyAll checks that every receipt handed out verifies online (a
// consistency proof to the latest checkpoint, still counted), through
// both frontends, and that an audit of the log is clean.
func (r *restoreLog) verifyAll() {
	r.t.Helper()
	ctx := context.Background()
	for i, f := range r.fronts {
		c := f.Dial(r.t, "", r.known)
		for name, b := range r.receipts {
			st, err := c.Verify(ctx, b)
			if err != nil {
				r.t.Errorf("frontend %d: the receipt of %s does not verify online: %v", i, name, err)
				continue
			}
			if st.State != client.StateCounted {
				r.t.Errorf("frontend %d: the receipt of %s: %v, want counted", i, name, st.State)
			}
		}
		auditOnce(r.t, ctx, c, r.t.TempDir())
		c.Close()
	}
}

// TestRestoreRefusesAFork is the whole story of a restore on the Trillian
// engine, with two frontends (issue 17, items 1 and 7): the databases
// backed up, more writes, the databases restored. The log's key signed
// a fork after that (a second checkpoint of a size it had signed, with
// another root); now both frontends refuse to sign, saying why, and serve
// nothing of the log, until `undersigned-server recover` brings the log
// back to the checkpoint the key signed: from the receipts of the writes
// both databases lost, from undersigned's own database when only
// Trillian's was restored, and the reverse (Trillian's entries and the
// receipts' names admitted again) when only undersigned's was. Then every receipt handed out verifies online,
// the log goes on from there, and an audit is clean.
func TestRestoreRefusesAFork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Trillian and PostgreSQL of its own, and restores them")
	}
	trilliantest.Need(t)
	tr := startTrillian(t)
	tree, err := strconv.ParseInt(tr.settings["TREE_ID"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r := &restoreLog{t: t, tr: tr, tree: tree, dirs: [2]string{t.TempDir(), t.TempDir()},
		logs: [2]*servertest.Logs{{}, {}}, known: filepath.Join(t.TempDir(), "known_logs"), receipts: map[string][]byte{}}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range r.logs {
				t.Logf("frontend %d:\n%s", i, l)
			}
		}
	})
	_, r.org, _ = ed25519.GenerateKey(rand.Reader)
	// The first frontend makes the data folder; the second gets a copy of
	// its keys and secrets, and a state of its own.
	r.fronts[0] = servertest.StartProcess(t, servertest.ProcessOptions{Dir: r.dirs[0], Origin: restoreOrigin, Log: r.logs[0], Args: r.args()})
	c, token := r.fronts[0].DialOrganiser(t, r.known)
	r.token = token
	r.letter = client.NewLetter(restoreOrigin, client.LetterDraft{ID: "restored", Title: "Restored", Text: "We ask.\n"}, r.org)
	if _, err := c.PublishLetter(context.Background(), r.letter, ""); err != nil {
		t.Fatal(err)
	}
	c.Close()
	servertest.CopyFolder(t, r.dirs[0], r.dirs[1])
	r.fronts[1] = servertest.StartProcess(t, servertest.ProcessOptions{Dir: r.dirs[1], Origin: restoreOrigin, Log: r.logs[1], Args: r.args()})
	r.endorse(10)
	r.stop()

	// 1. Both databases backed up while the frontends are stopped, three
	// more endorsements, both restored.
	backup := t.TempDir()
	r.backup(backup, "trillian", "undersigned")
	r.start()
	lost := r.endorse(3)
	r.stop()
	lostDir := t.TempDir()
	for _, name := range lost {
		if err := os.WriteFile(filepath.Join(lostDir, name+".tlog-proof"), r.receipts[name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := r.trillianSize()
	r.restore(backup, "trillian", "undersigned")
	if got := r.trillianSize(); got != before-3 {
		t.Fatalf("after the restore Trillian has %d entries, want %d", got, before-3)
	}
	r.start()
	r.refused("restored from an older copy")
	if got := r.trillianSize(); got != before-3 {
		t.Fatalf("frontends that refuse to sign queued entries: Trillian has %d, want %d", got, before-3)
	}
	r.stop()
	// Without the receipts, the three entries are nowhere: recover says
	// which, and changes nothing.
	args := append([]string{"recover", "--data", r.dirs[0], "--state", r.dirs[0], "--state", r.dirs[1]}, r.args()...)
	out, err := servertest.Command(args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("%d-%d", before-3, before-1)) || !strings.Contains(string(out), "--receipts") {
		t.Fatalf("recover without the receipts of the lost entries: %v, want a failure naming them\n%s", err, out)
	}
	if got := r.trillianSize(); got != before-3 {
		t.Fatalf("a failed recover queued entries: Trillian has %d, want %d", got, before-3)
	}
	out2 := r.recover("--receipts", lostDir)
	if !strings.Contains(out2, "3 from receipts") {
		t.Errorf("recover does not say what it queued:\n%s", out2)
	}
	r.start()
	r.settle()
	r.verifyAll()
	r.endorse(3)
	r.verifyAll()
	r.stop()

	// 2. Trillian's database alone restored from an older copy: the
	// entries it lost are in undersigned's database, and recover queues
	// them again from there.
	r.backup(backup, "trillian")
	r.start()
	r.endorse(4)
	r.stop()
	r.restore(backup, "trillian")
	r.start()
	r.refused("Trillian lost entries")
	r.stop()
	if out := r.recover(); !strings.Contains(out, "4 queued again from undersigned's database") {
		t.Errorf("recover does not say what it queued:\n%s", out)
	}
	r.start()
	r.settle()
	r.verifyAll()
	r.endorse(2)
	r.verifyAll()
	r.stop()

	// 3. Undersigned's database alone restored from an older copy: the
	// entries it lost are in Trillian, their names in the receipts, and
	// recover admits them again.
	r.backup(backup, "undersigned")
	r.start()
	lost = r.endorse(3)
	r.stop()
	lostDir = t.TempDir()
	for _, name := range lost {
		if err := os.WriteFile(filepath.Join(lostDir, name+".tlog-proof"), r.receipts[name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.restore(backup, "undersigned")
	r.start()
	r.refused("restored from an older copy")
	r.stop()
	if out := r.recover("--receipts", lostDir); !strings.Contains(out, "3 admitted again") {
		t.Errorf("recover does not say what it admitted again:\n%s", out)
	}
	r.start()
	r.settle()
	r.verifyAll()
	r.endorse(2)
	r.verifyAll()
}

// waitLog waits until what a server logged holds want.
func waitLog(t *testing.T, logs *servertest.Logs, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("the server does not say %q:\n%s", want, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpStatus returns the status of a GET of url, or 0 when it cannot be
// reached yet.
func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus waits until a GET of url answers code.
func waitStatus(t *testing.T, url string, code int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); httpStatus(url) != code; {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer %d within a minute (last: %d)", url, code, httpStatus(url))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeySignsOneHistory: a data folder whose key signed a tree refuses
// to sign another tree, or the same tree with a new, empty database: it
// signed a size-1 checkpoint with another root under the same origin
// (issue 17, item 1). A new tree under that key needs --new-tree and a new
// origin, which renames the key and keeps the old history beside.
func TestKeySignsOneHistory(t *testing.T) {
	env := trilliantest.Need(t)
	tree1, db1 := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	tree2, db2 := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	dir := t.TempDir()
	const origin = "one-history.test/undersigned"
	start := func(tree int64, db string, extra ...string) (*frontend, *servertest.Logs) {
		logs := &servertest.Logs{}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("server log:\n%s", logs)
			}
		})
		args := append([]string{"--trillian", env.TrillianAddr, "--tree-id", strconv.FormatInt(tree, 10), "--postgres", db}, extra...)
		o := origin
		for i, a := range extra {
			if a == "--origin" {
				o = extra[i+1]
			}
		}
		return servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir, Origin: o, Args: args, Log: logs}), logs
	}
	f, _ := start(tree1, db1)
	c, _ := f.DialOrganiser(t, filepath.Join(t.TempDir(), "known_logs"))
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(origin, client.LetterDraft{ID: "one", Title: "One history", Text: "We ask.\n"}, org)
	if _, err := c.PublishLetter(context.Background(), l, ""); err != nil {
		t.Fatal(err)
	}
	c.Close()
	f.Stop(t)

	for _, c := range []struct {
		what string
		tree int64
		db   string
		says string
	}{
		{"another tree and another database", tree2, db2, fmt.Sprintf("this key signed Trillian tree %d", tree1)},
		{"the same tree and a new, empty database", tree1, env.NewDatabase(t), "not the one this key signed with"},
	} {
		t.Run(c.what, func(t *testing.T) {
			f, logs := start(c.tree, c.db)
			waitLog(t, logs, c.says)
			waitStatus(t, "http://"+f.HTTPAddr+"/healthz", http.StatusServiceUnavailable)
			if code := httpStatus("http://" + f.HTTPAddr + "/log/checkpoint"); code != http.StatusServiceUnavailable {
				t.Errorf("/log/checkpoint: %d, want 503", code)
			}
			f.Stop(t)
			size, _, err := trillianlog.LatestRoot(context.Background(), env.Log, c.tree)
			if err != nil || size != 0 && c.tree != tree1 {
				t.Errorf("the refused tree has %d entries (%v), want none", size, err)
			}
		})
	}

	// The log it signed goes on.
	f, _ = start(tree1, db1)
	waitStatus(t, "http://"+f.HTTPAddr+"/healthz", http.StatusOK)
	f.Stop(t)

	// A new tree under a new origin, explicitly.
	f, logs := start(tree2, db2, "--new-tree", "--origin", "new.one-history.test/undersigned")
	waitStatus(t, "http://"+f.HTTPAddr+"/healthz", http.StatusOK)
	if !strings.Contains(logs.String(), "publish the new log.pub") {
		t.Errorf("--new-tree does not tell the operator to publish the new key:\n%s", logs)
	}
	cp := f.Checkpoint(t)
	if !strings.HasPrefix(string(cp), "new.one-history.test/undersigned\n") {
		t.Errorf("the new tree's checkpoint:\n%s", cp)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "log.pub"))
	if !strings.HasPrefix(string(pub), "new.one-history.test/undersigned+") {
		t.Errorf("log.pub after --new-tree: %s", pub)
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("trillian.signed.%d", tree1))); err != nil {
		t.Errorf("the old history is not kept: %v", err)
	}
	f.Stop(t)

	// --new-tree without a new origin is refused.
	out, err := servertest.Command("serve", "--data", dir, "--trillian", env.TrillianAddr, "--tree-id", strconv.FormatInt(tree1, 10),
		"--postgres", db1, "--new-tree").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--new-tree needs the new log's --origin") {
		t.Errorf("--new-tree without --origin: %v\n%s", err, out)
	}
}
