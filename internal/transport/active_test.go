package transport

import (
	"testing"
	"time"
)

// ActiveSince is when a peer was added or last came back; zero for an unknown peer
// and for one that failed to answer, until it answers again.
func TestActiveSince(t *testing.T) {
	a, b, c := newNode(t, 1, 7, nil), newNode(t, 2, 7, nil), newNode(t, 3, 7, nil)
	before := time.Now()
	a.tr.AddPeer(2, []string{b.srv.URL})
	a.tr.AddPeer(3, []string{c.srv.URL})
	if got := a.tr.ActiveSince(9); !got.IsZero() {
		t.Errorf("ActiveSince(unknown) = %v, want zero", got)
	}
	since := a.tr.ActiveSince(2)
	if since.Before(before) || since.After(time.Now()) {
		t.Errorf("ActiveSince(added peer) = %v, want when it was added (after %v)", since, before)
	}
	c.srv.Close()
	a.tr.ReachablePeers(t.Context(), 2*time.Second)
	if got := a.tr.ActiveSince(3); !got.IsZero() {
		t.Errorf("ActiveSince(peer that did not answer) = %v, want zero", got)
	}
	if got := a.tr.ActiveSince(2); !got.Equal(since) {
		t.Errorf("ActiveSince(peer that answered all along) = %v, want %v unchanged", got, since)
	}
}
