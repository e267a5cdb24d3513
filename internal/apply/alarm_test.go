package apply

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func alarmReq(action pb.AlarmRequest_AlarmAction, member uint64, t pb.AlarmType) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: action, MemberID: member, Alarm: t}}
}

func TestAlarmActivateDeactivateGet(t *testing.T) {
	h := newHarness(t)
	get := func(at pb.AlarmType) []*pb.AlarmMember {
		return h.do(alarmReq(pb.AlarmRequest_GET, 0, at)).(*pb.AlarmResponse).Alarms
	}
	if got := get(pb.AlarmType_NONE); len(got) != 0 {
		t.Fatalf("alarms on a fresh store: %v", got)
	}
	// Activating NONE does nothing.
	if resp := h.do(alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NONE)).(*pb.AlarmResponse); len(resp.Alarms) != 0 {
		t.Fatalf("activate NONE answered %v", resp.Alarms)
	}
	resp := h.do(alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE)).(*pb.AlarmResponse)
	mustEqualProto(t, resp, &pb.AlarmResponse{Header: &pb.ResponseHeader{}, Alarms: []*pb.AlarmMember{{MemberID: 2, Alarm: pb.AlarmType_NOSPACE}}})
	// Activating again answers the active alarm.
	resp = h.do(alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE)).(*pb.AlarmResponse)
	if len(resp.Alarms) != 1 {
		t.Fatalf("re-activate: %v", resp)
	}
	h.do(alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NOSPACE))
	h.do(alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_CORRUPT))

	want := []*pb.AlarmMember{
		{MemberID: 1, Alarm: pb.AlarmType_NOSPACE},
		{MemberID: 2, Alarm: pb.AlarmType_NOSPACE},
		{MemberID: 1, Alarm: pb.AlarmType_CORRUPT},
	}
	mustEqualProto(t, &pb.AlarmResponse{Alarms: get(pb.AlarmType_NONE)}, &pb.AlarmResponse{Alarms: want})
	mustEqualProto(t, &pb.AlarmResponse{Alarms: get(pb.AlarmType_CORRUPT)}, &pb.AlarmResponse{Alarms: want[2:]})
	mustEqualProto(t, &pb.AlarmResponse{Alarms: h.app.Alarms()}, &pb.AlarmResponse{Alarms: want})

	// Alarms survive a restart.
	h.reopen()
	mustEqualProto(t, &pb.AlarmResponse{Alarms: h.app.Alarms()}, &pb.AlarmResponse{Alarms: want})

	// Deactivating answers the removed alarm, or nothing.
	resp = h.do(alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_CORRUPT)).(*pb.AlarmResponse)
	mustEqualProto(t, &pb.AlarmResponse{Alarms: resp.Alarms}, &pb.AlarmResponse{Alarms: want[2:]})
	resp = h.do(alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_CORRUPT)).(*pb.AlarmResponse)
	if len(resp.Alarms) != 0 {
		t.Fatalf("deactivate of an inactive alarm answered %v", resp.Alarms)
	}
	h.do(alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_NOSPACE))
	h.do(alarmReq(pb.AlarmRequest_DEACTIVATE, 2, pb.AlarmType_NOSPACE))
	if len(h.app.Alarms()) != 0 {
		t.Fatalf("alarms left: %v", h.app.Alarms())
	}
	h.reopen()
	if len(h.app.Alarms()) != 0 {
		t.Fatalf("alarms after restart: %v", h.app.Alarms())
	}
}

func TestNoSpaceAlarm(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.put("b", "1") // rev 3
	putB := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b")}}}

	// The alarm takes effect for the very next entry, in the same batch.
	res := h.applyAll(
		alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NOSPACE),
		&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c"), Value: []byte("1")}},
	)
	errIs(t, res[1].Err, ErrNoSpace)

	for _, tc := range []struct {
		name string
		req  *pb.InternalRaftRequest
		want error
	}{
		{"put", &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("2")}}, ErrNoSpace},
		// Any put in either branch, at any depth, refuses the txn.
		{"txn put in failure branch", &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{putB}}}, ErrNoSpace},
		{"txn nested put", &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{putB}})}}}, ErrNoSpace},
		// Deletes, reads and compaction still work: they free space.
		{"txn read and delete", &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{getOp("a", ""), delOp("a", "")}}}, nil},
		{"delete", &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("b")}}, nil},
		{"compaction", &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 3}}, nil},
		{"range", &pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errIs(t, h.doErr(tc.req), tc.want)
		})
	}
	if rev := h.store.Rev(); rev != 5 {
		t.Fatalf("revision = %d, want 5 (two deletes)", rev)
	}

	h.do(alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_NOSPACE))
	if rev := h.put("c", "1").Header.Revision; rev != 6 {
		t.Fatalf("put after disarm: revision %d", rev)
	}
}

func TestCorruptAlarm(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.do(alarmReq(pb.AlarmRequest_ACTIVATE, 3, pb.AlarmType_CORRUPT))
	for _, r := range []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte("a")}},
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}},
		{Txn: &pb.TxnRequest{}},
		{Range: &pb.RangeRequest{Key: []byte("a")}},
		{Compaction: &pb.CompactionRequest{Revision: 2}},
	} {
		errIs(t, h.doErr(r), ErrCorrupt)
	}
	if h.store.Rev() != 2 || h.store.CompactRev() != 0 {
		t.Fatal("a request under CORRUPT changed the store")
	}
	// Alarm requests still go through.
	h.do(alarmReq(pb.AlarmRequest_DEACTIVATE, 3, pb.AlarmType_CORRUPT))
	h.put("a", "2")
}
