package raftnode

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/storage/pebble"
)

// With the state machine stalled, the loop blocks handing over committed entries and
// the proposals pile up in the inbox only up to its bound: the ones beyond it are
// refused at once with ErrTooManyProposals (while ProposeAsync runs), the queued bytes
// never pass the bound, and once the state machine moves again every accepted proposal
// is taken by raft and applied.
func TestStalledApplierRefusesProposalsBeyondTheBound(t *testing.T) {
	dir := t.TempDir()
	eng, err := pebble.Open(filepath.Join(dir, "db"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	st, err := raftlog.Open(eng, raftlog.Options{Dir: filepath.Join(dir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const maxProps, maxBytes = 50, 20 << 10 // 1 KiB proposals: the byte bound bites first
	n, err := Start(Config{ID: 1, Peers: []raft.Peer{{ID: 1}}, Storage: st, AppliedState: appliedStateOf(eng),
		Transport: nopTransport{}, ApplyQueue: 1, MaxQueuedProposals: maxProps, MaxQueuedProposalBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	var stalled atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	applierDone := make(chan struct{})
	go func() {
		defer close(applierDone)
		for ap := range n.Apply() {
			if stalled.CompareAndSwap(true, false) {
				close(held)
				<-release
			}
			for _, e := range ap.Entries {
				if e.GetType() == raftpb.EntryConfChange {
					cc := &raftpb.ConfChange{}
					if err := proto.Unmarshal(e.GetData(), cc); err != nil {
						t.Error(err)
					}
					_, _ = n.ApplyConfChange(cc)
				}
			}
			if len(ap.Entries) > 0 {
				n.Applied(ap.Entries[len(ap.Entries)-1].GetIndex())
			}
		}
	}()
	eventually(t, func() string { return "no leader" }, func() bool { return n.IsLeader() })

	// Stall the state machine and fill the Apply channel behind it.
	stalled.Store(true)
	data := make([]byte, 1000)
	propose(t, n, string(data))
	<-held
	// Without waiting for each proposal: once the channel is full the loop blocks, and
	// a proposal queued then is not taken until the applier is released.
	var filling sync.WaitGroup
	eventually(t, func() string { return "the Apply channel never filled" }, func() bool {
		if len(n.applyc) == cap(n.applyc) {
			return true
		}
		filling.Add(1)
		n.ProposeAsync(context.Background(), data, func(error) { filling.Done() })
		return len(n.applyc) == cap(n.applyc)
	})

	var (
		mu                 sync.Mutex
		accepted, refused  int
		acceptedDone       sync.WaitGroup
		maxQueued, maxSize = 0, uint64(0)
	)
	for i := 0; i < 2000; i++ {
		var refusedNow bool
		var inside atomic.Bool
		inside.Store(true)
		acceptedDone.Add(1)
		n.ProposeAsync(context.Background(), data, func(err error) {
			if errors.Is(err, ErrTooManyProposals) {
				if !inside.Load() {
					t.Error("a refusal came after ProposeAsync returned")
				}
				mu.Lock()
				refused++
				mu.Unlock()
				refusedNow = true
			} else if err != nil {
				t.Errorf("accepted proposal ended with %v", err)
			}
			acceptedDone.Done()
		})
		inside.Store(false)
		if !refusedNow {
			mu.Lock()
			accepted++
			mu.Unlock()
		}
		c, b := n.in.queued()
		maxQueued, maxSize = max(maxQueued, c), max(maxSize, b)
	}
	if maxQueued > maxProps || maxSize > maxBytes {
		t.Fatalf("inbox held %d proposals, %d bytes; bound %d, %d", maxQueued, maxSize, maxProps, maxBytes)
	}
	if refused < 2000-3*maxProps {
		t.Fatalf("%d of 2000 proposals refused, %d accepted: the stalled loop kept taking them", refused, accepted)
	}

	close(release)
	filling.Wait()
	acceptedDone.Wait() // every accepted proposal reaches raft; the refused were answered
	propose(t, n, "after")
	eventually(t, func() string { return "apply never caught up" }, func() bool {
		return n.AppliedIndex() == n.CommittedIndex() && n.AppliedIndex() > uint64(accepted)
	})
	n.Stop()
	<-applierDone
}
