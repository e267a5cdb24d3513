package integration

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDefragGivesSpaceBackWithoutStoppingPuts: after deleting most of the data and
// compacting, Defragment answers once the space is given back (Status's dbSize drops),
// and puts sent while it runs all succeed (ours only: etcd's defrag holds its backend,
// so its puts wait for it).
func TestDefragGivesSpaceBackWithoutStoppingPuts(t *testing.T) {
	c := newCluster(t, ours(), 1)
	cli := c.client()
	ctx := ctxT(t)
	ep := c.members[0].clientURL
	rnd := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 3072)
	for i := range 4000 {
		for j := range buf {
			buf[j] = byte(rnd.Uint32())
		}
		// Incompressible values (the engine compresses its tables).
		if _, err := cli.Put(ctx, fmt.Sprintf("d/%05d", i), base64.StdEncoding.EncodeToString(buf)); err != nil {
			t.Fatal(err)
		}
	}
	full, err := cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	del, err := cli.Delete(ctx, "d/", clientv3.WithPrefix())
	if err != nil || del.Deleted != 4000 {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	// Puts from two writers for as long as the defrag runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var puts, during atomic.Int64
	var defragging atomic.Bool
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := cli.Put(ctx, fmt.Sprintf("w%d/%d", w, i%100), "x"); err != nil {
					errs <- err
					return
				}
				puts.Add(1)
				if defragging.Load() {
					during.Add(1)
				}
			}
		}()
	}
	defragging.Store(true)
	_, derr := cli.Defragment(ctx, ep)
	defragging.Store(false)
	close(stop)
	wg.Wait()
	close(errs)
	if derr != nil {
		t.Fatalf("defragment: %v", derr)
	}
	for err := range errs {
		t.Fatalf("a put during the defrag failed: %v", err)
	}
	after, err := cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dbSize %d -> %d (in use %d -> %d); %d puts, %d of them completed during the defrag",
		full.DbSize, after.DbSize, full.DbSizeInUse, after.DbSizeInUse, puts.Load(), during.Load())
	if after.DbSize >= full.DbSize/2 {
		t.Errorf("dbSize after delete, compaction and defrag = %d, want well below %d", after.DbSize, full.DbSize)
	}
	if after.DbSizeInUse > after.DbSize {
		t.Errorf("dbSizeInUse %d > dbSize %d", after.DbSizeInUse, after.DbSize)
	}
	if _, err := cli.Put(context.Background(), "after", "defrag"); err != nil {
		t.Fatal(err)
	}
}

// `metastore defrag --data-dir`, as `etcdutl defrag --data-dir`: on a stopped member it
// compacts the engine and the member starts with the same keys, revision and HashKV, in
// no more disk space; a running member (its engine locked) and a missing dir are
// refused with etcdutl's message and exit code 1.
func TestOfflineDefrag(t *testing.T) {
	c := newCluster(t, ours(), 1)
	cli := c.client()
	ctx := ctxT(t)
	val := strings.Repeat("v", 2048)
	for i := range 1500 {
		if _, err := cli.Put(ctx, fmt.Sprintf("o/%04d", i%300), val); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "o/01", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	before, wantKVs := allKeys(t, cli)
	rev := before.Header.Revision
	wantHash := sameHash(t, "before", c.hashesAt(t, cli, rev, -1)) // never compacted: etcd answers -1
	dataDir := c.members[0].dataDir

	tool := func(args ...string) (string, int) {
		out, err := exec.Command(metastoreBin, args...).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		default:
			t.Fatal(err)
			return "", -1
		}
	}
	if out, code := tool("defrag", "--data-dir", dataDir); code != 1 || !strings.Contains(out, "Failed to defragment etcd data["+dataDir+"]") {
		t.Errorf("defrag of a running member's data dir: exit %d, %s; want it refused", code, out)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if out, code := tool("defrag", "--data-dir", missing); code != 1 || !strings.Contains(out, "Failed to defragment etcd data["+missing+"]") {
		t.Errorf("defrag of a missing dir: exit %d, %s", code, out)
	}

	c.stop(0)
	sizeBefore := treeSize(t, filepath.Join(dataDir, "db"))
	out, code := tool("defrag", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "finished defragmenting directory") {
		t.Fatalf("defrag of a stopped member: exit %d, %s", code, out)
	}
	if sizeAfter := treeSize(t, filepath.Join(dataDir, "db")); sizeAfter > sizeBefore {
		t.Errorf("the engine takes %d bytes after the defrag, %d before", sizeAfter, sizeBefore)
	}
	c.start(0)
	c.waitReady(0)
	dcli := c.client()
	after, gotKVs := allKeys(t, dcli)
	if after.Header.Revision != rev || len(gotKVs) != len(wantKVs) {
		t.Fatalf("after the defrag: revision %d with %d keys, before %d with %d", after.Header.Revision, len(gotKVs), rev, len(wantKVs))
	}
	if h := sameHash(t, "after", c.hashesAt(t, dcli, rev, -1)); h != wantHash {
		t.Errorf("HashKV(%d) after the defrag %08x, before %08x", rev, h, wantHash)
	}
}

func treeSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
