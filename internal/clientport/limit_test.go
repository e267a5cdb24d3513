package clientport

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A connection beyond the limit is closed at once and counted; once one closes,
// another is accepted.
func TestLimitListenerClosesConnectionsBeyondTheLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	l := LimitListener(inner, 2, func() { refused.Add(1) })
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first := <-accepted
	<-accepted
	third := dial()
	// The third is closed by the server: a read sees EOF (or a reset), not a timeout.
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on the connection beyond the limit: %v, want it closed", err)
	}
	if refused.Load() != 1 {
		t.Fatalf("refused = %d, want 1", refused.Load())
	}
	first.Close()
	first.Close() // a second Close does not free another slot
	dial()
	if c := <-accepted; c == nil {
		t.Fatal("no connection accepted after one closed")
	}
	fifth := dial()
	_ = fifth.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := fifth.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on the fifth connection: %v, want it closed (two are open)", err)
	}
	if refused.Load() != 2 {
		t.Fatalf("refused = %d, want 2", refused.Load())
	}
	if LimitListener(inner, 0, nil) != inner {
		t.Error("LimitListener with 0 is not the listener itself")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout() && err != io.EOF
}
