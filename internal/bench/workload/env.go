// Package workload holds the bench tool's load generators: etcd's benchmark workloads (put,
// range, txn-put, txn-mixed, watch, watch-latency, lease-keepalive) and MetaStore's own (load,
// list, k8s). Each drives any etcd v3 API endpoint through go.etcd.io/etcd/client/v3 and returns
// a report.Output.
//
// It owns request generation, pacing and timing; it must not format output (package report does)
// nor parse command lines (package cli does), and it never asserts anything about speed.
package workload

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/metastore/metastore/internal/bench/report"
)

// Sentinel errors of the workloads.
var (
	ErrBadConfig = errors.New("workload: bad configuration")
	ErrDial      = errors.New("workload: cannot connect")
)

// Config holds the settings shared by every workload, named after etcd benchmark's flags.
type Config struct {
	Endpoints   []string
	Conns       int // gRPC connections (clientv3.Client values)
	Clients     int // concurrent requesters, spread over the connections
	DialTimeout time.Duration

	TLS      transport.TLSInfo
	Username string
	Password string

	// Total is the number of requests; Duration, if set, stops issuing requests after that
	// long (with Total 0 meaning no count limit). At least one of the two must be set.
	Total    int
	Duration time.Duration
	Rate     float64 // requests per second over all clients; 0 means no limit

	KeySize        int
	ValSize        int
	KeySpaceSize   int
	SequentialKeys bool

	// NewProgress, if set, returns a progress indicator for a phase of n steps (n < 0: unknown).
	NewProgress func(n int) Progress
}

// Progress is told of each finished step of a phase; a progress bar implements it.
type Progress interface {
	Increment()
	Finish()
}

type noProgress struct{}

func (noProgress) Increment() {}
func (noProgress) Finish()    {}

// Validate reports a setting no workload can run with.
func (c *Config) Validate() error {
	switch {
	case len(c.Endpoints) == 0:
		return fmt.Errorf("%w: no --endpoints", ErrBadConfig)
	case c.Conns < 1:
		return fmt.Errorf("%w: --conns must be at least 1, got %d", ErrBadConfig, c.Conns)
	case c.Clients < 1:
		return fmt.Errorf("%w: --clients must be at least 1, got %d", ErrBadConfig, c.Clients)
	case c.Total < 0 || c.Duration < 0 || c.Rate < 0:
		return fmt.Errorf("%w: --total, --duration and --rate must not be negative", ErrBadConfig)
	case c.Total == 0 && c.Duration == 0:
		return fmt.Errorf("%w: set --total or --duration", ErrBadConfig)
	case c.KeySpaceSize < 1:
		return fmt.Errorf("%w: expected positive --key-space-size, got %d", ErrBadConfig, c.KeySpaceSize)
	case c.KeySize < 1 || c.ValSize < 0:
		return fmt.Errorf("%w: --key-size must be positive and --val-size not negative", ErrBadConfig)
	}
	return nil
}

// settings describes the shared configuration for a report.
func (c *Config) settings() map[string]string {
	m := map[string]string{
		"conns":          strconv.Itoa(c.Conns),
		"clients":        strconv.Itoa(c.Clients),
		"total":          strconv.Itoa(c.Total),
		"key-size":       strconv.Itoa(c.KeySize),
		"val-size":       strconv.Itoa(c.ValSize),
		"key-space-size": strconv.Itoa(c.KeySpaceSize),
	}
	if c.Duration > 0 {
		m["duration"] = c.Duration.String()
	}
	if c.Rate > 0 {
		m["rate"] = strconv.FormatFloat(c.Rate, 'g', -1, 64)
	}
	if c.SequentialKeys {
		m["sequential-keys"] = "true"
	}
	return m
}

func (c *Config) progress(n int) Progress {
	if c.NewProgress == nil {
		return noProgress{}
	}
	return c.NewProgress(n)
}

// Env is a set of open connections to the cluster under test.
type Env struct {
	Cfg   Config
	conns []*clientv3.Client
}

// Dial opens cfg.Conns connections. Close the Env when done.
func Dial(ctx context.Context, cfg Config) (*Env, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ccfg := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Context:     ctx,
		Logger:      zap.NewNop(),
	}
	if ccfg.DialTimeout == 0 {
		ccfg.DialTimeout = 5 * time.Second
	}
	if !cfg.TLS.Empty() || cfg.TLS.TrustedCAFile != "" || cfg.TLS.InsecureSkipVerify {
		tc, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("%w: bad TLS configuration: %v", ErrBadConfig, err)
		}
		tc.InsecureSkipVerify = cfg.TLS.InsecureSkipVerify
		ccfg.TLS = tc
	}
	e := &Env{Cfg: cfg}
	for range cfg.Conns {
		c, err := clientv3.New(ccfg)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("%w: %v", ErrDial, err)
		}
		e.conns = append(e.conns, c)
	}
	return e, nil
}

// Client returns the connection that requester i uses (requesters share connections round-robin).
func (e *Env) Client(i int) *clientv3.Client { return e.conns[i%len(e.conns)] }

// Close closes every connection.
func (e *Env) Close() {
	for _, c := range e.conns {
		_ = c.Close()
	}
}

// Op is one request of a run: Do is timed and its outcome recorded in series Series.
type Op struct {
	Series int
	Do     func(ctx context.Context, c *clientv3.Client, requester int) error
}

// run issues the ops made by gen(0), gen(1), ... from cfg.Clients concurrent requesters, paced
// by cfg.Rate and bounded by cfg.Total and cfg.Duration, and records each into recs[op.Series].
// It returns once every issued op has finished. A cancelled ctx stops issuing new ops.
func (e *Env) run(ctx context.Context, recs []*report.Recorder, gen func(seq int) Op) {
	cfg := e.Cfg
	limit := rate.Inf
	if cfg.Rate > 0 {
		limit = rate.Limit(cfg.Rate)
	}
	lim := rate.NewLimiter(limit, 1)
	total := cfg.Total
	if total == 0 {
		total = math.MaxInt
	}
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = time.Now().Add(cfg.Duration)
	}
	steps := cfg.Total
	if cfg.Duration > 0 {
		steps = -1
	}
	bar := cfg.progress(steps)
	defer bar.Finish()

	ops := make(chan Op, cfg.Clients)
	var wg sync.WaitGroup
	for w := range cfg.Clients {
		wg.Go(func() {
			c := e.Client(w)
			for op := range ops {
				if err := lim.Wait(ctx); err != nil {
					continue // cancelled: drain without issuing
				}
				st := time.Now()
				err := op.Do(ctx, c, w)
				_ = recs[op.Series].Record(st, time.Now(), err)
				bar.Increment()
			}
		})
	}
	for seq := 0; seq < total; seq++ {
		if ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
			break
		}
		ops <- gen(seq)
	}
	close(ops)
	wg.Wait()
}

// keyOf returns the seq-th key of a run in etcd benchmark's encoding: a varint of the key
// number (sequential or random within the key space) in a key of cfg.KeySize bytes.
func (c *Config) keyOf(seq int, prefix string) string {
	return prefix + varintKey(c.KeySize, c.keyNumber(seq))
}

func (c *Config) keyNumber(seq int) int64 {
	if c.SequentialKeys {
		return int64(seq % c.KeySpaceSize)
	}
	return int64(randIntn(c.KeySpaceSize))
}

func randomValue(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}

func newRecorders(names ...string) []*report.Recorder {
	out := make([]*report.Recorder, len(names))
	for i, n := range names {
		out[i] = report.NewRecorder(n)
	}
	return out
}

func summaries(recs []*report.Recorder) []report.Summary {
	out := make([]report.Summary, len(recs))
	for i, r := range recs {
		out[i] = r.Summary()
	}
	return out
}
