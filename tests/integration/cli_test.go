package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func ours() binary { return binary{"metastore", metastoreBin} }

// TestVersion: --version prints the etcd API version first, as tools read it.
func TestVersion(t *testing.T) {
	out, err := exec.Command(metastoreBin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if lines[0] != "etcd Version: 3.7.3" || !strings.HasPrefix(lines[1], "MetaStore Version: ") ||
		!strings.HasPrefix(lines[2], "Git SHA: ") || !strings.HasPrefix(lines[3], "Go Version: ") ||
		!strings.HasPrefix(lines[4], "Go OS/Arch: ") {
		t.Fatalf("--version printed:\n%s", out)
	}
}

// TestUnknownFlag: a flag etcd does not have is an error (exit 2), as in etcd.
func TestUnknownFlag(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		cmd := exec.Command(b.path, "--no-such-flag")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "flag provided but not defined: -no-such-flag") {
			t.Fatalf("err %v, stderr %q", err, stderr.String())
		}
	})
}

// TestRefusesEtcdDataDir: a data dir in etcd's own (bbolt) layout is refused clearly.
func TestRefusesEtcdDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte("bbolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	cmd := exec.Command(metastoreBin, "--data-dir", dir,
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", ports[1]))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "etcd (bbolt)") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

// TestRestartKeepsData: SIGTERM stops a member cleanly; started again with the same
// arguments it serves its data, and the --initial-cluster flags no longer matter.
func TestRestartKeepsData(t *testing.T) {
	c := newCluster(t, ours(), 1)
	mustPut(t, c.client(), "persist", "me")
	c.stop(0)
	c.members[0].args = append(c.members[0].args, "--initial-cluster-token", "ignored-now")
	c.restart(0)
	g := mustGet(t, c.client(), "persist")
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "me" || g.Header.Revision != 2 {
		t.Fatalf("after restart: %+v", g)
	}
}

// TestUnixSocketAndPortZero: clients can be served on a unix socket, and port 0 binds.
func TestUnixSocketAndPortZero(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "client.sock")
	ports := freePorts(t, 1)
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	c := &cluster{t: t, bin: ours(), members: []*member{{
		name: "default", dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "log"),
		clientURL: "unix://" + sock,
		args: []string{"--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", "unix://" + sock + ",http://127.0.0.1:0",
			"--advertise-client-urls", "unix://" + sock,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "default=" + peer},
	}}}
	t.Cleanup(c.close)
	c.start(0)
	c.waitReady(0)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"unix://" + sock}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	mustPut(t, cli, "over", "unix")
	if g := mustGet(t, cli, "over"); string(g.Kvs[0].Value) != "unix" {
		t.Fatalf("got %+v", g.Kvs)
	}
}

// TestQuotaNoSpace: past --quota-backend-bytes the NOSPACE alarm is raised and writes
// fail with "mvcc: database space exceeded", while reads, deletes and compaction work;
// after disarming, writes work again.
func TestQuotaNoSpace(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1, "--quota-backend-bytes", fmt.Sprint(256*1024))
		cli := c.client()
		ctx := ctxT(t)
		val := strings.Repeat("x", 16*1024)
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			_, err = cli.Put(ctx, fmt.Sprintf("q/%03d", i), val)
		}
		if !errors.Is(err, rpctypes.ErrNoSpace) || rpctypes.ErrorDesc(err) != "etcdserver: mvcc: database space exceeded" {
			t.Fatalf("writes past the quota: %v", err)
		}
		alarms, aerr := cli.AlarmList(ctx)
		if aerr != nil || len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm.String() != "NOSPACE" {
			t.Fatalf("alarm list: %+v %v", alarms, aerr)
		}
		if _, err := cli.Put(ctx, "small", "1"); !errors.Is(err, rpctypes.ErrNoSpace) {
			t.Fatalf("any write while NOSPACE: %v", err)
		}
		g, err := cli.Get(ctx, "q/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || g.Count == 0 {
			t.Fatalf("read while NOSPACE: %+v %v", g, err)
		}
		d, err := cli.Delete(ctx, "q/", clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("delete while NOSPACE: %v", err)
		}
		if _, err := cli.Compact(ctx, d.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			t.Fatalf("compact while NOSPACE: %v", err)
		}
		// As an operator does: compact, defragment, disarm; then writes work again.
		if _, err := cli.Defragment(ctx, c.members[0].clientURL); err != nil {
			t.Fatalf("defragment: %v", err)
		}
		if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: alarms.Alarms[0].MemberID, Alarm: alarms.Alarms[0].Alarm}); err != nil {
			t.Fatalf("disarm: %v", err)
		}
		if _, err := cli.Put(ctx, "after", "disarm"); err != nil {
			t.Fatalf("write after compact, defrag and disarm: %v", err)
		}
	})
}
