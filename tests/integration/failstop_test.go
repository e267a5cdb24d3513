package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A member whose raft log can no longer be written does not stay up looking healthy:
// it logs why and exits non-zero, as etcd does on a WAL error. The WAL directory is
// removed under the running member; writing more than a WAL segment (64 MiB) makes
// the next segment's creation fail.
//
// Ours only: real etcd v3.7.3 meets no error from this fault (100 MiB of puts after the
// removal all succeed and it keeps running), so it has nothing to compare; etcd's own
// fail-stop is on WAL write errors it does see (it exits through lg.Fatal).
func TestWALFailureExitsProcess(t *testing.T) {
	c := newCluster(t, binary{"metastore", metastoreBin}, 1)
	m := c.members[0]
	if err := os.RemoveAll(filepath.Join(m.dataDir, "wal")); err != nil {
		t.Fatal(err)
	}
	cli := c.client()
	val := strings.Repeat("v", 1<<20)
	for i := 0; i < 100; i++ {
		if _, err := cli.Put(ctxT(t), "k", val); err != nil {
			t.Logf("put %d failed: %v", i, err)
			break
		}
	}
	select {
	case <-m.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("member still running after its WAL directory was removed; log:\n%s", c.logTail(0))
	}
	if code := m.cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("member exited with code 0 after a WAL failure; log:\n%s", c.logTail(0))
	}
	t.Logf("exit code %d; log tail:\n%s", m.cmd.ProcessState.ExitCode(), lastLines(c.logTail(0), 3))
	if log := c.logTail(0); !strings.Contains(log, "the member has stopped") {
		t.Errorf("the log does not say why the member stopped:\n%s", log)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
