package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nextWatch returns the next response of wc; the timeout only turns a hang into a
// failure.
func nextWatch(t *testing.T, wc clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-wc:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no watch response within 30s")
	}
	return clientv3.WatchResponse{}
}

// watchEvents reads wc until it has n events, failing on an error response.
func watchEvents(t *testing.T, wc clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) < n {
		r := nextWatch(t, wc)
		if err := r.Err(); err != nil {
			t.Fatalf("watch error after %d events: %v", len(evs), err)
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

func evString(evs []*clientv3.Event) string {
	var s []string
	for _, ev := range evs {
		x := fmt.Sprintf("%s %s@%d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision)
		if ev.Type == mvccpb.PUT {
			x += "=" + string(ev.Kv.Value)
		}
		if ev.PrevKv != nil {
			x += fmt.Sprintf(" prev=%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
		}
		s = append(s, x)
	}
	return strings.Join(s, ", ")
}

// TestWatch runs clientv3.Watch with each option against one fresh member of each
// binary; subtests run in order and share the member, so revisions are known.
func TestWatch(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1, "--watch-progress-notify-interval", "300ms", "--max-request-bytes", "100000")
		cli := c.client()
		ctx := ctxT(t)

		mustPut(t, cli, "p/a", "1")                       // 2
		mustPut(t, cli, "p/b", "1")                       // 3
		mustPut(t, cli, "p/a", "2")                       // 4
		mustPut(t, cli, "q", "1")                         // 5
		if _, err := cli.Delete(ctx, "p/b"); err != nil { // 6
			t.Fatal(err)
		}

		t.Run("WithRev WithPrefix WithPrevKV replays history in order", func(t *testing.T) {
			wc := cli.Watch(ctx, "p/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithPrevKV())
			got := evString(watchEvents(t, wc, 4))
			want := "PUT p/a@2=1, PUT p/b@3=1, PUT p/a@4=2 prev=1@2, DELETE p/b@6 prev=1@3"
			if got != want {
				t.Fatalf("events:\n got %s\nwant %s", got, want)
			}
		})

		t.Run("WithFilterPut sends deletes only", func(t *testing.T) {
			wc := cli.Watch(ctx, "p/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFilterPut())
			if got := evString(watchEvents(t, wc, 1)); got != "DELETE p/b@6" {
				t.Fatalf("events: %s", got)
			}
		})

		t.Run("a txn's events come in one response", func(t *testing.T) {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			wc := cli.Watch(wctx, "t/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
			if r := nextWatch(t, wc); !r.Created {
				t.Fatalf("first response %+v, want created", r)
			}
			_, err := cli.Txn(ctx).Then(clientv3.OpPut("t/1", "a"), clientv3.OpPut("t/2", "b"), clientv3.OpPut("t/3", "c")).Commit() // 7
			if err != nil {
				t.Fatal(err)
			}
			r := nextWatch(t, wc)
			if len(r.Events) != 3 || r.Header.Revision != 7 {
				t.Fatalf("response with %d events at %d, want the txn's 3 at 7", len(r.Events), r.Header.Revision)
			}
		})

		t.Run("WithProgressNotify gets progress while idle", func(t *testing.T) {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			wc := cli.Watch(wctx, "idle", clientv3.WithProgressNotify())
			r := nextWatch(t, wc)
			if !r.IsProgressNotify() || r.Header.Revision != 7 {
				t.Fatalf("response %+v (revision %d), want a progress notification at 7", r, r.Header.Revision)
			}
		})

		t.Run("RequestProgress answers with the current revision", func(t *testing.T) {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			wc := cli.Watch(wctx, "p/", clientv3.WithPrefix(), clientv3.WithRev(2))
			watchEvents(t, wc, 4)
			if err := cli.RequestProgress(wctx); err != nil {
				t.Fatal(err)
			}
			if r := nextWatch(t, wc); !r.IsProgressNotify() || r.Header.Revision != 7 {
				t.Fatalf("response %+v at %d, want progress at 7", r, r.Header.Revision)
			}
		})

		if b.name == "metastore" {
			// etcd v3.7.3 drops a progress request made while a watcher of the stream
			// is still catching up (the client must ask again); we answer it once
			// the stream is synced, after the history, as the issue asks.
			t.Run("RequestProgress while catching up is answered after the history", func(t *testing.T) {
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				wc := cli.Watch(wctx, "p/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithCreatedNotify())
				if r := nextWatch(t, wc); !r.Created {
					t.Fatalf("first response %+v, want created", r)
				}
				if err := cli.RequestProgress(wctx); err != nil {
					t.Fatal(err)
				}
				events := 0
				for {
					r := nextWatch(t, wc)
					if r.IsProgressNotify() {
						if events != 4 || r.Header.Revision != 7 {
							t.Fatalf("progress at %d after %d events, want at 7 after the 4 of history", r.Header.Revision, events)
						}
						break
					}
					events += len(r.Events)
				}
			})
		}

		t.Run("WithFragment splits a response over the request limit", func(t *testing.T) {
			first := int64(0)
			for i := range 8 {
				r := mustPut(t, cli, fmt.Sprintf("big/%d", i), strings.Repeat("v", 90000))
				if first == 0 {
					first = r.Header.Revision
				}
			}
			// The client reassembles the fragments into whole responses.
			wc := cli.Watch(ctx, "big/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithFragment())
			for i, ev := range watchEvents(t, wc, 8) {
				if want := fmt.Sprintf("big/%d", i); string(ev.Kv.Key) != want || len(ev.Kv.Value) != 90000 {
					t.Fatalf("event %d: key %s with %d bytes, want %s", i, ev.Kv.Key, len(ev.Kv.Value), want)
				}
			}
			// On the wire: fragments, each under 100000+512KiB bytes.
			stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(createReq(&pb.WatchCreateRequest{Key: []byte("big/"), RangeEnd: []byte("big0"), StartRevision: first, Fragment: true})); err != nil {
				t.Fatal(err)
			}
			var parts []int
			for {
				r, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if r.Created {
					continue
				}
				parts = append(parts, len(r.Events))
				if !r.Fragment {
					break
				}
			}
			if len(parts) < 2 {
				t.Fatalf("events per response %v, want fragments", parts)
			}
		})

		t.Run("a compacted start revision ends the watch with ErrCompacted", func(t *testing.T) {
			if _, err := cli.Compact(ctx, 5); err != nil {
				t.Fatal(err)
			}
			wc := cli.Watch(ctx, "p/", clientv3.WithPrefix(), clientv3.WithRev(3))
			r := nextWatch(t, wc)
			if !errors.Is(r.Err(), rpctypes.ErrCompacted) || r.CompactRevision != 5 || !r.Canceled {
				t.Fatalf("response %+v (err %v), want compacted at 5", r, r.Err())
			}
			if _, ok := <-wc; ok {
				t.Fatal("watch channel still open after compaction")
			}
		})
	})
}

// TestWatchRequireLeader: a watch made WithRequireLeader ends with ErrNoLeader once
// its member has lost its leader.
func TestWatchRequireLeader(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3)
		cli := c.client(0)
		ctx := clientv3.WithRequireLeader(ctxT(t))
		wc := cli.Watch(ctx, "k", clientv3.WithCreatedNotify())
		if r := nextWatch(t, wc); !r.Created {
			t.Fatalf("first response %+v, want created", r)
		}
		c.kill(1)
		c.kill(2)
		for {
			r, ok := <-wc
			if !ok {
				t.Fatal("channel closed without ErrNoLeader")
			}
			if err := r.Err(); err != nil {
				if !errors.Is(err, rpctypes.ErrNoLeader) {
					t.Fatalf("watch ended with %v, want %v", err, rpctypes.ErrNoLeader)
				}
				return
			}
		}
	})
}

// TestWatchResumesAfterKill: a watcher that resumes from its last revision + 1 after
// its member was killed and restarted sees every revision once.
func TestWatchResumesAfterKill(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 1)
		cli := c.client()
		ctx := ctxT(t)
		for i := range 100 {
			mustPut(t, cli, "r/"+fmt.Sprint(i%7), fmt.Sprint(i)) // 2..101
		}
		wctx, cancel := context.WithCancel(ctx)
		wc := cli.Watch(wctx, "r/", clientv3.WithPrefix(), clientv3.WithRev(2))
		evs := watchEvents(t, wc, 40)
		cancel()
		last := evs[len(evs)-1].Kv.ModRevision
		c.kill(0)
		c.restart(0)
		for i := 100; i < 150; i++ {
			mustPut(t, cli, "r/"+fmt.Sprint(i%7), fmt.Sprint(i))
		}
		g := mustGet(t, cli, "r/", clientv3.WithPrefix())
		final := g.Header.Revision
		wc = cli.Watch(ctx, "r/", clientv3.WithPrefix(), clientv3.WithRev(last+1))
		evs = append(evs, watchEvents(t, wc, int(final-last))...)
		for i, ev := range evs {
			if want := int64(i) + 2; ev.Kv.ModRevision != want || string(ev.Kv.Value) != fmt.Sprint(i) {
				t.Fatalf("event %d: %s, want the put of %d at %d", i, evString([]*clientv3.Event{ev}), i, want)
			}
		}
	})
}

// TestWatchResumesOnAnotherMemberAfterLeaderKill: a watcher on the leader, while
// writes go on, resumes from its last revision + 1 on another member after the leader
// is SIGKILLed, and sees every revision exactly once.
func TestWatchResumesOnAnotherMemberAfterLeaderKill(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3)
		ctx := ctxT(t)
		for i := range 50 {
			mustPut(t, c.client(), "r/"+fmt.Sprint(i%5), fmt.Sprint(i)) // 2..51
		}
		leader := c.leaderIndex(t)
		other := (leader + 1) % 3
		var survivors []int
		for i := range 3 {
			if i != leader {
				survivors = append(survivors, i)
			}
		}
		writer := c.client(survivors...)
		written := make(chan error, 1)
		go func() {
			// Puts retried until they succeed (a retried put may be applied twice:
			// the check below is on revisions, not values).
			for i := 50; i < 150; i++ {
				for {
					wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					_, err := writer.Put(wctx, "r/"+fmt.Sprint(i%5), fmt.Sprint(i))
					cancel()
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						written <- err
						return
					}
				}
			}
			written <- nil
		}()
		wctx, cancel := context.WithCancel(ctx)
		wc := c.client(leader).Watch(wctx, "r/", clientv3.WithPrefix(), clientv3.WithRev(2))
		evs := watchEvents(t, wc, 70)
		cancel()
		c.kill(leader)
		if err := <-written; err != nil {
			t.Fatalf("writes did not finish: %v", err)
		}
		g := mustGet(t, c.client(other), "r/", clientv3.WithPrefix())
		last := evs[len(evs)-1].Kv.ModRevision
		wc = c.client(other).Watch(ctx, "r/", clientv3.WithPrefix(), clientv3.WithRev(last+1))
		evs = append(evs, watchEvents(t, wc, int(g.Header.Revision-last))...)
		for i, ev := range evs {
			if want := int64(i) + 2; ev.Kv.ModRevision != want || ev.Type != mvccpb.PUT {
				t.Fatalf("event %d: %s, want a put at %d", i, evString([]*clientv3.Event{ev}), want)
			}
		}
	})
}
