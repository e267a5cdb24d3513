package workload_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/bench/report"
	"github.com/metastore/metastore/internal/bench/workload"
	"github.com/metastore/metastore/internal/etcdbin"
)

// endpoint returns a live etcd v3 API endpoint: $BENCH_ENDPOINT if set (for example a
// MetaStore server), else a fresh etcd found by internal/etcdbin ($ETCD_BIN_DIR, $ETCD_BIN,
// or .etcd-bin at the repo root, where `make test` builds it). Without one the test is skipped.
func endpoint(t *testing.T) string {
	t.Helper()
	if ep := os.Getenv("BENCH_ENDPOINT"); ep != "" {
		return ep
	}
	bin := etcdbin.Path("etcd")
	if bin == "" {
		t.Skip("no etcd binary: run scripts/build-etcd.sh .etcd-bin, or set ETCD_BIN or BENCH_ENDPOINT")
	}
	cport, pport := freePort(t), freePort(t)
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--name", "b", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "b="+purl, "--log-level", "error")
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
	})
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{curl}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "ready")
		cancel()
		if err == nil {
			return curl
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // waiting for the server to start, not timing anything
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func byName(t *testing.T, out report.Output) map[string]report.Summary {
	t.Helper()
	m := map[string]report.Summary{}
	for _, s := range out.Results {
		m[s.Name] = s
		if s.Errors != 0 {
			t.Errorf("%s: %d errors: %v", s.Name, s.Errors, s.ErrorMessages)
		}
	}
	return m
}

// TestWorkloadsAgainstEtcd runs every workload briefly and checks the counts each reports.
func TestWorkloadsAgainstEtcd(t *testing.T) {
	ep := endpoint(t)
	ctx := context.Background()
	cfg := workload.Config{Endpoints: []string{ep}, Conns: 2, Clients: 4, Total: 200,
		KeySize: 8, ValSize: 16, KeySpaceSize: 50}
	e, err := workload.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	must := func(out report.Output, err error) map[string]report.Summary {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return byName(t, out)
	}
	want := func(m map[string]report.Summary, series string, n int64) {
		t.Helper()
		if got := m[series].Requests; got != n {
			t.Errorf("%s: %d requests, want %d", series, got, n)
		}
	}

	want(must(workload.Put(ctx, e, workload.PutOptions{})), "put", 200)
	want(must(workload.Range(ctx, e, workload.RangeOptions{Key: "\x00", Prefix: true, Serializable: true})), "range", 200)
	want(must(workload.TxnPut(ctx, e, workload.TxnPutOptions{OpsPerTxn: 3})), "txn-put", 200)
	m := must(workload.TxnMixed(ctx, e, workload.TxnMixedOptions{ReadWriteRatio: 1, Limit: 10}))
	if r, w := m["txn-mixed-read"].Requests, m["txn-mixed-write"].Requests; r+w != 200 || r == 0 || w == 0 {
		t.Errorf("txn-mixed: %d reads + %d writes, want 200 with both kinds", r, w)
	}
	want(must(workload.LeaseKeepalive(ctx, e)), "lease-keepalive", 200)

	wo := workload.WatchOptions{Streams: 3, WatchersPerStr: 4, WatchedKeyTotal: 2, PutTotal: 50}
	m = must(workload.Watch(ctx, e, wo))
	want(m, "watch-create", 12)
	want(m, "watch-put", 50)
	want(m, "watch-event", 50*6) // each key has 6 of the 12 watchers
	m = must(workload.WatchLatency(ctx, e, workload.WatchOptions{Streams: 2, WatchersPerStr: 3, PutTotal: 20, PutRate: 1000}))
	want(m, "watch-latency-put", 20)
	want(m, "watch-latency-watch", 20*6)

	lo := workload.LoadOptions{Prefix: "/bench-test/list/", Keys: 1234, BatchSize: 100}
	want(must(workload.Load(ctx, e, lo)), "load", 13)
	want(must(workload.List(ctx, e, workload.ListOptions{LoadOptions: lo, PageSize: 500})), "list", 200)

	k8s := workload.K8sOptions{Objects: 100, Mix: workload.DefaultK8sMix, PageSize: 30, Watchers: 2}
	out, err := workload.K8s(ctx, e, k8s)
	if err != nil {
		t.Fatal(err)
	}
	m = byName(t, out)
	var total, writes int64
	for _, k := range workload.K8sOps {
		total += m[k].Requests
	}
	writes = m["create"].Requests + m["update"].Requests + m["event"].Requests
	if total != 200 {
		t.Errorf("k8s: %d requests over all kinds, want 200", total)
	}
	// Every update succeeds or loses twice; only successful writes produce events, so the
	// watchers see at most 2 events per write.
	if got := m["watch"].Requests; got == 0 || got > 2*writes {
		t.Errorf("k8s watch saw %d events for %d writes and 2 watchers", got, writes)
	}
}

// TestListCountsEveryPage checks that a paginated list returns every key exactly once.
func TestListCountsEveryPage(t *testing.T) {
	ep := endpoint(t)
	ctx := context.Background()
	cfg := workload.Config{Endpoints: []string{ep}, Conns: 1, Clients: 1, Total: 1, KeySize: 8, KeySpaceSize: 1}
	e, err := workload.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	lo := workload.LoadOptions{Prefix: "/pages/", Keys: 1001, BatchSize: 128}
	if _, err := workload.Load(ctx, e, lo); err != nil {
		t.Fatal(err)
	}
	for _, page := range []int64{0, 1, 100, 1000, 5000} {
		n, err := workload.ListPrefixForTest(ctx, e, "/pages/", page)
		if err != nil || n != 1001 {
			t.Errorf("page size %d: listed %d keys (%v), want 1001", page, n, err)
		}
	}
}
