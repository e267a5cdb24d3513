package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/etcdbin"
)

// runTool runs `metastore args…` and returns its stdout; a failure ends the test.
func runTool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(metastoreBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("metastore %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// snapshotStatus is `metastore snapshot status FILE -w json`, in etcdutl's JSON.
func snapshotStatus(t *testing.T, file string) (st struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int64  `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}) {
	t.Helper()
	out := runTool(t, "snapshot", "status", file, "-w", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status output %q: %v", out, err)
	}
	return st
}

// allKeys reads every key of the store at the current revision, as one range.
func allKeys(t *testing.T, cli *clientv3.Client) (*clientv3.GetResponse, []*mvccpb.KeyValue) {
	t.Helper()
	resp, err := cli.Get(ctxT(t), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	return resp, resp.Kvs
}

// A snapshot saved from a cluster that saw overwrites, deletes and a compaction,
// restored into a NEW three-member cluster: the same keys, values, create and mod
// revisions and versions, the same revision and compacted revision, the same HashKV
// on every member as on the old cluster; and new member and cluster IDs.
func TestSnapshotRestoreNewCluster(t *testing.T) {
	src := newCluster(t, ours(), 3)
	cli := src.client()
	ctx := ctxT(t)
	for i := range 300 {
		k := fmt.Sprintf("key%03d", i%120)
		if _, err := cli.Put(ctx, k, fmt.Sprintf("value-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "key01", clientv3.WithPrefix()); err != nil { // key010..key019
		t.Fatal(err)
	}
	mid, err := cli.Put(ctx, "key000", "before compaction")
	if err != nil {
		t.Fatal(err)
	}
	compactRev := mid.Header.Revision
	if _, err := cli.Compact(ctx, compactRev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := cli.Put(ctx, fmt.Sprintf("after%02d", i), strings.Repeat("x", i*100)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "after07"); err != nil {
		t.Fatal(err)
	}
	before, wantKVs := allKeys(t, cli)
	rev := before.Header.Revision
	srcHash := sameHash(t, "old cluster", src.hashesAt(t, cli, rev, compactRev))
	oldMembers, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "backup.db")
	runTool(t, "snapshot", "save", src.members[1].clientURL, file)
	st := snapshotStatus(t, file)
	if fi, err := os.Stat(file); err != nil || st.TotalSize != fi.Size() || st.Revision != rev || st.TotalKey < int64(len(wantKVs)) {
		t.Fatalf("status %+v at revision %d with %d live keys (file: %v)", st, rev, len(wantKVs), err)
	}
	if _, err := os.Stat(file + ".part"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("save left %s.part behind: %v", file, err)
	}

	dst := restoredCluster(t, file, 3)
	dcli := dst.client()
	after, gotKVs := allKeys(t, dcli)
	if after.Header.Revision != rev {
		t.Errorf("restored revision %d, saved at %d", after.Header.Revision, rev)
	}
	if len(gotKVs) != len(wantKVs) {
		t.Fatalf("restored %d keys, saved %d", len(gotKVs), len(wantKVs))
	}
	for i, w := range wantKVs {
		g := gotKVs[i]
		if string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) || g.CreateRevision != w.CreateRevision ||
			g.ModRevision != w.ModRevision || g.Version != w.Version {
			t.Errorf("key %d: restored %v, saved %v", i, g, w)
		}
	}
	if _, err := dcli.Get(ctxT(t), "key000", clientv3.WithRev(compactRev-1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("a read below the saved compaction: %v, want %v", err, rpctypes.ErrCompacted)
	}
	if h := sameHash(t, "restored cluster", dst.hashesAt(t, dcli, rev, compactRev)); h != srcHash {
		t.Errorf("restored HashKV(%d) = %08x, old cluster's %08x", rev, h, srcHash)
	}

	newMembers, err := dcli.MemberList(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(newMembers.Members) != 3 || newMembers.Header.ClusterId == oldMembers.Header.ClusterId {
		t.Fatalf("restored cluster %x with %d members; old cluster %x", newMembers.Header.ClusterId, len(newMembers.Members), oldMembers.Header.ClusterId)
	}
	for _, m := range newMembers.Members {
		if slices.ContainsFunc(oldMembers.Members, func(o *pb.Member) bool { return o.ID == m.ID }) {
			t.Errorf("restored member %s kept its old ID %x", m.Name, m.ID)
		}
	}
	// The new cluster takes writes on top of the restored revision.
	if resp, err := dcli.Put(ctxT(t), "new", "write"); err != nil || resp.Header.Revision != rev+1 {
		t.Fatalf("put on the restored cluster: %v, %v", resp, err)
	}
}

// restore --bump-revision N --mark-compacted, as etcdutl's (checked by hand against
// etcdutl and etcd v3.7.3: a store saved at revision 5, bumped by 100, serves revision
// 105 with the same keys and mod revisions, reads and watches from 104 down are
// compacted, reads at 105 work, compaction at 105 is "compacted", and the next put is
// at 106). Either flag alone is refused with etcdutl's message.
func TestSnapshotRestoreBumpRevision(t *testing.T) {
	src := newCluster(t, ours(), 1)
	cli := src.client()
	for i := range 5 {
		mustPut(t, cli, fmt.Sprintf("k%d", i%3), fmt.Sprint(i))
	}
	before, wantKVs := allKeys(t, cli)
	rev := before.Header.Revision
	file := filepath.Join(t.TempDir(), "backup.db")
	runTool(t, "snapshot", "save", src.members[0].clientURL, file)

	for _, args := range [][]string{{"--bump-revision", "100"}, {"--mark-compacted"}} {
		cmd := exec.Command(metastoreBin, append([]string{"snapshot", "restore", file, "--data-dir", filepath.Join(t.TempDir(), "x")}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--mark-compacted required if --revision-bump > 0") {
			t.Errorf("restore %v: %v, %s; want etcdutl's refusal", args, err, out)
		}
	}

	const bump = 100
	dst := restoredCluster(t, file, 1, "--bump-revision", fmt.Sprint(bump), "--mark-compacted")
	dcli := dst.client()
	after, gotKVs := allKeys(t, dcli)
	if after.Header.Revision != rev+bump {
		t.Errorf("restored revision %d, want %d+%d", after.Header.Revision, rev, bump)
	}
	if len(gotKVs) != len(wantKVs) {
		t.Fatalf("restored %d keys, saved %d", len(gotKVs), len(wantKVs))
	}
	for i, w := range wantKVs {
		if g := gotKVs[i]; string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) || g.ModRevision != w.ModRevision || g.Version != w.Version {
			t.Errorf("key %d: restored %v, saved %v", i, g, w)
		}
	}
	ctx := ctxT(t)
	if _, err := dcli.Get(ctx, "k0", clientv3.WithRev(rev+bump-1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("a read at %d: %v, want %v", rev+bump-1, err, rpctypes.ErrCompacted)
	}
	if _, err := dcli.Get(ctx, "k0", clientv3.WithRev(rev+bump)); err != nil {
		t.Errorf("a read at the bumped revision %d: %v", rev+bump, err)
	}
	if _, err := dcli.Compact(ctx, rev+bump); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("compaction at %d: %v, want %v", rev+bump, err, rpctypes.ErrCompacted)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wr := <-dcli.Watch(wctx, "k0", clientv3.WithRev(rev))
	if wr.CompactRevision != rev+bump || !wr.Canceled {
		t.Errorf("a watch from %d: compact revision %d, canceled %v; want %d, true", rev, wr.CompactRevision, wr.Canceled, rev+bump)
	}
	if resp, err := dcli.Put(ctx, "new", "write"); err != nil || resp.Header.Revision != rev+bump+1 {
		t.Fatalf("put on the bumped cluster: %v, %v; want revision %d", resp, err, rev+bump+1)
	}
	dst.stop(0)
	dst.start(0)
	dst.waitReady(0)
	if resp, err := dst.client().Put(ctxT(t), "new", "again"); err != nil || resp.Header.Revision != rev+bump+2 {
		t.Fatalf("put after a restart: %v, %v; want revision %d", resp, err, rev+bump+2)
	}
}

// restoredCluster restores file into n new data dirs with `metastore snapshot restore`
// and starts them as a new cluster.
func restoredCluster(t *testing.T, file string, n int, restoreArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: ours()}
	initial := c.planMembers("r", n)
	for _, m := range c.members {
		runTool(t, append([]string{"snapshot", "restore", file, "--data-dir", m.dataDir, "--name", m.name,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "restored-" + t.Name(),
			"--initial-advertise-peer-urls", m.peerURL}, restoreArgs...)...)
		// The start needs only the data dir and the listeners, as after etcdutl's restore.
		m.args = []string{"--name", m.name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL}
	}
	t.Cleanup(c.close)
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	return c
}

// fileNames lists the files and dirs under dir, but inside the engine's and the WAL's
// own dirs, whose files come and go as they work.
func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		names = append(names, rel)
		if d.IsDir() && (rel == "db" || rel == "wal") {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A client that stops reading a snapshot stream after its first chunks holds up neither
// writes nor a physical compaction; once it cancels it sees an error, the member keeps
// serving (a write, a whole snapshot after), and the stream left nothing
// on disk: no new file in the data dir, and the server ended the stream.
func TestSnapshotStreamCut(t *testing.T) {
	c := newCluster(t, ours(), 1)
	cli := c.client()
	value := strings.Repeat("v", 100<<10)
	for i := range 200 { // about 20 MB: many 1 MiB chunks
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("big%03d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	filesBefore := fileNames(t, c.members[0].dataDir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for range 2 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.RemainingBytes == 0 || resp.Version == "" {
			t.Errorf("a data chunk with remaining_bytes %d, version %q", resp.RemainingBytes, resp.Version)
		}
		got += len(resp.Blob)
	}
	// The client reads no more and the server's sends fill the stream's window: apply
	// and compaction go on meanwhile.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	put, err := cli.Put(wctx, "big000", "overwritten while the snapshot is held")
	if err != nil {
		t.Fatalf("put while a snapshot stream is open: %v", err)
	}
	if _, err := cli.Compact(wctx, put.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("physical compaction while a snapshot stream is open: %v", err)
	}
	cancel()
	for {
		_, err := stream.Recv()
		if err != nil {
			if !errors.Is(clientv3.ContextError(ctx, err), context.Canceled) {
				t.Errorf("after cancel: %v", err)
			}
			break
		}
	}
	t.Logf("cancelled after %d bytes", got)

	waitLog(t, c, 0, "database snapshot stream ended early")
	if _, err := cli.Put(ctxT(t), "after", "cut"); err != nil {
		t.Fatalf("put after a cut snapshot stream: %v", err)
	}
	file := filepath.Join(t.TempDir(), "whole.db")
	runTool(t, "snapshot", "save", c.members[0].clientURL, file)
	if st := snapshotStatus(t, file); st.TotalSize < 199*100<<10 { // all but the compacted version
		t.Errorf("whole snapshot after the cut: %+v", st)
	}
	if after := fileNames(t, c.members[0].dataDir); !slices.Equal(after, filesBefore) {
		t.Errorf("data dir before the stream: %v, after: %v", filesBefore, after)
	}
}

// waitLog waits (up to 30 s) for member i's log to contain s.
func waitLog(t *testing.T, c *cluster, i int, s string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, _ := os.ReadFile(c.members[i].logPath)
		if bytes.Contains(b, []byte(s)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q; log:\n%s", c.members[i].name, s, c.logTail(i))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// etcdctl snapshot save (etcd v3.7.3's own client, which checks the sha256 digest it
// expects at the end) saves our snapshot; snapshot status reads what it saved, at the
// revision of the writes, and the table format draws etcdutl's columns.
func TestEtcdctlSnapshotSave(t *testing.T) {
	etcdctl := etcdbin.Path("etcdctl")
	if etcdctl == "" {
		t.Skip("no etcdctl binary (scripts/build-etcd.sh)")
	}
	c := newCluster(t, ours(), 1)
	cli := c.client()
	var rev int64
	for i := range 20 {
		resp, err := cli.Put(ctxT(t), fmt.Sprintf("k%02d", i), "v")
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	file := filepath.Join(t.TempDir(), "etcdctl.db")
	out, err := exec.Command(etcdctl, "--endpoints", c.members[0].clientURL, "snapshot", "save", file).CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Snapshot saved at "+file) || !strings.Contains(string(out), "Server version 3.7.0") {
		t.Errorf("etcdctl printed:\n%s", out)
	}
	st := snapshotStatus(t, file)
	if st.Revision != rev || st.TotalKey < 20 || st.Version == "" {
		t.Errorf("status of etcdctl's file: %+v, writes up to revision %d", st, rev)
	}
	table := runTool(t, "snapshot", "status", file, "-w", "table")
	for _, col := range []string{"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION", fmt.Sprintf("%x", st.Hash), fmt.Sprint(rev)} {
		if !strings.Contains(table, col) {
			t.Errorf("table lacks %q:\n%s", col, table)
		}
	}
	// A damaged file is refused, by its digest.
	b, _ := os.ReadFile(file)
	b[len(b)/2] ^= 0xFF
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, b, 0o600)
	if err := exec.Command(metastoreBin, "snapshot", "status", bad).Run(); err == nil {
		t.Error("status of a damaged snapshot succeeded")
	}
}
