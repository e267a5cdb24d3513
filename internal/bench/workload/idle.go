package workload

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/bench/report"
)

// idleWatchKey is the key idle watchers watch: no workload writes it (workload keys are
// varint-encoded numbers or carry a prefix).
const idleWatchKey = "\xffmetastore-bench-idle-watch"

// rawWatches are watch streams opened on the raw gRPC Watch API, not through clientv3:
// clientv3 reads a stream whether or not its user reads the watch channel (it queues
// the responses in the client's memory), so a stream that really stops reading can
// only be made below it.
type rawWatches struct {
	cancel  context.CancelFunc
	streams []pb.Watch_WatchClient
	wg      sync.WaitGroup
}

// openRawWatches opens streams gRPC Watch streams (spread over the Env's connections),
// each with perStream watches of keys[i % len(keys)], and waits until every watch is
// created (recording each creation in rec when it is not nil). If drain, each stream
// is then read (and its responses thrown away) until close; otherwise it is never read
// again: a stalled stream, which the server's flow control soon blocks.
//
// With read set, each stream is read by one goroutine that hands read every response
// (drain is then ignored), and prevKV asks for previous values.
func openRawWatches(ctx context.Context, e *Env, streams, perStream int, keys []string, drain bool, rec *report.Recorder) (*rawWatches, error) {
	return openRawWatchesRead(ctx, e, streams, perStream, keys, drain, false, rec, nil)
}

func openRawWatchesRead(ctx context.Context, e *Env, streams, perStream int, keys []string, drain, prevKV bool, rec *report.Recorder, read func(*pb.WatchResponse)) (*rawWatches, error) {
	ctx, cancel := context.WithCancel(ctx)
	rw := &rawWatches{cancel: cancel}
	var mu sync.Mutex
	var firstErr error
	var open sync.WaitGroup
	rw.streams = make([]pb.Watch_WatchClient, streams)
	for s := range streams {
		open.Go(func() {
			err := rw.openOne(ctx, e, s, perStream, keys, drain, prevKV, rec, read)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	open.Wait()
	if firstErr != nil {
		rw.close()
		return nil, fmt.Errorf("workload: opening raw watches: %w", firstErr)
	}
	return rw, nil
}

func (rw *rawWatches) openOne(ctx context.Context, e *Env, s, perStream int, keys []string, drain, prevKV bool, rec *report.Recorder, read func(*pb.WatchResponse)) error {
	wc := pb.NewWatchClient(e.Client(s).ActiveConnection())
	st, err := wc.Watch(ctx)
	if err != nil {
		return err
	}
	rw.streams[s] = st
	for j := range perStream {
		key := keys[(s*perStream+j)%len(keys)]
		start := time.Now()
		req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte(key), PrevKv: prevKV}}}
		if err := st.Send(req); err != nil {
			return err
		}
		// Creations are answered in order; events cannot come first on a new watch
		// from now, but skip anything that is not a creation anyway.
		for {
			resp, err := st.Recv()
			if err != nil {
				return err
			}
			if resp.Created {
				if resp.Canceled {
					return fmt.Errorf("watch refused: %s", resp.CancelReason)
				}
				break
			}
		}
		if rec != nil {
			_ = rec.Record(start, time.Now(), nil)
		}
	}
	if drain || read != nil {
		rw.wg.Go(func() {
			for {
				resp, err := st.Recv()
				if err != nil {
					return
				}
				if read != nil {
					read(resp)
				}
			}
		})
	}
	return nil
}

// close ends every stream.
func (rw *rawWatches) close() {
	rw.cancel()
	rw.wg.Wait()
}

// IdleOptions are the settings of the watch-idle workload, and of idle watchers held
// open during another workload.
type IdleOptions struct {
	Streams        int           // gRPC Watch streams
	WatchersPerStr int           // watches on each
	Hold           time.Duration // watch-idle: how long to hold them open once created
}

// WatchIdle opens Streams×WatchersPerStr watches of one key nothing writes, holds them
// for Hold (to measure the server's memory meanwhile), then closes them. Series:
// "watch-idle-create".
func WatchIdle(ctx context.Context, e *Env, o IdleOptions) (report.Output, error) {
	if o.Streams < 1 || o.WatchersPerStr < 1 {
		return report.Output{}, fmt.Errorf("%w: --streams and --watchers-per-stream must be positive", ErrBadConfig)
	}
	rec := report.NewRecorder("watch-idle-create")
	rw, err := openRawWatches(ctx, e, o.Streams, o.WatchersPerStr, []string{idleWatchKey}, true, rec)
	if err != nil {
		return report.Output{}, err
	}
	fmt.Fprintf(os.Stderr, "watch-idle: %d watches open, holding %v\n", o.Streams*o.WatchersPerStr, o.Hold)
	select {
	case <-time.After(o.Hold):
	case <-ctx.Done():
	}
	rw.close()
	s := e.Cfg.settings()
	delete(s, "total")
	s["streams"] = strconv.Itoa(o.Streams)
	s["watchers-per-stream"] = strconv.Itoa(o.WatchersPerStr)
	s["hold"] = o.Hold.String()
	return report.Output{Workload: "watch-idle", Settings: s, Results: []report.Summary{rec.Summary()}}, nil
}

// withIdleWatchers opens o's idle watchers (if any) and returns the function that
// closes them; the settings they add go into s.
func withIdleWatchers(ctx context.Context, e *Env, o IdleOptions, s map[string]string) (func(), error) {
	if o.Streams < 1 || o.WatchersPerStr < 1 {
		return func() {}, nil
	}
	rw, err := openRawWatches(ctx, e, o.Streams, o.WatchersPerStr, []string{idleWatchKey}, true, nil)
	if err != nil {
		return nil, err
	}
	s["idle-watch-streams"] = strconv.Itoa(o.Streams)
	s["idle-watchers-per-stream"] = strconv.Itoa(o.WatchersPerStr)
	return rw.close, nil
}
