package workload

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/bench/report"
)

// K8s key prefixes, after kube-apiserver's layout.
const (
	k8sPods   = "/registry/pods/"
	k8sEvents = "/registry/events/"
)

// K8sOps are the request kinds of the k8s workload, in the order of their series.
var K8sOps = []string{"create", "update", "get", "list", "event"}

// DefaultK8sMix is the default weight of each request kind: mostly optimistic updates (status
// and node-lease heartbeats), then events, point reads, creates and paginated lists.
var DefaultK8sMix = map[string]int{"update": 50, "event": 20, "get": 15, "create": 8, "list": 7}

// K8sOptions are the settings of the k8s workload.
type K8sOptions struct {
	Objects    int            // objects created under /registry/pods/ before the run
	Mix        map[string]int // weight of each kind in K8sOps
	PageSize   int64          // list page size (kube-apiserver's default is 500)
	Watchers   int            // prefix watches on /registry/ with prev_kv, as watch caches open
	LeaseReuse int            // events attached to one lease before a new one is granted
	// EventTimeout bounds the wait for watchers to catch up after the last write.
	EventTimeout time.Duration
}

// ParseMix reads "update=50,get=10,..." into weights; kinds not named get weight 0.
func ParseMix(s string) (map[string]int, error) {
	m := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 || !isK8sOp(k) {
			return nil, fmt.Errorf("%w: bad --mix entry %q (want kind=weight, kinds %v)", ErrBadConfig, part, K8sOps)
		}
		m[k] = n
	}
	return m, nil
}

// FormatMix writes weights in ParseMix's syntax, in K8sOps order.
func FormatMix(m map[string]int) string {
	var parts []string
	for _, k := range K8sOps {
		if m[k] > 0 {
			parts = append(parts, k+"="+strconv.Itoa(m[k]))
		}
	}
	return strings.Join(parts, ",")
}

func isK8sOp(k string) bool {
	for _, o := range K8sOps {
		if o == k {
			return true
		}
	}
	return false
}

type k8sRun struct {
	o       K8sOptions
	val     string
	revs    []atomic.Int64 // last known mod revision of each object
	created atomic.Int64
	writes  atomic.Int64 // successful writes, each seen by every watcher
	confl   atomic.Int64

	leaseMu   sync.Mutex
	lease     clientv3.LeaseID
	leaseUses int
	cum       []int // cumulative weights in K8sOps order
}

// K8s preloads Objects objects, opens Watchers prefix watches, then issues cfg.Total requests
// drawn from Mix. Series: one per request kind, plus "watch" (delay from the start of a write to
// its event's arrival at a watcher).
func K8s(ctx context.Context, e *Env, o K8sOptions) (report.Output, error) {
	if o.Mix == nil {
		o.Mix = DefaultK8sMix
	}
	r := &k8sRun{o: o, val: randomValue(max(0, e.Cfg.ValSize-stampLen))}
	sum := 0
	for _, k := range K8sOps {
		sum += o.Mix[k]
		r.cum = append(r.cum, sum)
	}
	if sum == 0 || o.Objects < 1 || o.PageSize < 0 || o.Watchers < 0 {
		return report.Output{}, fmt.Errorf("%w: k8s needs a non-empty --mix, positive --objects", ErrBadConfig)
	}
	if o.LeaseReuse < 1 {
		o.LeaseReuse = 1000
		r.o.LeaseReuse = 1000
	}
	if _, err := Load(ctx, e, LoadOptions{Prefix: k8sPods, Keys: o.Objects}); err != nil {
		return report.Output{}, err
	}
	r.revs = make([]atomic.Int64, o.Objects)
	resp, err := e.Client(0).Get(ctx, k8sPods, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return report.Output{}, fmt.Errorf("workload: reading preloaded objects: %w", err)
	}
	for _, kv := range resp.Kvs {
		if i, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), k8sPods)); err == nil && i < o.Objects {
			r.revs[i].Store(kv.ModRevision)
		}
	}

	recs := newRecorders(append(append([]string{}, K8sOps...), "watch")...)
	watchRec := recs[len(K8sOps)]
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen atomic.Int64
	var recvWG sync.WaitGroup
	var watchers []clientv3.Watcher
	for i := range o.Watchers {
		w := clientv3.NewWatcher(e.Client(i))
		watchers = append(watchers, w)
		ch := w.Watch(wctx, "/registry/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
		if first := <-ch; !first.Created {
			return report.Output{}, fmt.Errorf("workload: k8s watch not created: %v", first.Err())
		}
		recvWG.Go(func() {
			for resp := range ch {
				now := time.Now()
				for _, ev := range resp.Events {
					if len(ev.Kv.Value) >= stampLen {
						sent := time.Unix(0, int64(binary.BigEndian.Uint64(ev.Kv.Value[:stampLen])))
						_ = watchRec.RecordLatency(now.Sub(sent))
					}
					seen.Add(1)
				}
			}
		})
	}
	defer func() {
		for _, w := range watchers {
			_ = w.Close()
		}
	}()

	start := time.Now()
	e.run(ctx, recs, func(seq int) Op { return r.next(seq) })
	want := r.writes.Load() * int64(o.Watchers)
	timeout := o.EventTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	for deadline := time.Now().Add(timeout); seen.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(10 * time.Millisecond) // polling the counter, not timing anything
	}
	cancel()
	recvWG.Wait()
	watchRec.AddErrors(want-seen.Load(), "watch event not received")
	watchRec.SetWindow(start, time.Now())

	s := e.Cfg.settings()
	s["objects"] = strconv.Itoa(o.Objects)
	s["mix"] = FormatMix(o.Mix)
	s["page-size"] = strconv.FormatInt(o.PageSize, 10)
	s["watchers"] = strconv.Itoa(o.Watchers)
	s["update-conflicts"] = strconv.FormatInt(r.confl.Load(), 10)
	delete(s, "key-size")
	delete(s, "key-space-size")
	out := summaries(recs)
	kept := out[:0]
	for _, sm := range out {
		if sm.Requests > 0 || (sm.Name == "watch" && o.Watchers > 0) {
			kept = append(kept, sm)
		}
	}
	return report.Output{Workload: "k8s", Settings: s, Results: kept}, nil
}

func (r *k8sRun) stamped() string {
	var b [stampLen]byte
	binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
	return string(b[:]) + r.val
}

// next draws the request kind of op seq by weight.
func (r *k8sRun) next(seq int) Op {
	x := rand.IntN(r.cum[len(r.cum)-1])
	kind := 0
	for x >= r.cum[kind] {
		kind++
	}
	switch K8sOps[kind] {
	case "create":
		key := fmt.Sprintf("%sbench-new/%d-%d", k8sPods, time.Now().UnixNano(), seq)
		return Op{Series: kind, Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			resp, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, r.stamped())).Else(clientv3.OpGet(key)).Commit()
			if err == nil && resp.Succeeded {
				r.writes.Add(1)
				r.created.Add(1)
			}
			return err
		}}
	case "update":
		i := rand.IntN(len(r.revs))
		return Op{Series: kind, Do: func(ctx context.Context, c *clientv3.Client, _ int) error { return r.update(ctx, c, i) }}
	case "get":
		key := ListKey(k8sPods, rand.IntN(len(r.revs)))
		return Op{Series: kind, Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Get(ctx, key)
			return err
		}}
	case "list":
		return Op{Series: kind, Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := listPrefix(ctx, c, k8sPods, r.o.PageSize, false, false)
			return err
		}}
	default: // event
		key := fmt.Sprintf("%sbench/%d-%d", k8sEvents, time.Now().UnixNano(), seq)
		return Op{Series: kind, Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			id, err := r.eventLease(ctx, c)
			if err != nil {
				return err
			}
			if _, err = c.Put(ctx, key, r.stamped(), clientv3.WithLease(id)); err == nil {
				r.writes.Add(1)
			}
			return err
		}}
	}
}

// update is kube-apiserver's GuaranteedUpdate: a put guarded by the object's last known mod
// revision; on conflict the current object comes back and the update is retried once with it.
func (r *k8sRun) update(ctx context.Context, c *clientv3.Client, i int) error {
	key := ListKey(k8sPods, i)
	for attempt := 0; ; attempt++ {
		rev := r.revs[i].Load()
		resp, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, r.stamped())).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			r.revs[i].Store(resp.Header.Revision)
			r.writes.Add(1)
			return nil
		}
		r.confl.Add(1)
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			r.revs[i].Store(kvs[0].ModRevision)
		}
		if attempt == 1 {
			return nil // a second conflict means another writer won; the apiserver would retry later
		}
	}
}

// eventLease returns the lease that events are attached to, granting a fresh one (TTL one hour,
// like kube-apiserver's event TTL) after LeaseReuse events.
func (r *k8sRun) eventLease(ctx context.Context, c *clientv3.Client) (clientv3.LeaseID, error) {
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	if r.lease != 0 && r.leaseUses < r.o.LeaseReuse {
		r.leaseUses++
		return r.lease, nil
	}
	resp, err := c.Grant(ctx, 3600)
	if err != nil {
		return 0, err
	}
	r.lease, r.leaseUses = resp.ID, 1
	return r.lease, nil
}
