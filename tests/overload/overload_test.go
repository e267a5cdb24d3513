// Package overload measures a single MetaStore member under more concurrent writers
// than it can serve: its peak resident memory and how many writes it refused with
// etcd's "too many requests". It asserts nothing about speed or memory; it reports.
//
//	go test ./tests/overload -run '^$' -bench Overload -benchtime 1x \
//	    [-overload.writers 10000] [-overload.duration 20s]
//
// METASTORE_BIN runs a prebuilt server binary (another build, or etcd) instead of
// building ./cmd/metastore.
package overload

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var (
	writers  = flag.Int("overload.writers", 10000, "concurrent writers")
	conns    = flag.Int("overload.conns", 16, "client connections the writers share")
	duration = flag.Duration("overload.duration", 20*time.Second, "how long the writers write")
	valSize  = flag.Int("overload.val-size", 256, "value size in bytes")
)

func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serverBinary is METASTORE_BIN or a fresh build of ./cmd/metastore.
func serverBinary(b *testing.B) string {
	if p := os.Getenv("METASTORE_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(b.TempDir(), "metastore")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/metastore")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("building metastore: %v", err)
	}
	return bin
}

// vmRSS is the resident set size of process pid, in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func BenchmarkOverload(b *testing.B) {
	bin := serverBinary(b)
	for range b.N {
		runOverload(b, bin)
	}
}

func runOverload(b *testing.B, bin string) {
	dir := b.TempDir()
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(b))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(b))
	cmd := exec.Command(bin, "--name", "m0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "m0="+peer, "--log-level", "error")
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid

	clients := make([]*clientv3.Client, *conns)
	for i := range clients {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second,
			Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	ready := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := clients[0].Put(ctx, "ready", "1")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(ready) {
			b.Fatalf("server not ready: %v", err)
		}
	}
	baseRSS, _ := vmRSS(pid)

	var peak atomic.Int64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := vmRSS(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-t.C:
			case <-stopSampling:
				return
			}
		}
	}()

	var ok, tooMany, other atomic.Int64
	var firstOther atomic.Value
	val := strings.Repeat("v", *valSize)
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%len(clients)]
			for i := 0; ctx.Err() == nil; i++ {
				_, err := c.Put(ctx, fmt.Sprintf("k-%05d-%d", w, i), val)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, rpctypes.ErrTooManyRequests):
					tooMany.Add(1)
				case ctx.Err() != nil:
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(stopSampling)
	<-sampled
	secs := duration.Seconds()
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(baseRSS)/(1<<20), "idle-rss-MiB")
	b.ReportMetric(float64(ok.Load())/secs, "writes/s")
	b.ReportMetric(float64(tooMany.Load()), "too-many-requests")
	b.ReportMetric(float64(other.Load()), "other-errors")
	if e := firstOther.Load(); e != nil {
		b.Logf("first other error: %v", e)
	}
}
