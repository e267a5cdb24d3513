package integration

import (
	"errors"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMoveLeader: the leader hands leadership to a follower; a follower asked answers
// etcd's "not leader", and a target that is no member "bad leader transferee".
func TestMoveLeader(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3)
		defer c.close()
		ctx := ctxT(t)
		lead := c.leaderIndex(t)
		target := (lead + 1) % 3
		lcli, tcli := c.client(lead), c.client(target)
		st, err := tcli.Status(ctx, c.members[target].clientURL)
		if err != nil {
			t.Fatal(err)
		}
		targetID := st.Header.MemberId
		if _, err := tcli.MoveLeader(ctx, targetID); !errors.Is(err, rpctypes.ErrNotLeader) {
			t.Errorf("MoveLeader on a follower: %v, want %v", err, rpctypes.ErrNotLeader)
		}
		if _, err := lcli.MoveLeader(ctx, 0x1234); !errors.Is(err, rpctypes.ErrBadLeaderTransferee) {
			t.Errorf("MoveLeader to no member: %v, want %v", err, rpctypes.ErrBadLeaderTransferee)
		}
		if _, err := lcli.MoveLeader(ctx, targetID); err != nil {
			t.Fatalf("MoveLeader: %v", err)
		}
		st, err = lcli.Status(ctx, c.members[lead].clientURL)
		if err != nil || st.Leader != targetID {
			t.Fatalf("after MoveLeader the old leader sees leader %x (%v), want %x", st.Leader, err, targetID)
		}
		mustPut(t, c.client(), "after", "move")
	})
}

// TestDowngrade: etcd's answers to a malformed target and to cancel; a well-formed
// target is refused by ours (there is no older MetaStore to go to) where etcd accepts
// 3.6; a target etcd cannot go to is refused by both with the same error.
func TestDowngrade(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		defer c.close()
		cli := c.client()
		ctx := ctxT(t)
		if _, err := cli.Downgrade(ctx, clientv3.DowngradeValidate, "abc"); !errors.Is(err, rpctypes.ErrWrongDowngradeVersionFormat) {
			t.Errorf("validate abc: %v", err)
		}
		for _, v := range []string{"3.5", "3.7", "3.8"} {
			if _, err := cli.Downgrade(ctx, clientv3.DowngradeValidate, v); !errors.Is(err, rpctypes.ErrInvalidDowngradeTargetVersion) {
				t.Errorf("validate %s: %v", v, err)
			}
		}
		resp, err := cli.Downgrade(ctx, clientv3.DowngradeCancel, "")
		if err != nil || resp.Version != "3.7" {
			t.Errorf("cancel without a job: %+v %v", resp, err)
		}
		if b.name == "metastore" {
			if _, err := cli.Downgrade(ctx, clientv3.DowngradeEnable, "3.6"); !errors.Is(err, rpctypes.ErrInvalidDowngradeTargetVersion) {
				t.Errorf("enable 3.6: %v", err)
			}
		}
	})
}

// TestStatusAndCorruptAlarm: Status fills what etcd fills; a CORRUPT alarm activated
// through the Alarm call shows in Status's errors as etcd's text, makes every write
// fail with "etcdserver: corrupt cluster" and, disarmed, lets writes through again.
func TestStatusAndCorruptAlarm(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		defer c.close()
		cli := c.client()
		ctx := ctxT(t)
		mustPut(t, cli, "k", "v")
		st, err := cli.Status(ctx, c.members[0].clientURL)
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != "3.7.3" || st.StorageVersion != "3.7.0" || st.DbSizeQuota != 2<<30 || st.DowngradeInfo == nil ||
			st.DowngradeInfo.Enabled || st.Leader != st.Header.MemberId || st.RaftIndex == 0 || st.RaftAppliedIndex != st.RaftIndex ||
			st.RaftTerm == 0 || st.DbSize == 0 || st.DbSizeInUse == 0 || st.DbSizeInUse > st.DbSize || st.IsLearner || len(st.Errors) != 0 {
			t.Errorf("status: %+v", st)
		}
		mc := pb.NewMaintenanceClient(cli.ActiveConnection())
		am := &pb.AlarmMember{MemberID: st.Header.MemberId, Alarm: pb.AlarmType_CORRUPT}
		if _, err := mc.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: am.MemberID, Alarm: am.Alarm}); err != nil {
			t.Fatalf("activate CORRUPT: %v", err)
		}
		st, err = cli.Status(ctx, c.members[0].clientURL)
		// The protobuf text format varies its spacing by binary on purpose (etcd's
		// string may hold two spaces): compare the fields.
		if err != nil || len(st.Errors) != 1 || strings.Join(strings.Fields(st.Errors[0]), " ") != strings.Join(strings.Fields(am.String()), " ") {
			t.Errorf("status errors with CORRUPT: %q %v, want [%q]", st.Errors, err, am.String())
		}
		if _, err := cli.Put(ctx, "k", "w"); !errors.Is(err, rpctypes.ErrCorrupt) {
			t.Errorf("put under CORRUPT: %v", err)
		}
		if _, err := cli.Get(ctx, "k"); err != nil {
			t.Errorf("get under CORRUPT: %v", err)
		}
		if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: am.MemberID, Alarm: am.Alarm}); err != nil {
			t.Fatalf("disarm: %v", err)
		}
		mustPut(t, cli, "k", "after")
	})
}
