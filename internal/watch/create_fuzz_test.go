package watch

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// FuzzWatchCreate: any create request (ranges, ids, start revisions, filters) gets
// etcd's error or a valid watch that can be canceled, never a panic; a watch from the
// past gets its history or, below the compacted revision, a compaction response.
func FuzzWatchCreate(f *testing.F) {
	f.Add([]byte("a"), []byte(nil), int64(0), int64(0), uint8(0), false)
	f.Add([]byte("b"), []byte("a"), int64(2), int64(0), uint8(1), true)
	f.Add([]byte{0}, []byte{}, int64(1), int64(5), uint8(2), false)
	f.Add([]byte("a"), []byte("a"), int64(-1), int64(-1), uint8(3), true)
	f.Add([]byte("k"), []byte("l"), int64(1<<62), int64(1<<62), uint8(0), false)
	f.Fuzz(func(t *testing.T, key, end []byte, startRev, id int64, filters uint8, prevKV bool) {
		fx := newFixture(t)
		for _, k := range []string{"a", "b", "k", "a"} {
			fx.put(k, "v")
		}
		fx.compact(3)
		s := fx.hub.NewStream()
		defer s.Close()
		var fs []pb.WatchCreateRequest_FilterType
		if filters&1 != 0 {
			fs = append(fs, pb.WatchCreateRequest_NOPUT)
		}
		if filters&2 != 0 {
			fs = append(fs, pb.WatchCreateRequest_NODELETE)
		}
		if filters&4 != 0 {
			fs = append(fs, pb.WatchCreateRequest_FilterType(7)) // unknown: ignored, as etcd
		}
		req := &pb.WatchCreateRequest{Key: key, RangeEnd: end, StartRevision: startRev, WatchId: id, Filters: fs, PrevKv: prevKV}
		got, err := s.Watch(req)
		if err != nil {
			if !errors.Is(err, ErrEmptyRange) && !errors.Is(err, ErrDuplicateID) {
				t.Fatalf("Watch(%v): %v, not one of etcd's errors", req, err)
			}
			if got != -1 {
				t.Fatalf("failed Watch returned id %d", got)
			}
			return
		}
		if id != 0 && got != id {
			t.Fatalf("Watch with id %d returned %d", id, got)
		}
		if _, err := s.Watch(&pb.WatchCreateRequest{Key: []byte("z"), WatchId: got}); got != 0 && !errors.Is(err, ErrDuplicateID) {
			t.Fatalf("second watch with id %d: %v", got, err)
		}
		if startRev > 0 && startRev < 3 {
			if r := recv(t, s); r.WatchId != got || r.CompactRevision != 3 {
				t.Fatalf("start %d below compaction: %v", startRev, r)
			}
		}
		if err := s.Cancel(got); err != nil {
			t.Fatalf("Cancel(%d): %v", got, err)
		}
	})
}
