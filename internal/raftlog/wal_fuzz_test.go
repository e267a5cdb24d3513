package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// Fuzz tests of what the WAL reads from disk: a segment's record scan, and a whole
// Open (scan and replay) of a WAL dir holding one arbitrary segment. A disk can hold
// anything after a bug, a bad sector or an operator's mistake; the member must then
// refuse to start with an error or start on a log raft could use, never panic or
// allocate without bound.

type scannedRecord struct {
	off     int64
	typ     byte
	payload []byte
}

func scanAll(data []byte) ([]scannedRecord, int64, int, error) {
	var recs []scannedRecord
	n, count, err := scanSegment(bytes.NewReader(data), int64(len(data)), func(off int64, typ byte, payload []byte) error {
		recs = append(recs, scannedRecord{off, typ, bytes.Clone(payload)})
		return nil
	})
	return recs, n, count, err
}

// fuzzSegmentSeed is a real segment (header and a few records), cut where its
// preallocated zeros start.
func fuzzSegmentSeed(f *testing.F) []byte {
	fs := vfs.NewMem()
	s, err := Open(nopSM{}, Options{Dir: "wal", FS: fs, SegmentSize: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Append(hs(2, 1, 3), ents(1, 5, 2), nil); err != nil {
		f.Fatal(err)
	}
	if err := s.Append(hs(3, 1, 4), ents(4, 6, 3), nil); err != nil {
		f.Fatal(err)
	}
	s.Close()
	names, err := fs.List("wal")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		if name == "LOCK" {
			continue
		}
		file, err := fs.Open(fs.PathJoin("wal", name))
		if err != nil {
			f.Fatal(err)
		}
		st, _ := file.Stat()
		data := make([]byte, st.Size())
		if _, err := file.ReadAt(data, 0); err != nil {
			f.Fatal(err)
		}
		file.Close()
		_, n, _, err := scanAll(data)
		if err != nil {
			f.Fatal(err)
		}
		return data[:n]
	}
	f.Fatal("no segment written")
	return nil
}

type nopSM struct{}

func (nopSM) Sync() error { return nil }

func FuzzScanSegment(f *testing.F) {
	seed := fuzzSegmentSeed(f)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, n, count, err := scanAll(data)
		if err != nil && !errors.Is(err, errTorn) {
			t.Fatalf("scan of an in-memory segment: %v", err)
		}
		if n < 0 || n > int64(len(data)) || count != len(recs) {
			t.Fatalf("valid prefix %d of %d bytes, %d records counted, %d visited", n, len(data), count, len(recs))
		}
		// The valid prefix scans cleanly to the same records, and the records are
		// in it, in order, each where the scan said.
		again, n2, _, err := scanAll(data[:n])
		if err != nil || n2 != n || len(again) != len(recs) {
			t.Fatalf("rescan of the valid prefix: %d bytes, %d records, %v; first scan %d bytes, %d records", n2, len(again), err, n, len(recs))
		}
		for i, r := range recs {
			if r.off < recHeaderSize+1 || r.off+int64(len(r.payload)) > n || data[r.off-1] != r.typ ||
				!bytes.Equal(data[r.off:r.off+int64(len(r.payload))], r.payload) || again[i].off != r.off {
				t.Fatalf("record %d (type %d at %d, %d bytes) is not where the scan reported it", i, r.typ, r.off, len(r.payload))
			}
		}
	})
}

// FuzzOpen opens a WAL dir whose only segment holds the fuzzer's bytes. Open either
// refuses it or returns a log whose indexes, terms and entries agree with each other,
// and opening it again gives the same log (the cut of a torn tail is stable).
func FuzzOpen(f *testing.F) {
	seed := fuzzSegmentSeed(f)
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add(append(bytes.Clone(seed), 9, 0, 0, 0, 1, 2, 3, 4, recEntry))
	f.Fuzz(openSegmentBytes)
}

// FuzzReplay is FuzzOpen with records whose checksums are right: the fuzzer's bytes
// are read as (type, length, payload) triples, so that it explores replay (the
// records' decoding and how they rebuild the log) rather than the checksum.
func FuzzReplay(f *testing.F) {
	var seedRecs []byte
	recs, _, _, _ := scanAll(fuzzSegmentSeed(f))
	for _, r := range recs {
		if len(r.payload) < 256 {
			seedRecs = append(append(seedRecs, r.typ, byte(len(r.payload))), r.payload...)
		}
	}
	f.Add(seedRecs)
	f.Fuzz(func(t *testing.T, data []byte) {
		var seg []byte
		for len(data) >= 2 {
			typ, n := data[0]%8, min(int(data[1]), len(data)-2)
			body := append([]byte{typ}, data[2:2+n]...)
			seg = binary.LittleEndian.AppendUint32(seg, uint32(len(body)))
			seg = binary.LittleEndian.AppendUint32(seg, crc32.Checksum(body, crcTable))
			seg = append(seg, body...)
			data = data[2+n:]
		}
		openSegmentBytes(t, seg)
	})
}

func openSegmentBytes(t *testing.T, data []byte) {
	{
		fs := vfs.NewMem()
		if err := fs.MkdirAll("wal", 0o755); err != nil {
			t.Fatal(err)
		}
		file, err := fs.Create(fs.PathJoin("wal", segmentName(1)), vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		file.Close()
		opts := Options{Dir: "wal", FS: fs, SegmentSize: 1 << 16}
		s, err := Open(nopSM{}, opts)
		if err != nil {
			return // refused: fine, as long as it did not panic
		}
		first := describeLog(t, s)
		s.Close()
		s, err = Open(nopSM{}, opts)
		if err != nil {
			t.Fatalf("a WAL that opened once is refused the second time: %v", err)
		}
		defer s.Close()
		if second := describeLog(t, s); second != first {
			t.Fatalf("reopened log differs:\n%s\nvs\n%s", first, second)
		}
	}
}

// describeLog checks that s's log is usable by raft and returns a description of it.
func describeLog(t *testing.T, s *Storage) string {
	t.Helper()
	firstIdx, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if firstIdx == 0 || last+1 < firstIdx {
		t.Fatalf("first index %d, last index %d", firstIdx, last)
	}
	if _, err := s.Term(firstIdx - 1); err != nil {
		t.Fatalf("Term of the dummy entry %d: %v", firstIdx-1, err)
	}
	var b bytes.Buffer
	hs, _, err := s.InitialState()
	if err != nil {
		t.Fatalf("InitialState: %v", err)
	}
	b.WriteString(hs.String())
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	b.WriteString(snap.GetMetadata().String())
	if last >= firstIdx {
		// Bounded: a fuzzed index range can be huge only if entries exist for it,
		// and each takes bytes of the input.
		es, err := s.Entries(firstIdx, last+1, 1<<30)
		if err != nil {
			t.Fatalf("Entries(%d, %d): %v", firstIdx, last+1, err)
		}
		if uint64(len(es)) != last+1-firstIdx {
			t.Fatalf("Entries(%d, %d) returned %d entries", firstIdx, last+1, len(es))
		}
		for i, e := range es {
			if e.GetIndex() != firstIdx+uint64(i) {
				t.Fatalf("entry %d has index %d", firstIdx+uint64(i), e.GetIndex())
			}
			term, err := s.Term(e.GetIndex())
			if err != nil || term != e.GetTerm() {
				t.Fatalf("Term(%d) = %d, %v; the entry says %d", e.GetIndex(), term, err, e.GetTerm())
			}
			b.WriteString((&raftpb.Entry{Index: e.Index, Term: e.Term, Data: e.Data}).String())
		}
	}
	return b.String()
}
