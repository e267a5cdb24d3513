package workload

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/bench/report"
)

// offline returns an Env whose requesters get a nil client, for ops that never touch it.
func offline(cfg Config) *Env {
	return &Env{Cfg: cfg, conns: []*clientv3.Client{nil}}
}

func baseConfig() Config {
	return Config{Endpoints: []string{"x"}, Conns: 1, Clients: 7, Total: 1000, KeySize: 8, KeySpaceSize: 1}
}

func TestRunIssuesEachSequenceNumberOnce(t *testing.T) {
	e := offline(baseConfig())
	recs := newRecorders("a", "b")
	var mu sync.Mutex
	seen := map[int]int{}
	requesters := map[int]bool{}
	e.run(context.Background(), recs, func(seq int) Op {
		return Op{Series: seq % 2, Do: func(context.Context, *clientv3.Client, int) error { return nil }}
	})
	e.run(context.Background(), newRecorders("c"), func(seq int) Op {
		return Op{Do: func(_ context.Context, _ *clientv3.Client, w int) error {
			mu.Lock()
			seen[seq]++
			requesters[w] = true
			mu.Unlock()
			return nil
		}}
	})
	if a, b := recs[0].Summary().Requests, recs[1].Summary().Requests; a != 500 || b != 500 {
		t.Errorf("series got %d and %d requests, want 500 each", a, b)
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct sequence numbers, want 1000", len(seen))
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("seq %d issued %d times", seq, n)
		}
	}
	for w := range requesters {
		if w < 0 || w >= 7 {
			t.Errorf("requester index %d outside [0,7)", w)
		}
	}
}

func TestRunCountsErrors(t *testing.T) {
	cfg := baseConfig()
	cfg.Total = 100
	e := offline(cfg)
	recs := newRecorders("x")
	boom := errors.New("boom")
	e.run(context.Background(), recs, func(seq int) Op {
		return Op{Do: func(context.Context, *clientv3.Client, int) error {
			if seq%4 == 0 {
				return boom
			}
			return nil
		}}
	})
	s := recs[0].Summary()
	if s.Requests != 100 || s.Errors != 25 || s.Successes != 75 {
		t.Errorf("counts = %d/%d/%d, want 100/25/75", s.Requests, s.Errors, s.Successes)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	cfg := baseConfig()
	cfg.Total, cfg.Duration = 0, 50*time.Millisecond
	e := offline(cfg)
	recs := newRecorders("x")
	done := make(chan struct{})
	go func() {
		e.run(context.Background(), recs, func(int) Op {
			return Op{Do: func(context.Context, *clientv3.Client, int) error { return nil }}
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run with --duration and no --total did not stop")
	}
	if recs[0].Summary().Requests == 0 {
		t.Error("no requests issued")
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	cfg := baseConfig()
	cfg.Total = 0
	cfg.Duration = time.Hour
	e := offline(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	e.run(ctx, []*report.Recorder{report.NewRecorder("x")}, func(seq int) Op {
		if seq == 100 {
			once.Do(cancel)
		}
		return Op{Do: func(context.Context, *clientv3.Client, int) error { return nil }}
	})
}

func TestProgressSeesEveryRequest(t *testing.T) {
	cfg := baseConfig()
	cfg.Total = 300
	var p countingProgress
	cfg.NewProgress = func(n int) Progress {
		if n != 300 {
			t.Errorf("progress told %d steps, want 300", n)
		}
		return &p
	}
	offline(cfg).run(context.Background(), newRecorders("x"), func(int) Op {
		return Op{Do: func(context.Context, *clientv3.Client, int) error { return nil }}
	})
	if p.n != 300 || !p.finished {
		t.Errorf("progress saw %d steps (finished %v), want 300", p.n, p.finished)
	}
}

type countingProgress struct {
	mu       sync.Mutex
	n        int
	finished bool
}

func (p *countingProgress) Increment() { p.mu.Lock(); p.n++; p.mu.Unlock() }
func (p *countingProgress) Finish()    { p.finished = true }

func TestConfigValidate(t *testing.T) {
	ok := baseConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no endpoints":   func(c *Config) { c.Endpoints = nil },
		"zero clients":   func(c *Config) { c.Clients = 0 },
		"zero conns":     func(c *Config) { c.Conns = 0 },
		"no total":       func(c *Config) { c.Total = 0 },
		"zero keyspace":  func(c *Config) { c.KeySpaceSize = 0 },
		"negative rate":  func(c *Config) { c.Rate = -1 },
		"zero key size":  func(c *Config) { c.KeySize = 0 },
		"negative total": func(c *Config) { c.Total = -5 },
	} {
		c := baseConfig()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err = %v, want ErrBadConfig", name, err)
		}
	}
}

func TestKeysFollowEtcdBenchmark(t *testing.T) {
	c := baseConfig()
	c.KeySize, c.KeySpaceSize, c.SequentialKeys = 8, 100, true
	seen := map[string]bool{}
	for i := range 250 {
		k := c.keyOf(i, "p/")
		if len(k) != 2+8 {
			t.Fatalf("key %q has length %d, want 10", k, len(k))
		}
		seen[k] = true
	}
	if len(seen) != 100 {
		t.Errorf("sequential keys over a key space of 100 gave %d distinct keys", len(seen))
	}
	if k := varintKey(1, 1<<40); len(k) <= 1 {
		t.Errorf("a key too small for its varint is not widened: %q", k)
	}
}

func TestMixRoundTrip(t *testing.T) {
	m, err := ParseMix(FormatMix(DefaultK8sMix))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range DefaultK8sMix {
		if m[k] != v {
			t.Errorf("mix[%s] = %d, want %d", k, m[k], v)
		}
	}
	for _, bad := range []string{"update", "update=x", "nope=3", "get=-1"} {
		if _, err := ParseMix(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseMix(%q) err = %v, want ErrBadConfig", bad, err)
		}
	}
}
