package snap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"testing"
)

// encode returns the stream the Encoder writes for pairs (keys ascending, non-empty).
func encode(tb testing.TB, pairs [][2][]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for _, p := range pairs {
		if err := enc.Add(p[0], p[1]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// decodeAll reads a whole stream; the pairs are copies.
func decodeAll(data []byte) ([][2][]byte, error) {
	dec, err := NewDecoder(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var pairs [][2][]byte
	for dec.Next() {
		pairs = append(pairs, [2][]byte{bytes.Clone(dec.Key()), bytes.Clone(dec.Value())})
	}
	return pairs, dec.Err()
}

// decodeBudget is what decoding len(data) bytes may allocate: the 256 KiB read buffer,
// the pairs' copies and record buffers (at most about twice the bytes present each, as
// they grow by doubling from readChunk) and slack for the fuzzing engine's own work.
func decodeBudget(n int) uint64 {
	return 256<<10 + 2*readChunk + 6*uint64(n) + 1<<20
}

func seedStreams(tb testing.TB) [][]byte {
	few := encode(tb, [][2][]byte{
		{[]byte("\x00k/a"), []byte("1")},
		{[]byte("\x00k/b"), nil},
		{[]byte("\x01meta"), bytes.Repeat([]byte("v"), 300)},
	})
	badSum := bytes.Clone(few)
	badSum[len(badSum)-1] ^= 0xff
	badCount := encode(tb, [][2][]byte{{[]byte("a"), []byte("b")}})
	badCount[len(badCount)-5] = 7 // the trailer's count (checksum not fixed up)
	// A header and a key length of 1 GiB - 1 with no bytes behind it: must not allocate it.
	huge := binary.AppendUvarint([]byte(magic), maxRecord-1)
	tooHuge := binary.AppendUvarint([]byte(magic), maxRecord+1)
	return [][]byte{
		encode(tb, nil),
		few,
		badSum,
		badCount,
		few[:len(few)/2],
		few[:len(few)-1],
		[]byte(magic),
		[]byte(magic[:4]),
		huge,
		tooHuge,
		append([]byte(magic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
}

// FuzzDecoder decodes arbitrary bytes: it must not panic, must allocate about what the
// input holds whatever its length prefixes say, must fail with ErrCorrupt on anything
// that is not a whole valid stream, and what it accepts must encode back to the same
// stream.
func FuzzDecoder(f *testing.F) {
	for _, s := range seedStreams(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		pairs, err := decodeAll(data)
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, decodeBudget(len(data)); got > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(data), got, limit)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		for _, p := range pairs {
			if len(p[0]) == 0 {
				t.Fatal("decoder returned an empty key")
			}
		}
		// The decoder accepts non-minimal varints and unsorted keys, and ignores bytes
		// after the checksum, so the input itself need not be what the Encoder writes;
		// but the pairs must survive another encode and decode unchanged.
		again, err := decodeAll(encode(t, pairs))
		if err != nil {
			t.Fatalf("re-encoded stream does not decode: %v", err)
		}
		if !equalPairs(pairs, again) {
			t.Fatalf("re-encoded stream decodes to %q, want %q", again, pairs)
		}
	})
}

// FuzzEncodeDecode: any pairs the Encoder accepts decode to exactly the same pairs, and
// the stream is canonical (decoding then encoding gives the same bytes). The input is
// cut into pairs by its own bytes: each record is a key length byte, a value length
// byte, then the bytes.
func FuzzEncodeDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 'a', 'b'})
	f.Add([]byte{3, 0, 'k', 'e', 'y', 2, 5, 'z', 'z', 'v', 'a', 'l', 'u', 'e'})
	f.Add(append([]byte{1, 200, 'x'}, bytes.Repeat([]byte{0x80}, 200)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs := pairsFrom(data)
		stream := encode(t, pairs)
		got, err := decodeAll(stream)
		if err != nil {
			t.Fatalf("decoding an encoded stream of %d pairs: %v", len(pairs), err)
		}
		if !equalPairs(got, pairs) {
			t.Fatalf("decoded %q, want %q", got, pairs)
		}
		if again := encode(t, got); !bytes.Equal(again, stream) {
			t.Fatalf("re-encoding changed the stream:\n%x\n%x", again, stream)
		}
		// Any strict prefix of a valid stream is refused.
		if len(stream) > 0 {
			if _, err := decodeAll(stream[:len(data)%len(stream)]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("a truncated stream decoded with err %v", err)
			}
		}
	})
}

// pairsFrom cuts data into pairs with non-empty, distinct, ascending keys.
func pairsFrom(data []byte) [][2][]byte {
	var pairs [][2][]byte
	for len(data) >= 2 {
		kl, vl := 1+int(data[0]), int(data[1])
		data = data[2:]
		kl, vl = min(kl, len(data)), min(vl, max(len(data)-kl, 0))
		if kl == 0 {
			break
		}
		pairs = append(pairs, [2][]byte{data[:kl], data[kl : kl+vl]})
		data = data[kl+vl:]
	}
	slices.SortStableFunc(pairs, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	return slices.CompactFunc(pairs, func(a, b [2][]byte) bool { return bytes.Equal(a[0], b[0]) })
}

func equalPairs(a, b [][2][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y [2][]byte) bool {
		return bytes.Equal(x[0], y[0]) && bytes.Equal(x[1], y[1])
	})
}

// A length prefix just under the limit on a stream that ends at once is refused as
// truncated after allocating at most the first read chunk, not the 1 GiB it claims.
func TestDecoderHugeLengthAllocatesLittle(t *testing.T) {
	for _, n := range []uint64{maxRecord - 1, maxRecord + 1, 1 << 62} {
		data := binary.AppendUvarint([]byte(magic), n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decodeAll(data)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("length %d: err %v, want ErrCorrupt", n, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > decodeBudget(len(data)) {
			t.Fatalf("length %d on a %d-byte stream allocated %d bytes", n, len(data), got)
		}
	}
}
