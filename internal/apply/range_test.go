package apply

import (
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/mvcc"
)

// rangeFixture writes, at revisions 2..9:
//
//	a: value "0"  create 2  mod 5  version 2
//	b: value "5"  create 3  mod 8  version 3
//	c: value "2"  create 4  mod 4  version 1
//	d: value "2"  create 6  mod 6  version 1
//	e: value ""   create 9  mod 9  version 1
func rangeFixture(t *testing.T) *harness {
	h := newHarness(t)
	for _, kv := range [][2]string{{"a", "3"}, {"b", "1"}, {"c", "2"}, {"a", "0"}, {"d", "2"}, {"b", "9"}, {"b", "5"}, {"e", ""}} {
		h.put(kv[0], kv[1])
	}
	return h
}

func TestRangeOptions(t *testing.T) {
	h := rangeFixture(t)
	all := func(mod func(r *pb.RangeRequest)) *pb.RangeRequest {
		r := &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}
		if mod != nil {
			mod(r)
		}
		return r
	}
	const (
		none = pb.RangeRequest_NONE
		asc  = pb.RangeRequest_ASCEND
		desc = pb.RangeRequest_DESCEND
	)
	sorted := func(tgt pb.RangeRequest_SortTarget, ord pb.RangeRequest_SortOrder, limit int64) *pb.RangeRequest {
		return all(func(r *pb.RangeRequest) { r.SortTarget, r.SortOrder, r.Limit = tgt, ord, limit })
	}
	// Expected results were checked against etcd v3.7.3 (see TestAgainstEtcd).
	for _, tc := range []struct {
		name  string
		req   *pb.RangeRequest
		keys  []string
		count int64
		more  bool
	}{
		{"all", all(nil), []string{"a", "b", "c", "d", "e"}, 5, false},
		{"limit 2", all(func(r *pb.RangeRequest) { r.Limit = 2 }), []string{"a", "b"}, 5, true},
		{"limit = count", all(func(r *pb.RangeRequest) { r.Limit = 5 }), []string{"a", "b", "c", "d", "e"}, 5, false},
		{"limit > count", all(func(r *pb.RangeRequest) { r.Limit = 6 }), []string{"a", "b", "c", "d", "e"}, 5, false},
		{"prefix range", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("d")}, []string{"b", "c"}, 2, false},
		{"single key", &pb.RangeRequest{Key: []byte("c")}, []string{"c"}, 1, false},
		{"missing key", &pb.RangeRequest{Key: []byte("cc")}, nil, 0, false},
		{"inverted range", &pb.RangeRequest{Key: []byte("d"), RangeEnd: []byte("b")}, nil, 0, false},
		{"equal bounds", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("b")}, nil, 0, false},
		{"from empty key", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, []string{"a", "b", "c", "d", "e"}, 5, false},
		{"count_only", all(func(r *pb.RangeRequest) { r.CountOnly = true }), nil, 5, false},
		{"count_only limit", all(func(r *pb.RangeRequest) { r.CountOnly, r.Limit = true, 2 }), nil, 5, false},
		{"count_only filter", all(func(r *pb.RangeRequest) { r.CountOnly, r.MinModRevision = true, 6 }), nil, 5, false},

		{"key asc", sorted(pb.RangeRequest_KEY, asc, 0), []string{"a", "b", "c", "d", "e"}, 5, false},
		{"key desc", sorted(pb.RangeRequest_KEY, desc, 0), []string{"e", "d", "c", "b", "a"}, 5, false},
		{"key desc limit", sorted(pb.RangeRequest_KEY, desc, 2), []string{"e", "d"}, 5, true},
		// sort_order NONE with a target other than KEY sorts ascending.
		{"version none", sorted(pb.RangeRequest_VERSION, none, 0), []string{"c", "d", "e", "a", "b"}, 5, false},
		{"version asc", sorted(pb.RangeRequest_VERSION, asc, 0), []string{"c", "d", "e", "a", "b"}, 5, false},
		{"version desc", sorted(pb.RangeRequest_VERSION, desc, 0), []string{"b", "a", "c", "d", "e"}, 5, false},
		{"create asc", sorted(pb.RangeRequest_CREATE, asc, 0), []string{"a", "b", "c", "d", "e"}, 5, false},
		{"create desc", sorted(pb.RangeRequest_CREATE, desc, 0), []string{"e", "d", "c", "b", "a"}, 5, false},
		{"create none limit", sorted(pb.RangeRequest_CREATE, none, 3), []string{"a", "b", "c"}, 5, true},
		{"mod asc", sorted(pb.RangeRequest_MOD, asc, 0), []string{"c", "a", "d", "b", "e"}, 5, false},
		{"mod desc limit", sorted(pb.RangeRequest_MOD, desc, 2), []string{"e", "b"}, 5, true},
		{"value asc", sorted(pb.RangeRequest_VALUE, asc, 0), []string{"e", "a", "c", "d", "b"}, 5, false},
		{"value desc", sorted(pb.RangeRequest_VALUE, desc, 0), []string{"b", "c", "d", "a", "e"}, 5, false},
		{"value desc limit", sorted(pb.RangeRequest_VALUE, desc, 2), []string{"b", "c"}, 5, true},

		// The revision filters do not change count; more is about the filtered list.
		{"min mod", all(func(r *pb.RangeRequest) { r.MinModRevision = 5 }), []string{"a", "b", "d", "e"}, 5, false},
		{"max mod", all(func(r *pb.RangeRequest) { r.MaxModRevision = 6 }), []string{"a", "c", "d"}, 5, false},
		{"min create", all(func(r *pb.RangeRequest) { r.MinCreateRevision = 4 }), []string{"c", "d", "e"}, 5, false},
		{"max create", all(func(r *pb.RangeRequest) { r.MaxCreateRevision = 3 }), []string{"a", "b"}, 5, false},
		{"mod and create", all(func(r *pb.RangeRequest) { r.MinModRevision, r.MaxCreateRevision = 5, 6 }), []string{"a", "b", "d"}, 5, false},
		{"filter limit", all(func(r *pb.RangeRequest) { r.MinModRevision, r.Limit = 5, 2 }), []string{"a", "b"}, 5, true},
		{"filter limit exact", all(func(r *pb.RangeRequest) { r.MinModRevision, r.Limit = 5, 4 }), []string{"a", "b", "d", "e"}, 5, false},
		{"filter sort limit", all(func(r *pb.RangeRequest) {
			r.MaxModRevision, r.SortTarget, r.SortOrder, r.Limit = 8, pb.RangeRequest_MOD, desc, 2
		}), []string{"b", "d"}, 5, true},

		// Reads in the past.
		{"revision 4", all(func(r *pb.RangeRequest) { r.Revision = 4 }), []string{"a", "b", "c"}, 3, false},
		{"revision 4 mod desc", all(func(r *pb.RangeRequest) {
			r.Revision, r.SortTarget, r.SortOrder = 4, pb.RangeRequest_MOD, desc
		}), []string{"c", "b", "a"}, 3, false},
		{"revision 4 limit", all(func(r *pb.RangeRequest) { r.Revision, r.Limit = 4, 1 }), []string{"a"}, 3, true},
		{"revision 1", all(func(r *pb.RangeRequest) { r.Revision = 1 }), nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.get(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := keysOf(resp.Kvs); !slices.Equal(got, tc.keys) && !(len(got) == 0 && len(tc.keys) == 0) {
				t.Errorf("keys = %v, want %v", got, tc.keys)
			}
			if resp.Count != tc.count || resp.More != tc.more {
				t.Errorf("count, more = %d, %v; want %d, %v", resp.Count, resp.More, tc.count, tc.more)
			}
			if resp.Header.Revision != 9 {
				t.Errorf("header revision = %d, want 9 (the store's, not the read revision)", resp.Header.Revision)
			}
		})
	}
}

func TestRangeKeysOnly(t *testing.T) {
	h := rangeFixture(t)
	for _, tgt := range []pb.RangeRequest_SortTarget{pb.RangeRequest_KEY, pb.RangeRequest_VALUE} {
		resp := h.mustGet(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, KeysOnly: true,
			SortTarget: tgt, SortOrder: pb.RangeRequest_ASCEND})
		for _, kv := range resp.Kvs {
			if kv.Value != nil {
				t.Fatalf("keys_only returned a value: %v", kv)
			}
			if kv.ModRevision == 0 || kv.CreateRevision == 0 || kv.Version == 0 {
				t.Fatalf("keys_only dropped metadata: %v", kv)
			}
		}
		// Sorting by value still sorts by the (dropped) values.
		want := map[pb.RangeRequest_SortTarget][]string{
			pb.RangeRequest_KEY:   {"a", "b", "c", "d", "e"},
			pb.RangeRequest_VALUE: {"e", "a", "c", "d", "b"},
		}[tgt]
		if got := keysOf(resp.Kvs); !slices.Equal(got, want) {
			t.Fatalf("keys_only sorted by %v = %v, want %v", tgt, got, want)
		}
	}
}

func TestRangeRevisionErrors(t *testing.T) {
	h := rangeFixture(t)
	_, err := h.get(&pb.RangeRequest{Key: []byte("a"), Revision: 10})
	errIs(t, err, mvcc.ErrFutureRev)
	// Even an empty interval checks the revision.
	_, err = h.get(&pb.RangeRequest{Key: []byte("d"), RangeEnd: []byte("a"), Revision: 10})
	errIs(t, err, mvcc.ErrFutureRev)

	h.do(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 5}})
	_, err = h.get(&pb.RangeRequest{Key: []byte("a"), Revision: 4})
	errIs(t, err, mvcc.ErrCompacted)
	// Reading at the compacted revision itself is allowed.
	resp, err := h.get(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(keysOf(resp.Kvs)); got != "[a b c]" {
		t.Fatalf("range at the compacted revision = %s", got)
	}
}
