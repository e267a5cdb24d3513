package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/robustness/model"
)

// TrafficConfig says what the clients do. The switches let the KV part gate a
// server that lacks leases or watches.
type TrafficConfig struct {
	Clients int     // concurrent KV clients
	Rate    float64 // total requests per second, shared by the clients
	Leases  bool    // lease grant, put with lease, lease revoke
	Watch   bool    // the reference watch and watches from recent revisions
	Compact bool    // compaction every few hundred milliseconds
	// Endpoints, when set, gives the endpoints of client i (default: all members).
	Endpoints func(client int) []string
	// ReadOnly, when set, marks clients that only issue linearizable gets and ranges.
	ReadOnly func(client int) bool
}

// RequestTimeout bounds every client request; a request that times out is
// recorded as ambiguous.
const RequestTimeout = 2 * time.Second

// Traffic drives the clients, the reference watch, the traffic watches and the
// compactor of one run.
type Traffic struct {
	cfg       TrafficConfig
	cluster   *Cluster
	h         *History
	lastRev   atomic.Int64 // highest header revision seen, for watch start revisions
	refRev    atomic.Int64 // last revision the reference watch delivered
	compacted atomic.Int64 // highest compaction revision requested
	Ref       *WatchRecord
	wmu       sync.Mutex // guards every WatchRecord while traffic runs
}

// NewTraffic prepares a run's traffic.
func NewTraffic(cfg TrafficConfig, c *Cluster, h *History) *Traffic {
	return &Traffic{cfg: cfg, cluster: c, h: h, Ref: &WatchRecord{ID: 0, StartRev: 1}}
}

// RefRev is the last revision the reference watch delivered.
func (t *Traffic) RefRev() int64 { return t.refRev.Load() }

// RunReference starts the reference watch; it runs until ctx is done (after
// the final checks, so it can catch up) and the returned channel is closed.
func (t *Traffic) RunReference(ctx context.Context) (<-chan struct{}, error) {
	cli, err := t.cluster.Client()
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cli.Close()
		t.referenceWatch(ctx, cli)
	}()
	return done, nil
}

// Run drives the clients, the traffic watches and the compactor until ctx is
// done; wait waits for them to stop.
func (t *Traffic) Run(ctx context.Context) (wait func(), err error) {
	var wg sync.WaitGroup
	for i := 0; i < t.cfg.Clients; i++ {
		var eps []string
		if t.cfg.Endpoints != nil {
			eps = t.cfg.Endpoints(i)
		}
		cli, err := t.cluster.Client(eps...)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			defer cli.Close()
			t.client(ctx, id, cli)
		}(i)
	}
	if t.cfg.Watch {
		for i := 1; i <= 2; i++ {
			cli, err := t.cluster.Client()
			if err != nil {
				return nil, err
			}
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				defer cli.Close()
				t.watches(ctx, id, cli)
			}(i)
		}
	}
	if t.cfg.Compact {
		cli, err := t.cluster.Client()
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cli.Close()
			t.compactor(ctx, cli)
		}()
	}
	return wg.Wait, nil
}

func (t *Traffic) seen(rev int64) {
	for {
		cur := t.lastRev.Load()
		if rev <= cur || t.lastRev.CompareAndSwap(cur, rev) {
			return
		}
	}
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || strings.Contains(err.Error(), "requested lease not found")
}

// client issues requests at its share of the rate until ctx is done.
func (t *Traffic) client(ctx context.Context, id int, cli *clientv3.Client) {
	tick := time.NewTicker(time.Duration(float64(time.Second) * float64(t.cfg.Clients) / t.cfg.Rate))
	defer tick.Stop()
	modRev := map[int]int64{}
	var lease int64
	seq := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		seq++
		key := rand.IntN(model.NumKeys)
		value := fmt.Sprintf("c%d-%d", id, seq)
		in := model.Input{Key: key}
		serializable := false
		r := rand.IntN(100)
		readOnly := t.cfg.ReadOnly != nil && t.cfg.ReadOnly(id)
		switch {
		case readOnly && r < 50:
			in.Type = model.Get
		case readOnly:
			in.Type = model.Range
		case r < 20:
			in.Type = model.Get
		case r < 30:
			in.Type, serializable = model.Get, true
		case r < 40:
			in.Type = model.Range
		case r < 45:
			in.Type, serializable = model.Range, true
		case r < 65:
			in.Type, in.Value = model.Put, value
		case r < 80:
			in.Type, in.Value, in.ExpectModRev = model.Txn, value, modRev[key]
		case r < 85:
			in.Type = model.Delete
		case !t.cfg.Leases:
			in.Type, in.Value = model.Put, value
		case r < 92 && lease != 0:
			in.Type, in.Value, in.Lease = model.Put, value, lease
		case lease == 0:
			in.Type = model.LeaseGrant
		default:
			in.Type, in.Lease = model.LeaseRevoke, lease
			lease = 0 // never reuse a lease whose revoke was sent, whatever the outcome
		}
		op := Op{Client: id, Input: in, Serializable: serializable, Call: t.h.Now()}
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		out, err := t.do(rctx, cli, in, serializable)
		cancel()
		op.Return = t.h.Now()
		if err != nil {
			op.Error = err.Error()
			if !in.Type.IsWrite() || in.Type == model.LeaseGrant {
				op.Output = model.Output{Unknown: true}
				t.h.Add(op) // recorded, not checked: nothing changed that the model could know of
				continue
			}
			if isLeaseNotFound(err) {
				out = model.Output{Err: model.ErrLeaseNotFound}
			} else {
				out = model.Output{Unknown: true}
			}
		}
		if in.Type == model.LeaseGrant {
			op.Input.Lease, lease = out.Rev, out.Rev // do() returns the granted ID in Rev
			out.Rev = 0
		}
		op.Output = out
		if !out.Unknown && out.Err == "" {
			t.seen(out.Rev)
			for _, kv := range out.KVs {
				modRev[kv.Key] = kv.ModRev
			}
			switch {
			case in.Type == model.Get && len(out.KVs) == 0:
				modRev[key] = 0
			case in.Type == model.Put || in.Type == model.Txn && out.Succeeded:
				modRev[key] = out.Rev
			case in.Type == model.Delete:
				modRev[key] = 0
			}
		}
		t.h.Add(op)
	}
}

func (t *Traffic) do(ctx context.Context, cli *clientv3.Client, in model.Input, serializable bool) (model.Output, error) {
	key := model.KeyName(in.Key)
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	switch in.Type {
	case model.Get:
		resp, err := cli.Get(ctx, key, opts...)
		if err != nil {
			return model.Output{}, err
		}
		return model.Output{Rev: resp.Header.Revision, KVs: toKVs(resp.Kvs)}, nil
	case model.Range:
		resp, err := cli.Get(ctx, model.KeyPrefix, append(opts, clientv3.WithPrefix())...)
		if err != nil {
			return model.Output{}, err
		}
		return model.Output{Rev: resp.Header.Revision, KVs: toKVs(resp.Kvs)}, nil
	case model.Put:
		if in.Lease != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(in.Lease)))
		}
		resp, err := cli.Put(ctx, key, in.Value, opts...)
		if err != nil {
			return model.Output{}, err
		}
		return model.Output{Rev: resp.Header.Revision}, nil
	case model.Delete:
		resp, err := cli.Delete(ctx, key)
		if err != nil {
			return model.Output{}, err
		}
		return model.Output{Rev: resp.Header.Revision, Deleted: resp.Deleted}, nil
	case model.Txn:
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", in.ExpectModRev)).
			Then(clientv3.OpPut(key, in.Value)).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return model.Output{}, err
		}
		out := model.Output{Rev: resp.Header.Revision, Succeeded: resp.Succeeded}
		if !resp.Succeeded && len(resp.Responses) == 1 {
			out.KVs = toKVs(resp.Responses[0].GetResponseRange().GetKvs())
		}
		return out, nil
	case model.LeaseGrant:
		resp, err := cli.Grant(ctx, 600)
		if err != nil {
			return model.Output{}, err
		}
		return model.Output{Rev: int64(resp.ID)}, nil
	case model.LeaseRevoke:
		_, err := cli.Revoke(ctx, clientv3.LeaseID(in.Lease))
		return model.Output{}, err
	}
	return model.Output{}, fmt.Errorf("robustness: unknown op %v", in.Type)
}

// record reads one watch stream into w until it ends; it returns false when
// the stream ended without a terminal condition (cancelled context, lost
// leader) so the caller may resume it.
func (t *Traffic) record(ch clientv3.WatchChan, w *WatchRecord, onRev func(int64)) {
	for resp := range ch {
		t.wmu.Lock()
		if resp.CompactRevision != 0 {
			w.Compacted = resp.CompactRevision
		} else if err := resp.Err(); err != nil {
			w.Err = err.Error()
		}
		if len(resp.Events) > 0 {
			wr := WatchResponse{Time: t.h.Now()}
			for _, ev := range resp.Events {
				wr.Events = append(wr.Events, toEvent(ev))
			}
			w.Responses = append(w.Responses, wr)
		}
		t.wmu.Unlock()
		if n := len(resp.Events); n > 0 && onRev != nil {
			onRev(resp.Events[n-1].Kv.ModRevision)
		}
	}
}

// referenceWatch watches the whole key space from revision 1 with prev_kv,
// resuming after any interruption from the revision after the last one it
// received, so its record is the complete event history of the run.
func (t *Traffic) referenceWatch(ctx context.Context, cli *clientv3.Client) {
	t.h.AddWatch(t.Ref)
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := cli.Watch(wctx, model.KeyPrefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(t.refRev.Load()+1))
		t.record(ch, t.Ref, func(rev int64) { t.refRev.Store(rev) })
		cancel()
		t.wmu.Lock()
		compacted := t.Ref.Compacted != 0
		t.Ref.Err = ""
		t.wmu.Unlock()
		if compacted {
			return // a gap: validation reports it
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watches opens watches from recent revisions, each for a second or two.
func (t *Traffic) watches(ctx context.Context, id int, cli *clientv3.Client) {
	for n := 0; ctx.Err() == nil; n++ {
		start := t.lastRev.Load() - int64(rand.IntN(30))
		if start < 1 {
			start = 1
		}
		w := &WatchRecord{ID: id*100000 + n, StartRev: start}
		t.h.AddWatch(w)
		wctx, cancel := context.WithTimeout(ctx, time.Second+rand.N(2*time.Second))
		t.record(cli.Watch(wctx, model.KeyPrefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(start)), w, nil)
		early := wctx.Err() == nil // the stream failed before its time: do not spin
		cancel()
		if early {
			sleep(ctx, 200*time.Millisecond)
		}
	}
}

// compactor compacts a little behind the reference watch every 300ms, so
// traffic watches from recent revisions sometimes meet a compaction and the
// reference watch never does.
func (t *Traffic) compactor(ctx context.Context, cli *clientv3.Client) {
	var last int64
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rev := t.refRev.Load() - 20
		if !t.cfg.Watch {
			rev = t.lastRev.Load() - 50
		}
		if rev <= last {
			continue
		}
		t.compacted.Store(rev)
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		if _, err := cli.Compact(rctx, rev); err == nil {
			last = rev
		}
		cancel()
	}
}
