package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// frame is m as a peer's streamBody writes it: the length prefix, then the bytes.
func frame(m []byte) []byte {
	var s streamBody
	s.setFrame(m)
	return append(bytes.Clone(s.h), s.b...)
}

// allocSlack is what one readFrame may allocate beyond the frame's bytes (error values,
// the fuzzing engine's own work meanwhile).
const allocSlack = 1 << 20

// fuzzFrameLimit is the frame bound of a member with etcd's default flags.
const fuzzFrameLimit = uint64(DefaultMaxFrameBytes)

// FuzzReadFrame reads frames from arbitrary bytes as handleStream does: it must not
// panic, must allocate at most the frame limit per frame, must return io.EOF only at a
// frame boundary at the end of the input, and every frame it returns must be the bytes
// that followed its prefix.
func FuzzReadFrame(f *testing.F) {
	hb, err := proto.Marshal(msg(raftpb.MsgHeartbeat, 1, 2, 0))
	if err != nil {
		f.Fatal(err)
	}
	app, err := proto.Marshal(&raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
		Entries: []*raftpb.Entry{{Index: proto.Uint64(5), Term: proto.Uint64(2), Data: []byte("put k v")}}})
	if err != nil {
		f.Fatal(err)
	}
	two := append(frame(hb), frame(app)...)
	f.Add([]byte{})
	f.Add(frame(nil))
	f.Add(frame(hb))
	f.Add(two)
	f.Add(two[:len(two)-3])                                                   // truncated frame
	f.Add(binary.AppendUvarint(nil, fuzzFrameLimit))                          // at the limit, no bytes behind
	f.Add(binary.AppendUvarint(nil, fuzzFrameLimit+1))                        // over the limit
	f.Add([]byte{0x80})                                                       // truncated prefix
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}) // prefix overflows
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		rest := data
		for {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b, err := readFrame(br, fuzzFrameLimit)
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > fuzzFrameLimit+allocSlack {
				t.Fatalf("one readFrame allocated %d bytes, limit %d", got, fuzzFrameLimit)
			}
			if err == io.EOF { // readFrame returns it unwrapped at a frame boundary
				if len(rest) != 0 {
					t.Fatalf("io.EOF with %d bytes unread", len(rest))
				}
				return
			}
			if err != nil {
				return // refused: handleStream ends the stream
			}
			n, w := binary.Uvarint(rest)
			if w <= 0 || n != uint64(len(b)) || n > fuzzFrameLimit || !bytes.Equal(rest[w:w+int(n)], b) {
				t.Fatalf("frame of %d bytes does not match its prefix in the input", len(b))
			}
			rest = rest[w+int(n):]
			// handleStream unmarshals each frame: that must not panic either.
			_ = proto.Unmarshal(b, &raftpb.Message{})
		}
	})
}

// Frames as the sender writes them read back one by one, then io.EOF.
func TestReadFrameRoundTrip(t *testing.T) {
	msgs := [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0xab}, 70<<10)}
	var stream []byte
	for _, m := range msgs {
		stream = append(stream, frame(m)...)
	}
	br := bufio.NewReaderSize(bytes.NewReader(stream), 64<<10)
	for i, want := range msgs {
		got, err := readFrame(br, fuzzFrameLimit)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, len(want))
		}
	}
	if _, err := readFrame(br, fuzzFrameLimit); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}
