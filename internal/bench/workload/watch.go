package workload

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/bench/report"
)

// stampLen is the size of the send time written at the start of each watched value.
const stampLen = 8

// WatchOptions are the settings of the watch and watch-latency workloads.
type WatchOptions struct {
	Streams         int     // watch gRPC streams (one clientv3.Watcher each)
	WatchersPerStr  int     // watches opened on each stream
	WatchedKeyTotal int     // distinct keys watched (watch only; watch-latency watches one key)
	PutTotal        int     // puts to the watched keys
	PutRate         float64 // puts per second, 0 = no limit
	PrevKV          bool    // ask for the previous value with each event
	// StalledStreams more streams, of WatchersPerStr watches of the same keys each,
	// are opened on the raw gRPC API and never read once their watches are created:
	// they measure what a client that stops reading costs the others.
	StalledStreams int
	// Raw: the watches are made on the raw gRPC Watch API, each stream read by one
	// goroutine, instead of through clientv3 (whose per-watcher goroutines and
	// channels cost the client more than decoding the events): the figures then
	// depend less on the benchmark client.
	Raw bool
	// EventTimeout bounds the wait for the last events after the last put.
	EventTimeout time.Duration
}

func (o WatchOptions) validate() error {
	if o.Streams < 1 || o.WatchersPerStr < 1 || o.PutTotal < 1 {
		return fmt.Errorf("%w: --streams, watchers per stream and --put-total must be positive", ErrBadConfig)
	}
	return nil
}

// Watch opens Streams×WatchersPerStr watches over WatchedKeyTotal keys, then puts PutTotal
// values to those keys. Series: "watch-create" (time for each watch to be confirmed created),
// "watch-put" (the puts), "watch-event" (from the start of a put to each event's arrival at
// each watcher; its throughput is events received per second).
func Watch(ctx context.Context, e *Env, o WatchOptions) (report.Output, error) {
	if err := o.validate(); err != nil {
		return report.Output{}, err
	}
	if o.WatchedKeyTotal < 1 {
		return report.Output{}, fmt.Errorf("%w: --watched-key-total must be positive", ErrBadConfig)
	}
	// The watched keys are distinct whenever the key space allows it: random draws from
	// a small key space would otherwise put several "keys" on one.
	keys := make([]string, 0, o.WatchedKeyTotal)
	seen := map[string]bool{}
	for i := 0; len(keys) < o.WatchedKeyTotal; i++ {
		k := e.Cfg.keyOf(i, "")
		if seen[k] && len(seen) < e.Cfg.KeySpaceSize && i < 100*o.WatchedKeyTotal {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
	}
	out, err := runWatch(ctx, e, o, keys, "watch")
	if err != nil {
		return out, err
	}
	out.Settings["watched-key-total"] = strconv.Itoa(o.WatchedKeyTotal)
	return out, nil
}

// WatchLatency watches one random key from Streams×WatchersPerStr watchers and puts PutTotal
// values to it at PutRate, measuring put latency ("watch-latency-put") and the delay from the
// start of each put to the event's arrival at each watcher ("watch-latency-watch").
func WatchLatency(ctx context.Context, e *Env, o WatchOptions) (report.Output, error) {
	if err := o.validate(); err != nil {
		return report.Output{}, err
	}
	k := make([]byte, e.Cfg.KeySize)
	_, _ = rand.Read(k)
	return runWatch(ctx, e, o, []string{string(k)}, "watch-latency")
}

type watchRun struct {
	remaining atomic.Int64 // events still expected
	responses atomic.Int64 // responses with events received
	done      chan struct{}
	once      sync.Once
	mu        sync.Mutex
	lastEvent time.Time
}

func runWatch(ctx context.Context, e *Env, o WatchOptions, keys []string, name string) (report.Output, error) {
	createRec := report.NewRecorder(name + "-create")
	putRec := report.NewRecorder(name + "-put")
	eventRec := report.NewRecorder(name + "-watch")
	if name == "watch" {
		eventRec = report.NewRecorder("watch-event")
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var opts []clientv3.OpOption
	opts = append(opts, clientv3.WithCreatedNotify())
	if o.PrevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}

	if o.Raw {
		return runRawWatch(ctx, e, o, keys, name, createRec, putRec, eventRec)
	}

	// Phase 1: open the watches, each stream from its own goroutine.
	type opened struct {
		ch  clientv3.WatchChan
		key string
	}
	nWatch := o.Streams * o.WatchersPerStr
	watches := make([]opened, nWatch)
	watchers := make([]clientv3.Watcher, o.Streams)
	bar := e.Cfg.progress(nWatch)
	var wg sync.WaitGroup
	var openMu sync.Mutex
	var openErr error // the first failure to open a watch
	for s := range o.Streams {
		watchers[s] = clientv3.NewWatcher(e.Client(s))
		wg.Go(func() {
			for j := range o.WatchersPerStr {
				i := s*o.WatchersPerStr + j
				key := keys[i%len(keys)]
				st := time.Now()
				ch := watchers[s].Watch(wctx, key, opts...)
				resp, ok := <-ch
				var err error
				switch {
				case !ok:
					err = fmt.Errorf("watch channel closed: %v", wctx.Err())
				case resp.Err() != nil:
					err = resp.Err()
				case !resp.Created:
					err = fmt.Errorf("first watch response is not the creation notice")
				}
				_ = createRec.Record(st, time.Now(), err)
				if err != nil {
					openMu.Lock()
					if openErr == nil {
						openErr = err
					}
					openMu.Unlock()
				}
				watches[i] = opened{ch: ch, key: key}
				bar.Increment()
			}
		})
	}
	wg.Wait()
	bar.Finish()
	defer func() {
		for _, w := range watchers {
			_ = w.Close()
		}
	}()
	if openErr != nil {
		return report.Output{}, fmt.Errorf("workload: opening watches: %w", openErr)
	}

	if o.StalledStreams > 0 {
		stalled, err := openRawWatches(wctx, e, o.StalledStreams, o.WatchersPerStr, keys, false, nil)
		if err != nil {
			return report.Output{}, err
		}
		defer stalled.close()
	}

	// Phase 2: receive events while putting.
	watchersOf := map[string]int64{}
	for _, w := range watches {
		watchersOf[w.key]++
	}
	var expected int64
	for i := range o.PutTotal {
		expected += watchersOf[keys[i%len(keys)]]
	}
	run := &watchRun{done: make(chan struct{})}
	run.remaining.Store(expected)
	ebar := e.Cfg.progress(int(expected))
	var recvWG sync.WaitGroup
	for _, w := range watches {
		recvWG.Go(func() { run.receive(w.ch, eventRec, ebar) })
	}

	return putAndCollect(ctx, cancel, e, o, keys, name, run, expected, createRec, putRec, eventRec, recvWG.Wait, ebar)
}

// putAndCollect makes the puts of a watch run, waits for the events (or the timeout),
// stops the receivers (cancel, then wait) and builds the output.
func putAndCollect(ctx context.Context, cancel context.CancelFunc, e *Env, o WatchOptions, keys []string, name string,
	run *watchRun, expected int64, createRec, putRec, eventRec *report.Recorder, wait func(), ebar Progress) (report.Output, error) {
	pcfg := e.Cfg
	pcfg.Total, pcfg.Duration, pcfg.Rate = o.PutTotal, 0, o.PutRate
	pcfg.NewProgress = nil
	pe := &Env{Cfg: pcfg, conns: e.conns}
	pad := randomValue(max(0, e.Cfg.ValSize-stampLen))
	firstPut := time.Now()
	pe.run(ctx, []*report.Recorder{putRec}, func(seq int) Op {
		key := keys[seq%len(keys)]
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			var stamp [stampLen]byte
			binary.BigEndian.PutUint64(stamp[:], uint64(time.Now().UnixNano()))
			_, err := c.Put(ctx, key, string(stamp[:])+pad)
			return err
		}}
	})
	timeout := o.EventTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-run.done:
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	cancel()
	wait()
	ebar.Finish()
	eventRec.AddErrors(run.remaining.Load(), "watch event not received")
	run.mu.Lock()
	eventRec.SetWindow(firstPut, run.lastEvent)
	run.mu.Unlock()

	s := e.Cfg.settings()
	s["streams"] = strconv.Itoa(o.Streams)
	s["watchers-per-stream"] = strconv.Itoa(o.WatchersPerStr)
	s["put-total"] = strconv.Itoa(o.PutTotal)
	s["put-rate"] = strconv.FormatFloat(o.PutRate, 'g', -1, 64)
	s["prevkv"] = strconv.FormatBool(o.PrevKV)
	if n := run.responses.Load(); n > 0 {
		// How much the server batched: etcd and MetaStore put several revisions of a
		// watcher that is behind in one response.
		s["events-per-response"] = strconv.FormatFloat(float64(expected-run.remaining.Load())/float64(n), 'f', 1, 64)
	}
	if o.StalledStreams > 0 {
		s["stalled-streams"] = strconv.Itoa(o.StalledStreams)
	}
	delete(s, "total")
	delete(s, "rate")
	return report.Output{Workload: name, Settings: s,
		Results: []report.Summary{createRec.Summary(), putRec.Summary(), eventRec.Summary()}}, nil
}

// receive records the delivery delay of every event on ch until all expected events have
// arrived or the watch is cancelled.
func (r *watchRun) receive(ch clientv3.WatchChan, rec *report.Recorder, bar Progress) {
	var lat []time.Duration
	for resp := range ch {
		now := time.Now()
		lat = lat[:0]
		for _, ev := range resp.Events {
			if len(ev.Kv.Value) >= stampLen {
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(ev.Kv.Value[:stampLen])))
				lat = append(lat, now.Sub(sent))
			}
			bar.Increment()
		}
		if len(resp.Events) == 0 {
			continue
		}
		// One lock per response, not per event: the client must not be what limits a
		// fan-out of millions of events per second.
		_ = rec.RecordLatencies(lat)
		r.responses.Add(1)
		r.mu.Lock()
		if now.After(r.lastEvent) {
			r.lastEvent = now
		}
		r.mu.Unlock()
		if r.remaining.Add(-int64(len(resp.Events))) == 0 {
			r.once.Do(func() { close(r.done) })
		}
	}
}
