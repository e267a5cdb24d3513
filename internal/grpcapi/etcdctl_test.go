package grpcapi

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/etcdbin"
)

// etcdctlPath is the real etcdctl the compatibility test drives; the test is skipped
// where it is not installed (override with METASTORE_ETCDCTL).
func etcdctlPath() string {
	if p := os.Getenv("METASTORE_ETCDCTL"); p != "" {
		return p
	}
	return etcdbin.Path("etcdctl")
}

// TestEtcdctlCommands runs the etcdctl commands an operator uses first against the
// gRPC layer (over a fake backend) and checks they succeed with etcd's output.
func TestEtcdctlCommands(t *testing.T) {
	bin := etcdctlPath()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no etcdctl at %s", bin)
	}
	s := startServer(t, Options{})

	run := func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints=" + s.addr, "--command-timeout=5s"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string // substring of the output
		fail  bool   // etcdctl must exit non-zero
	}{
		{args: []string{"put", "foo", "bar"}, want: "OK"},
		{args: []string{"get", "foo"}, want: "foo\nbar\n"},
		{args: []string{"get", "foo", "-w", "json"}, want: `"cluster_id":193,"member_id":161,"revision":2,"raft_term":7`},
		{args: []string{"txn"}, stdin: "\nput a 1\nput b 2\n\n\n", want: "SUCCESS\n\nOK\n\nOK\n"},
		{args: []string{"txn"}, stdin: "\nput a 1\nput a 2\n\n\n", want: "duplicate key given in txn request", fail: true},
		{args: []string{"get", "--stream", "a"}, want: "a\n1\n"},
		{args: []string{"put", "", "x"}, want: "key is not provided", fail: true},
		{args: []string{"del", "foo"}, want: "1"},
		{args: []string{"compaction", "2"}, want: "compacted revision 2"},
		{args: []string{"compaction", "2"}, want: "required revision has been compacted", fail: true},
		{args: []string{"compaction", "99"}, want: "required revision is a future revision", fail: true},
		{args: []string{"endpoint", "health"}, want: "is healthy"},
		{args: []string{"endpoint", "status"}, want: "3.7.3"},
		{args: []string{"endpoint", "status", "-w", "json"}, want: `"leader":161`},
		{args: []string{"member", "list"}, want: "a1, started, m1, http://127.0.0.1:2380"},
		{args: []string{"member", "list", "--consistency=s"}, want: "m1"},
		{args: []string{"alarm", "list"}},
		{args: []string{"alarm", "disarm"}},
		{args: []string{"defrag"}, want: "Finished defragmenting etcd member"},
		{args: []string{"endpoint", "hashkv"}, want: "Unimplemented", fail: true},
	} {
		out, err := run(tc.stdin, tc.args...)
		if (err != nil) != tc.fail || !strings.Contains(out, tc.want) {
			t.Errorf("etcdctl %s: err=%v, output:\n%s\nwant (fail=%v) output containing %q", strings.Join(tc.args, " "), err, out, tc.fail, tc.want)
		}
	}

	// An active alarm makes `endpoint health` fail, and `alarm disarm` clears it.
	s.b.set(func(b *fakeBackend) {
		b.alarms = []*pb.AlarmMember{{MemberID: testMemberID, Alarm: pb.AlarmType_NOSPACE}}
	})
	if out, err := run("", "endpoint", "health"); err == nil || !strings.Contains(out, "Active Alarm(s): NOSPACE") {
		t.Errorf("endpoint health with NOSPACE: %v %q", err, out)
	}
	if out, err := run("", "alarm", "list"); err != nil || out != "memberID:161  alarm:NOSPACE\n" {
		t.Errorf("alarm list: %v %q", err, out)
	}
	if out, err := run("", "alarm", "disarm"); err != nil || !strings.Contains(out, "NOSPACE") {
		t.Errorf("alarm disarm: %v %q", err, out)
	}
	if out, err := run("", "alarm", "list"); err != nil || out != "" {
		t.Errorf("alarm list after disarm: %v %q", err, out)
	}
	if out, err := run("", "endpoint", "health"); err != nil {
		t.Errorf("endpoint health after disarm: %v %q", err, out)
	}
}
