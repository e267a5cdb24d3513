package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"runtime"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A frame whose length prefix passes the bound is refused from the prefix alone:
// nothing of its claimed size is allocated, whatever it claims.
func TestOversizedFrameRefusedWithoutAllocating(t *testing.T) {
	prefix := binary.AppendUvarint(nil, 1<<40) // a terabyte, and no body
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		_, err := readFrame(bufio.NewReaderSize(bytes.NewReader(prefix), 16), DefaultMaxFrameBytes)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("oversized frame: %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("refusing 100 oversized frames allocated %d bytes", got)
	}
}

// A peer sending a message larger than the receiver's MaxFrameBytes is refused (400)
// and raft sees nothing; a message within the bound on the same path is delivered.
func TestPeerFrameBound(t *testing.T) {
	const limit = 64 << 10
	b := newNode(t, 2, 7, func(c *Config) { c.MaxFrameBytes = limit })
	post := func(m *raftpb.Message) int {
		t.Helper()
		mb, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		body := append(binary.AppendUvarint(nil, uint64(len(mb))), mb...)
		req, _ := http.NewRequest(http.MethodPost, b.srv.URL+pathMsgs, bytes.NewReader(body))
		req.Header.Set(hdrClusterID, idString(7))
		req.Header.Set(hdrFrom, idString(1))
		req.Header.Set(hdrTo, idString(2))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	big := msg(raftpb.MsgApp, 1, 2, 5)
	big.Entries[0].Data = make([]byte, limit+1)
	if code := post(big); code != http.StatusBadRequest {
		t.Fatalf("oversized message: status %d, want 400", code)
	}
	b.raft.mu.Lock()
	n := len(b.raft.msgs)
	b.raft.mu.Unlock()
	if n != 0 {
		t.Fatalf("raft got %d messages from an oversized frame", n)
	}
	small := msg(raftpb.MsgApp, 1, 2, 5)
	small.Entries[0].Data = make([]byte, limit-1024)
	if code := post(small); code != http.StatusNoContent {
		t.Fatalf("message within the bound: status %d, want 204", code)
	}
	b.raft.waitUntil(t, "the message within the bound", func(f *fakeRaft) bool { return len(f.msgs) == 1 })
}

// The bound for etcd's defaults fits a MsgApp of MaxSizePerMsg and one entry of
// --max-request-bytes, each with room for its fields.
func TestMaxFrameFor(t *testing.T) {
	if got := MaxFrameFor(3<<19, 1<<20); got != DefaultMaxFrameBytes {
		t.Fatalf("MaxFrameFor(etcd defaults) = %d, DefaultMaxFrameBytes %d", got, DefaultMaxFrameBytes)
	}
	if got := MaxFrameFor(10<<20, 1<<20); got < 10<<20+1024 {
		t.Fatalf("MaxFrameFor(10 MiB requests) = %d: no room for one request", got)
	}
}
