package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
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
