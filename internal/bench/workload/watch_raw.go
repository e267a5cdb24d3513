package workload

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/bench/report"
)

// runRawWatch is runWatch with the watches made on the raw gRPC Watch API (o.Raw):
// one goroutine per stream decodes its responses and records every event's delivery.
func runRawWatch(ctx context.Context, e *Env, o WatchOptions, keys []string, name string,
	createRec, putRec, eventRec *report.Recorder) (report.Output, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchersOf := map[string]int64{}
	for i := range o.Streams * o.WatchersPerStr {
		watchersOf[keys[i%len(keys)]]++
	}
	var expected int64
	for i := range o.PutTotal {
		expected += watchersOf[keys[i%len(keys)]]
	}
	run := &watchRun{done: make(chan struct{})}
	run.remaining.Store(expected)
	ebar := e.Cfg.progress(int(expected))
	read := func(resp *pb.WatchResponse) {
		if len(resp.Events) == 0 {
			return
		}
		now := time.Now()
		lat := make([]time.Duration, 0, len(resp.Events))
		for _, ev := range resp.Events {
			if len(ev.Kv.Value) >= stampLen {
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(ev.Kv.Value[:stampLen])))
				lat = append(lat, now.Sub(sent))
			}
			ebar.Increment()
		}
		run.record(now, len(resp.Events), lat, eventRec)
	}
	rw, err := openRawWatchesRead(wctx, e, o.Streams, o.WatchersPerStr, keys, false, o.PrevKV, createRec, read)
	if err != nil {
		return report.Output{}, err
	}
	if o.StalledStreams > 0 {
		stalled, err := openRawWatches(wctx, e, o.StalledStreams, o.WatchersPerStr, keys, false, nil)
		if err != nil {
			rw.close()
			return report.Output{}, err
		}
		defer stalled.close()
	}
	out, err := putAndCollect(ctx, func() { cancel(); rw.cancel() }, e, o, keys, name, run, expected, createRec, putRec, eventRec, rw.wg.Wait, ebar)
	if err == nil {
		out.Settings["raw"] = strconv.FormatBool(true)
	}
	return out, err
}

// record counts n events received at now, with their latencies.
func (r *watchRun) record(now time.Time, n int, lat []time.Duration, rec *report.Recorder) {
	_ = rec.RecordLatencies(lat)
	r.responses.Add(1)
	r.mu.Lock()
	if now.After(r.lastEvent) {
		r.lastEvent = now
	}
	r.mu.Unlock()
	if r.remaining.Add(-int64(n)) == 0 {
		r.once.Do(func() { close(r.done) })
	}
}
