package server

import (
	"fmt"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A batch applied slower than --warning-apply-duration is logged with etcd's message
// and fields; a faster one is not.
func TestSlowApplyIsWarnedAsEtcd(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s := &Server{cfg: Config{WarningApplyDuration: 50 * time.Millisecond}, lg: zap.New(core)}
	idx := func(i uint64) *raftpb.Entry { return &raftpb.Entry{Index: &i} }
	start := time.Unix(100, 0)
	s.warnSlowApply([]*raftpb.Entry{idx(7), idx(9)}, start, start.Add(40*time.Millisecond))
	s.warnSlowApply([]*raftpb.Entry{idx(10), idx(12)}, start, start.Add(60*time.Millisecond))
	got := logs.FilterMessage("apply request took too long").All()
	if len(got) != 1 {
		t.Fatalf("warnings = %v, want one", logs.All())
	}
	f := got[0].ContextMap()
	if fmt.Sprint(f["took"]) != "60ms" || fmt.Sprint(f["expected-duration"]) != "50ms" || f["request"] != "2 entries, index 10 to 12" {
		t.Errorf("warning fields = %v", f)
	}
	s.cfg.WarningApplyDuration = 0 // etcd's default, 100ms
	s.warnSlowApply([]*raftpb.Entry{idx(13)}, start, start.Add(90*time.Millisecond))
	if n := logs.FilterMessage("apply request took too long").Len(); n != 1 {
		t.Errorf("a 90ms apply under the 100ms default was warned about")
	}
}
