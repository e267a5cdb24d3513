package apply

import (
	"bytes"
	"math"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/internal/mvcc"
)

// Range answers r from v with etcd's semantics:
//
//   - range_end empty: the single key; "\x00": every key >= key; a range_end at or
//     below key: no keys.
//   - revision 0 (or negative): v's revision; otherwise mvcc.ErrFutureRev above it and
//     mvcc.ErrCompacted below the compacted revision.
//   - Count is the number of live keys in the range at the read revision, before the
//     min/max revision filters and before limit.
//   - When the order is not key-ascending or a revision filter is set, every key in the
//     range is read, filtered, sorted, and then cut to limit; More says keys were cut.
//     A sort_order of NONE with a target other than KEY sorts ascending.
//   - keys_only drops values; as in etcd v3.7 it also drops leases unless the sort
//     target is VALUE. count_only returns Count and no keys.
//   - Header.Revision is v's revision, not the read revision.
//
// Range does not check alarms; it only reads.
func Range(v mvcc.ReadView, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	rev := r.GetRevision()
	if rev < 0 {
		rev = 0
	}
	opts := mvcc.RangeOptions{
		Rev:       rev,
		CountOnly: r.GetCountOnly(),
		KeysOnly:  r.GetKeysOnly() && r.GetSortTarget() != pb.RangeRequest_VALUE,
	}
	if limit := r.GetLimit(); limit > 0 && limit < math.MaxInt64 &&
		isDefaultOrdering(r.GetSortTarget(), r.GetSortOrder()) && !hasRevisionFilters(r) {
		opts.Limit = limit + 1 // one more than asked, to learn whether there are more
	}

	var rr mvcc.RangeResult
	var err error
	if isEmptyInterval(r.GetKey(), r.GetRangeEnd()) {
		// Nothing to read, but the revision is still checked.
		rr, err = v.Range(r.GetKey(), nil, mvcc.RangeOptions{Rev: rev, CountOnly: true})
		rr.Count, rr.KVs = 0, nil
	} else {
		rr, err = v.Range(r.GetKey(), r.GetRangeEnd(), opts)
	}
	if err != nil {
		return nil, err
	}

	kvs := filterKVs(rr.KVs, r)
	sortKVs(kvs, r.GetSortTarget(), r.GetSortOrder())

	resp := &pb.RangeResponse{
		Header: &pb.ResponseHeader{Revision: rr.Rev},
		Count:  int64(rr.Count),
	}
	if limit := r.GetLimit(); limit > 0 && int64(len(kvs)) > limit {
		kvs = kvs[:limit]
		resp.More = true
	}
	if r.GetKeysOnly() {
		for i, kv := range kvs {
			c := &mvccpb.KeyValue{
				Key:            kv.Key,
				CreateRevision: kv.CreateRevision,
				ModRevision:    kv.ModRevision,
				Version:        kv.Version,
			}
			if r.GetSortTarget() == pb.RangeRequest_VALUE {
				c.Lease = kv.Lease
			}
			kvs[i] = c
		}
	}
	if len(kvs) > 0 {
		resp.Kvs = kvs
	}
	return resp, nil
}

// isEmptyInterval reports whether [key, end) is a range (end set, not "\x00") that
// holds no key because end <= key.
func isEmptyInterval(key, end []byte) bool {
	if len(end) == 0 || (len(end) == 1 && end[0] == 0) {
		return false
	}
	return bytes.Compare(end, key) <= 0
}

// inInterval reports whether k is in [key, end) with etcd's range_end conventions.
func inInterval(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(k, key) >= 0
	default:
		return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
	}
}

// isDefaultOrdering reports whether the result is wanted in mvcc's own order (ascending
// key), so mvcc may stop at limit.
func isDefaultOrdering(target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) bool {
	return order == pb.RangeRequest_NONE ||
		(target == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.GetMinModRevision() != 0 || r.GetMaxModRevision() != 0 ||
		r.GetMinCreateRevision() != 0 || r.GetMaxCreateRevision() != 0
}

// filterKVs drops the keys outside the request's min/max mod/create revisions, in place.
func filterKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) []*mvccpb.KeyValue {
	if !hasRevisionFilters(r) {
		return kvs
	}
	out := kvs[:0]
	for _, kv := range kvs {
		switch {
		case r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision:
		case r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision:
		case r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision:
		case r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision:
		default:
			out = append(out, kv)
		}
	}
	return out
}

// sortKVs orders kvs as etcd does. It uses sort.Sort, like etcd, so keys that compare
// equal on the target (say, two keys of version 1) come out in the same order as from
// etcd: the permutation depends only on the comparison results.
func sortKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) {
	if target != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrdering(target, order) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) bool
	switch target {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return // unknown target: etcd panics; keep mvcc's order
	}
	var s sort.Interface = kvSorter{kvs, less}
	switch order {
	case pb.RangeRequest_ASCEND:
		sort.Sort(s)
	case pb.RangeRequest_DESCEND:
		sort.Sort(sort.Reverse(s))
	}
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
