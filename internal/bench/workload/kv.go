package workload

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/bench/report"
)

// varintKey encodes n as a varint at the start of a zeroed key of size bytes (longer if the
// varint needs more), as etcd's benchmark does.
func varintKey(size int, n int64) string {
	v := binary.AppendVarint(nil, n)
	k := make([]byte, max(size, len(v)))
	copy(k, v)
	return string(k)
}

func randIntn(n int) int { return rand.IntN(n) }

// PutOptions are the put workload's own settings.
type PutOptions struct {
	Prefix string // prepended to every key
	// Idle watchers held open (and read) during the puts, on a key no put writes.
	Idle IdleOptions
}

// Put writes cfg.Total keys of cfg.ValSize bytes, one Put per request.
func Put(ctx context.Context, e *Env, o PutOptions) (report.Output, error) {
	recs := newRecorders("put")
	val := randomValue(e.Cfg.ValSize)
	s := e.Cfg.settings()
	closeIdle, err := withIdleWatchers(ctx, e, o.Idle, s)
	if err != nil {
		return report.Output{}, err
	}
	defer closeIdle()
	e.run(ctx, recs, func(seq int) Op {
		key := e.Cfg.keyOf(seq, o.Prefix)
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Put(ctx, key, val)
			return err
		}}
	})
	if o.Prefix != "" {
		s["prefix"] = o.Prefix
	}
	return report.Output{Workload: "put", Settings: s, Results: summaries(recs)}, nil
}

// RangeOptions are the range workload's own settings.
type RangeOptions struct {
	Key, End     string
	Serializable bool
	Limit        int64
	CountOnly    bool
	KeysOnly     bool
	Prefix       bool // range over every key with Key as prefix
}

// Validate reports contradictory range settings.
func (o RangeOptions) Validate() error {
	if o.CountOnly && o.KeysOnly {
		return fmt.Errorf("%w: --keys-only and --count-only cannot be set at the same time", ErrBadConfig)
	}
	if o.Key == "" && !o.Prefix {
		return fmt.Errorf("%w: range needs a key (or --prefix)", ErrBadConfig)
	}
	return nil
}

func (o RangeOptions) opts() []clientv3.OpOption {
	var opts []clientv3.OpOption
	if o.Limit > 0 {
		opts = append(opts, clientv3.WithLimit(o.Limit))
	}
	if o.CountOnly {
		opts = append(opts, clientv3.WithCountOnly())
	}
	if o.KeysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	if o.Serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	switch {
	case o.Prefix:
		opts = append(opts, clientv3.WithPrefix())
	case o.End != "":
		opts = append(opts, clientv3.WithRange(o.End))
	}
	return opts
}

func consistencyName(serializable bool) string {
	if serializable {
		return "s"
	}
	return "l"
}

// Range issues cfg.Total identical Get requests over [Key, End).
func Range(ctx context.Context, e *Env, o RangeOptions) (report.Output, error) {
	if err := o.Validate(); err != nil {
		return report.Output{}, err
	}
	recs := newRecorders("range")
	opts := o.opts()
	e.run(ctx, recs, func(int) Op {
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Get(ctx, o.Key, opts...)
			return err
		}}
	})
	s := e.Cfg.settings()
	s["consistency"] = consistencyName(o.Serializable)
	s["key"] = strconv.Quote(o.Key)
	if o.End != "" {
		s["end"] = strconv.Quote(o.End)
	}
	if o.Prefix {
		s["prefix"] = "true"
	}
	if o.Limit > 0 {
		s["limit"] = strconv.FormatInt(o.Limit, 10)
	}
	return report.Output{Workload: "range", Settings: s, Results: summaries(recs)}, nil
}

// TxnPutOptions are the txn-put workload's own settings.
type TxnPutOptions struct {
	OpsPerTxn int // puts per transaction
}

// TxnPut commits cfg.Total transactions of OpsPerTxn puts each, over sequential keys.
func TxnPut(ctx context.Context, e *Env, o TxnPutOptions) (report.Output, error) {
	opsPerTxn := o.OpsPerTxn
	if opsPerTxn < 1 || opsPerTxn > e.Cfg.KeySpaceSize {
		return report.Output{}, fmt.Errorf("%w: expected --txn-ops between 1 and --key-space-size (%d), got %d",
			ErrBadConfig, e.Cfg.KeySpaceSize, opsPerTxn)
	}
	recs := newRecorders("txn-put")
	val := randomValue(e.Cfg.ValSize)
	e.run(ctx, recs, func(seq int) Op {
		ops := make([]clientv3.Op, opsPerTxn)
		for j := range ops {
			n := int64((seq*opsPerTxn + j) % e.Cfg.KeySpaceSize)
			ops[j] = clientv3.OpPut(varintKey(e.Cfg.KeySize, n), val)
		}
		return Op{Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Txn(ctx).Then(ops...).Commit()
			return err
		}}
	})
	s := e.Cfg.settings()
	s["txn-ops"] = strconv.Itoa(opsPerTxn)
	return report.Output{Workload: "txn-put", Settings: s, Results: summaries(recs)}, nil
}

// TxnMixedOptions are the txn-mixed workload's own settings.
type TxnMixedOptions struct {
	ReadWriteRatio float64 // reads per write
	Limit          int64   // result limit of each read
	EndKey         string  // reads cover [ "", EndKey ) with a prefix option like etcd's tool
	Serializable   bool
}

// TxnMixed issues a mix of one-put and one-range transactions in ReadWriteRatio, recorded as
// the series "txn-mixed-read" and "txn-mixed-write".
func TxnMixed(ctx context.Context, e *Env, o TxnMixedOptions) (report.Output, error) {
	if o.ReadWriteRatio < 0 {
		return report.Output{}, fmt.Errorf("%w: --rw-ratio must not be negative", ErrBadConfig)
	}
	const read, write = 0, 1
	recs := newRecorders("txn-mixed-read", "txn-mixed-write")
	val := randomValue(e.Cfg.ValSize)
	readOpts := []clientv3.OpOption{clientv3.WithRange(o.EndKey)}
	if o.Serializable {
		readOpts = append(readOpts, clientv3.WithSerializable())
	}
	readOpts = append(readOpts, clientv3.WithPrefix(), clientv3.WithLimit(o.Limit))
	pRead := o.ReadWriteRatio / (1 + o.ReadWriteRatio)
	e.run(ctx, recs, func(seq int) Op {
		var op clientv3.Op
		series := write
		if rand.Float64() < pRead {
			series = read
			op = clientv3.OpGet("", readOpts...)
		} else {
			op = clientv3.OpPut(e.Cfg.keyOf(seq, ""), val)
		}
		return Op{Series: series, Do: func(ctx context.Context, c *clientv3.Client, _ int) error {
			_, err := c.Txn(ctx).Then(op).Commit()
			return err
		}}
	})
	s := e.Cfg.settings()
	s["rw-ratio"] = strconv.FormatFloat(o.ReadWriteRatio, 'g', -1, 64)
	s["limit"] = strconv.FormatInt(o.Limit, 10)
	s["consistency"] = consistencyName(o.Serializable)
	return report.Output{Workload: "txn-mixed", Settings: s, Results: summaries(recs)}, nil
}

// LeaseKeepalive grants one lease per client and then sends cfg.Total KeepAliveOnce requests.
func LeaseKeepalive(ctx context.Context, e *Env) (report.Output, error) {
	leases := make([]clientv3.LeaseID, e.Cfg.Clients)
	for i := range leases {
		resp, err := e.Client(i).Grant(ctx, 100)
		if err != nil {
			return report.Output{}, fmt.Errorf("workload: lease grant: %w", err)
		}
		leases[i] = resp.ID
	}
	recs := newRecorders("lease-keepalive")
	e.run(ctx, recs, func(int) Op {
		return Op{Do: func(ctx context.Context, c *clientv3.Client, requester int) error {
			_, err := c.KeepAliveOnce(ctx, leases[requester])
			return err
		}}
	})
	for i, id := range leases {
		_, _ = e.Client(i).Revoke(ctx, id)
	}
	return report.Output{Workload: "lease-keepalive", Settings: e.Cfg.settings(), Results: summaries(recs)}, nil
}
