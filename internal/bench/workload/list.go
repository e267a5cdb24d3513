package workload

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/bench/report"
)

// DefaultListPrefix is where load and list put their keys unless told otherwise; it is shaped
// like kube-apiserver's storage layout.
const DefaultListPrefix = "/registry/bench/"

// LoadOptions are the settings of the load workload (and of list's preload).
type LoadOptions struct {
	Prefix    string
	Keys      int // keys to write: Prefix + zero-padded index
	BatchSize int // puts per transaction; etcd accepts at most 128 by default
	// RandomValues gives every key its own random value, so the engine's compression
	// cannot shrink the data set (the default writes one value for all keys).
	RandomValues bool
}

func (o *LoadOptions) validate() error {
	if o.Prefix == "" {
		o.Prefix = DefaultListPrefix
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.Keys < 1 || o.BatchSize < 1 {
		return fmt.Errorf("%w: --keys and --batch must be positive", ErrBadConfig)
	}
	return nil
}

// ListKey is the i-th key written by Load under prefix.
func ListKey(prefix string, i int) string { return fmt.Sprintf("%s%010d", prefix, i) }

// Load writes Keys keys of cfg.ValSize bytes under Prefix in transactions of BatchSize puts,
// from cfg.Clients requesters (cfg.Total and cfg.Duration are ignored; cfg.Rate paces
// transactions). Series "load" times each transaction.
func Load(ctx context.Context, e *Env, o LoadOptions) (report.Output, error) {
	if err := o.validate(); err != nil {
		return report.Output{}, err
	}
	recs := newRecorders("load")
	batches := (o.Keys + o.BatchSize - 1) / o.BatchSize
	lcfg := e.Cfg
	lcfg.Total, lcfg.Duration = batches, 0
	le := &Env{Cfg: lcfg, conns: e.conns}
	val := randomValue(e.Cfg.ValSize)
	le.run(ctx, recs, func(b int) Op {
		lo, hi := b*o.BatchSize, min((b+1)*o.BatchSize, o.Keys)
		ops := make([]clientv3.Op, 0, hi-lo)
		for i := lo; i < hi; i++ {
			v := val
			if o.RandomValues {
				v = randomValue(e.Cfg.ValSize)
			}
			ops = append(ops, clientv3.OpPut(ListKey(o.Prefix, i), v))
		}
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Txn(ctx).Then(ops...).Commit()
			return err
		}}
	})
	s := lcfg.settings()
	s["prefix"] = o.Prefix
	s["keys"] = strconv.Itoa(o.Keys)
	s["batch"] = strconv.Itoa(o.BatchSize)
	delete(s, "key-size")
	delete(s, "key-space-size")
	return report.Output{Workload: "load", Settings: s, Results: summaries(recs)}, nil
}

// ListOptions are the settings of the list workload.
type ListOptions struct {
	LoadOptions
	PageSize     int64 // 0: one request for the whole prefix; >0: pages at one revision, as kube-apiserver
	Serializable bool
	KeysOnly     bool
	SkipLoad     bool // do not check or write the keys first
}

// List makes sure Keys keys exist under Prefix (loading them if fewer are there), then lists
// the prefix cfg.Total times. Series "list" times each full list (all pages).
func List(ctx context.Context, e *Env, o ListOptions) (report.Output, error) {
	if err := o.validate(); err != nil {
		return report.Output{}, err
	}
	if o.PageSize < 0 {
		return report.Output{}, fmt.Errorf("%w: --page-size must not be negative", ErrBadConfig)
	}
	if !o.SkipLoad {
		resp, err := e.Client(0).Get(ctx, o.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return report.Output{}, fmt.Errorf("workload: counting %q: %w", o.Prefix, err)
		}
		if resp.Count < int64(o.Keys) {
			if _, err := Load(ctx, e, o.LoadOptions); err != nil {
				return report.Output{}, err
			}
		}
	}
	recs := newRecorders("list")
	e.run(ctx, recs, func(int) Op {
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := listPrefix(ctx, c, o.Prefix, o.PageSize, o.Serializable, o.KeysOnly)
			return err
		}}
	})
	s := e.Cfg.settings()
	s["prefix"] = o.Prefix
	s["keys"] = strconv.Itoa(o.Keys)
	s["page-size"] = strconv.FormatInt(o.PageSize, 10)
	s["consistency"] = consistencyName(o.Serializable)
	delete(s, "key-size")
	delete(s, "key-space-size")
	return report.Output{Workload: "list", Settings: s, Results: summaries(recs)}, nil
}

// listPrefix reads every key under prefix, in pages of pageSize pinned to the revision of the
// first page (pageSize 0: one request), and returns how many keys it saw.
func listPrefix(ctx context.Context, c *clientv3.Client, prefix string, pageSize int64, serializable, keysOnly bool) (int, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	base := []clientv3.OpOption{clientv3.WithRange(end)}
	if serializable {
		base = append(base, clientv3.WithSerializable())
	}
	if keysOnly {
		base = append(base, clientv3.WithKeysOnly())
	}
	if pageSize > 0 {
		base = append(base, clientv3.WithLimit(pageSize))
	}
	key := prefix
	var rev int64
	n := 0
	for {
		opts := base
		if rev != 0 {
			opts = append(append([]clientv3.OpOption{}, base...), clientv3.WithRev(rev))
		}
		resp, err := c.Get(ctx, key, opts...)
		if err != nil {
			return n, err
		}
		n += len(resp.Kvs)
		if rev == 0 {
			rev = resp.Header.Revision
		}
		if pageSize == 0 || !resp.More || len(resp.Kvs) == 0 {
			return n, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
