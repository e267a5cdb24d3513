// Command defragbench measures put latency on one member while it compacts and
// defragments, against an idle baseline: load SIZE of data, delete half of it, then
// run a steady put load and measure its latencies idle, during a physical compaction
// of the deleted half, and during a defrag. Every put has a 5 s timeout and a failed
// put is counted. Run it against a fresh MetaStore or etcd member:
//
//	go run ./tests/defragbench -endpoint 127.0.0.1:2379 -mb 500
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoint")
	mb := flag.Int("mb", 500, "megabytes of values to load")
	valSize := flag.Int("value", 8192, "value size of the loaded keys")
	writers := flag.Int("writers", 4, "concurrent writers of the steady load")
	idle := flag.Duration("idle", 10*time.Second, "length of the idle window")
	flag.Parse()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fail(err)
	}
	defer cli.Close()
	ctx := context.Background()

	n := *mb << 20 / *valSize
	start := time.Now()
	load(ctx, cli, n, *valSize)
	st, _ := cli.Status(ctx, *endpoint)
	fmt.Printf("loaded %d keys of %d B in %v; dbSize %d MB\n", n, *valSize, time.Since(start).Round(time.Millisecond), st.DbSize>>20)
	del, err := cli.Delete(ctx, "load/0", clientv3.WithRange("load/1")) // the first half
	if err != nil {
		fail(err)
	}
	fmt.Printf("deleted %d keys\n", del.Deleted)

	l := startLoad(cli, *writers)
	time.Sleep(*idle)
	report("idle", l.window())

	t0 := time.Now()
	if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		fail(err)
	}
	report(fmt.Sprintf("compaction (%v)", time.Since(t0).Round(time.Millisecond)), l.window())

	time.Sleep(2 * time.Second)
	l.window()
	before, _ := cli.Status(ctx, *endpoint)
	t0 = time.Now()
	if _, err := cli.Defragment(ctx, *endpoint); err != nil {
		fail(err)
	}
	took := time.Since(t0)
	w := l.window()
	after, _ := cli.Status(ctx, *endpoint)
	report(fmt.Sprintf("defrag (%v, dbSize %d -> %d MB)", took.Round(time.Millisecond), before.DbSize>>20, after.DbSize>>20), w)
	l.stop()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// load puts n keys load/<bit><index> (bit 0 for the first half) with 16 writers.
func load(ctx context.Context, cli *clientv3.Client, n, size int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(rand.Uint64(), 1))
			buf := make([]byte, size)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				for j := range buf {
					buf[j] = 'a' + byte(r.IntN(26))
				}
				half := 0
				if i >= n/2 {
					half = 1
				}
				if _, err := cli.Put(ctx, fmt.Sprintf("load/%d%08d", half, i), string(buf)); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
}

type steady struct {
	mu    sync.Mutex
	lat   []time.Duration
	fails int
	done  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(cli *clientv3.Client, writers int) *steady {
	s := &steady{done: make(chan struct{})}
	for w := range writers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-s.done:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t := time.Now()
				_, err := cli.Put(ctx, fmt.Sprintf("steady/%d/%d", w, i%1000), "value-of-about-sixty-four-bytes-for-the-steady-put-load-0123456")
				d := time.Since(t)
				cancel()
				s.mu.Lock()
				if err != nil {
					s.fails++
				} else {
					s.lat = append(s.lat, d)
				}
				s.mu.Unlock()
			}
		}()
	}
	return s
}

type window struct {
	lat   []time.Duration
	fails int
}

// window returns the latencies since the last call and starts a new window.
func (s *steady) window() window {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := window{lat: s.lat, fails: s.fails}
	s.lat, s.fails = nil, 0
	return w
}

func (s *steady) stop() {
	close(s.done)
	s.wg.Wait()
}

func report(what string, w window) {
	slices.Sort(w.lat)
	q := func(p float64) time.Duration {
		if len(w.lat) == 0 {
			return 0
		}
		return w.lat[min(len(w.lat)-1, int(p*float64(len(w.lat))))]
	}
	var maxLat time.Duration
	if len(w.lat) > 0 {
		maxLat = w.lat[len(w.lat)-1]
	}
	fmt.Printf("%-50s puts %6d  failed %3d  p50 %8v  p99 %8v  max %8v\n", what, len(w.lat), w.fails,
		q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), maxLat.Round(10*time.Microsecond))
}
