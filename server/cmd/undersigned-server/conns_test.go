package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
)

// raiseFileLimit raises the limit of open files of the test's process, and
// so of the server it starts, to at least n: the test holds thousands of
// connections, and so does the server. Raising the hard limit needs root,
// which CI has; elsewhere a test that cannot skips, and under CI=true it
// fails.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("raise the limit of open files from %d (hard %d) to %d: %v", lim.Cur, lim.Max, n, err)
		}
		t.Skipf("the limit of open files is %d (hard %d) and cannot be raised to %d: %v", lim.Cur, lim.Max, n, err)
	}
}

// idleConn is a connection of the flood: what it is, when it was opened,
// and when the server closed it.
type idleConn struct {
	kind           string
	opened, closed time.Time
}

// flood opens n connections to addr from the loopback address from,
// each sending first what first holds (nothing, a request, the HTTP/2
// preface) and nothing more, and records when the server closes each.
func flood(t *testing.T, addr, kind string, from net.IP, n int, first []byte, wg *sync.WaitGroup) []*idleConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}, Timeout: 5 * time.Second}
	out := make([]*idleConn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("open a connection from %s: %v", from, err)
		}
		ic := &idleConn{kind: kind, opened: time.Now()}
		out = append(out, ic)
		if len(first) > 0 {
			c.Write(first)
		}
		wg.Go(func() {
			defer c.Close()
			// Read whatever the server says (an answer, its HTTP/2
			// settings, a GOAWAY) until it closes the connection.
			io.Copy(io.Discard, bufio.NewReader(c))
			ic.closed = time.Now()
		})
	}
	return out
}

// TestIdleConnections opens 5,000 connections to each port and leaves
// them idle: some send nothing, some one HTTP request or the HTTP/2
// preface; half come from one address, beyond its cap, the rest from ten
// others, within theirs. Each must be refused at once or closed within the
// idle timeout, the server's memory must stay within 150 MB of what it
// was at rest, and GetCheckpoint and /healthz, each on a new connection
// from yet another address, must answer within a second all along
// (issue 12).
func TestIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections to a server process")
	}
	const perPort, perAddress = 5000, 256
	idle := 2 * time.Second
	raiseFileLimit(t, 2*perPort+2048)
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	// The server as it ships: the race detector, which the tests may be
	// built with, multiplies a goroutine's memory several times.
	p := servertest.StartProcess(t, servertest.ProcessOptions{Dir: t.TempDir(), Log: logs, Binary: servertest.BuildServer(t), Args: []string{
		"--idle-timeout", idle.String(), "--handshake-timeout", idle.String(),
		"--max-connections-per-address", strconv.Itoa(perAddress)}})
	p.Dial(t, "", "").Close()

	var probes, slow, failed atomic.Int64
	var slowest atomic.Int64
	probe := func(ctx context.Context) {
		start := time.Now()
		err := probeGRPC(ctx, p.Addr)
		if err == nil {
			err = probeHealth(ctx, p.HTTPAddr)
		}
		took := time.Since(start)
		if errors.Is(ctx.Err(), context.Canceled) {
			return // the test is over, not the server (a probe past its deadline counts)
		}
		probes.Add(1)
		if err != nil {
			failed.Add(1)
			t.Errorf("a probe failed after %v: %v", took.Round(time.Millisecond), err)
		} else if took > time.Second {
			slow.Add(1)
		}
		for {
			old := slowest.Load()
			if int64(took) <= old || slowest.CompareAndSwap(old, int64(took)) {
				break
			}
		}
	}
	for range 5 {
		probe(context.Background())
	}
	rest := rssOf(p.Pid())

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var peak atomic.Int64
	var background sync.WaitGroup
	background.Go(func() {
		for ctx.Err() == nil {
			peak.Store(max(peak.Load(), rssOf(p.Pid())))
			time.Sleep(20 * time.Millisecond)
		}
	})
	background.Go(func() {
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			probe(pctx)
			cancel()
			time.Sleep(100 * time.Millisecond)
		}
	})

	// Each kind of idle connection, with what it sends, and the longest it
	// may live: HTTP connections the idle timeout (after one request) or
	// the handshake timeout (before any); gRPC ones the handshake timeout
	// before the HTTP/2 preface, and after it twice the idle timeout (gRPC
	// checks every idle timeout) and the 5 s gRPC gives a client to answer
	// the ping of its GOAWAY, which these never do. A second more for a
	// busy machine.
	kinds := []struct {
		addr, name string
		first      []byte
		longest    time.Duration
	}{
		{p.HTTPAddr, "HTTP, silent", nil, idle + time.Second},
		{p.HTTPAddr, "HTTP, one request", []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), idle + time.Second},
		{p.Addr, "gRPC, silent", nil, idle + time.Second},
		{p.Addr, "gRPC, HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"), 2*idle + 6*time.Second},
	}
	var readers sync.WaitGroup
	var all []*idleConn
	begin := time.Now()
	for k, kind := range kinds {
		// Half from one address, beyond its cap; half from five others.
		all = append(all, flood(t, kind.addr, kind.name, net.IPv4(127, 0, 0, 2), perPort/4, kind.first, &readers)...)
		for i := range 5 {
			all = append(all, flood(t, kind.addr, kind.name, net.IPv4(127, 0, 1, byte(10+5*(k%2)+i)), perPort/20, kind.first, &readers)...)
		}
	}
	opened := time.Since(begin)
	readers.Wait()
	stop()
	background.Wait()

	refused := 0
	for _, kind := range kinds {
		var n, closedIdle int
		var latest time.Duration
		for _, c := range all {
			if c.kind != kind.name {
				continue
			}
			life := c.closed.Sub(c.opened)
			latest = max(latest, life)
			n++
			if life < idle/2 {
				refused++
			} else {
				closedIdle++
			}
		}
		t.Logf("%s: %d connections, %d refused at once, %d closed when idle, the last after %v",
			kind.name, n, n-closedIdle, closedIdle, latest.Round(time.Millisecond))
		if latest > kind.longest {
			t.Errorf("%s: a connection lived %v, beyond its bound %v (idle timeout %v)", kind.name, latest, kind.longest, idle)
		}
	}
	t.Logf("%d connections opened in %v; server memory %d MB at rest, at most %d MB; %d probes, the slowest %v",
		len(all), opened.Round(time.Millisecond), rest>>20, peak.Load()>>20, probes.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
	if grew := peak.Load() - rest; grew > 150<<20 {
		t.Errorf("the server's memory grew by %d MB, from %d MB at rest", grew>>20, rest>>20)
	}
	if slow.Load() > 0 || failed.Load() > 0 {
		t.Errorf("%d of %d probes took more than a second, %d failed", slow.Load(), probes.Load(), failed.Load())
	}
	// The server counts the refusals the connections saw; those from the
	// one address are most of its 2,500 a port (fewer only when its first
	// connections timed out while the others were still being opened).
	metrics := fetchMetrics(t, p.HTTPAddr)
	counted := 0
	for _, port := range []string{"grpc", "http"} {
		m := regexp.MustCompile(fmt.Sprintf(`undersigned_connections_refused_total\{cap="address",port="%s"\} (\d+)`, port)).FindStringSubmatch(metrics)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if n < perPort/4 {
			t.Errorf("the %s port refused %d connections beyond the per-address cap, want most of the %d beyond it", port, n, perPort/2-perAddress)
		}
		counted += n
	}
	if counted != refused {
		t.Errorf("the server counts %d refusals, the connections saw %d", counted, refused)
	}
}

// probeGRPC calls GetCheckpoint on a new connection.
func probeGRPC(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pb.NewLedgerServiceClient(conn).GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	return err
}

// probeHealth gets /healthz on a new connection.
func probeHealth(ctx context.Context, addr string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

func fetchMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
