package raftlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"
)

// The write-ahead log: the raft log's only durable home. It is a directory of segment
// files named by a hexadecimal sequence number (0000000000000001.wal, ...), written
// oldest to newest, each preallocated to the segment size so that an fdatasync
// rarely has file metadata to write.
//
// A segment is a sequence of records, each
//
//	[4 bytes little-endian body length][4 bytes CRC-32C of the body][body]
//	body = [1 byte record type][payload]
//
// ended by a zero length (the preallocated zeros) or the end of the file. Every
// segment opens with a header: the persisted hard state, snapshot metadata and log
// start as of its creation, written and synced before anything else goes into it, so
// that the older segments can be deleted once the log is compacted past their
// entries. Replaying all segments in order rebuilds the log (see replay).
//
// Only the newest segment may end in a torn record (a crash during a write that was
// never acknowledged): Open cuts it there. A bad record anywhere else is corruption.
const (
	recEntry     byte = 1 // a raftpb.Entry; it discards every entry at or after its index
	recHardState byte = 2 // a raftpb.HardState
	recSnapshot  byte = 3 // a raftpb.Snapshot (metadata, and the received file's path)
	recInstall   byte = 4 // a received raftpb.Snapshot: the log restarts after it
	recStart     byte = 5 // a raftpb.Entry (index and term only): the log starts after it
)

const (
	recHeaderSize = 8
	segmentSuffix = ".wal"
	// DefaultSegmentSize is the preallocated size of a WAL segment (etcd's is 64 MB).
	DefaultSegmentSize = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segment is one WAL file.
type segment struct {
	seq  uint64
	path string
	f    vfs.File
	size int64 // bytes of valid records; the next write goes here
	// maxIndex is the highest entry index written in the segment (0: none). Once the
	// log is compacted to it, a segment that is not the newest can be deleted.
	maxIndex uint64
}

// wal appends records to the newest segment. Only the writer goroutine calls its
// methods, except readAt, which is safe for concurrent use.
type wal struct {
	fs      vfs.FS
	dir     string
	segSize int64
	segs    []*segment // oldest first
	lock    io.Closer
	// cut, set by openWAL: where it cut a torn tail off the newest segment (-1: none).
	cut int64
	// failed is the first error of a write, sync or segment change; once set, every
	// later write fails (see ErrWALFailed).
	failed error
	// onSync, set by Open from Options.OnSync: told every record write's fdatasync.
	onSync func(took time.Duration, bytes int)
}

// ErrWALFailed is returned by every write after one failed. After a failed write or
// fsync the file's durable content is unknown (the kernel may have dropped the dirty
// pages and cleared the error), so retrying could acknowledge a record that is not on
// disk: the member must stop, and a restart replays what really is there.
var ErrWALFailed = errors.New("raftlog: an earlier WAL write or sync failed; the member must stop")

// fail records err as the WAL's failure and returns it.
func (w *wal) fail(err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return err
}

// check returns ErrWALFailed if a write failed before.
func (w *wal) check() error {
	if w.failed != nil {
		return fmt.Errorf("%w: %v", ErrWALFailed, w.failed)
	}
	return nil
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentSuffix) }

// recordBuf collects encoded records for one write.
type recordBuf struct{ b []byte }

// addProto appends a record holding m and returns the offset and length of its
// payload within the buffer.
func (r *recordBuf) addProto(typ byte, m proto.Message) (int64, int, error) {
	start := len(r.b)
	r.b = append(r.b, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	var err error
	if r.b, err = (proto.MarshalOptions{}).MarshalAppend(r.b, m); err != nil {
		r.b = r.b[:start]
		return 0, 0, err
	}
	body := r.b[start+recHeaderSize:]
	binary.LittleEndian.PutUint32(r.b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(r.b[start+4:], crc32.Checksum(body, crcTable))
	return int64(start + recHeaderSize + 1), len(body) - 1, nil
}

func (r *recordBuf) empty() bool { return len(r.b) == 0 }

// openWAL opens (creating it if needed) and locks the WAL in dir on fs, and calls
// visit for every valid record of every segment, oldest first. It cuts a torn tail
// off the newest segment and drops a newest segment whose header never became
// durable.
func openWAL(fs vfs.FS, dir string, segSize int64, visit func(seg *segment, off int64, typ byte, payload []byte) error) (*wal, error) {
	if err := mkdirAllDurable(fs, dir); err != nil {
		return nil, err
	}
	lock, err := fs.Lock(fs.PathJoin(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("raftlog: WAL dir %s is in use by another process: %w", dir, err)
	}
	w := &wal{fs: fs, dir: dir, segSize: segSize, lock: lock, cut: -1}
	seqs, err := listSegments(fs, dir)
	if err != nil {
		w.close()
		return nil, err
	}
	for i, seq := range seqs {
		last := i == len(seqs)-1
		path := fs.PathJoin(dir, segmentName(seq))
		f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			w.close()
			return nil, err
		}
		seg := &segment{seq: seq, path: path, f: f}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			w.close()
			return nil, err
		}
		// The header's records are held back until the whole header has been read:
		// a newest segment whose header is incomplete is dropped below, and none of
		// it may have been visited (its state was never durable).
		hold := &headerHold{visit: func(off int64, typ byte, payload []byte) error {
			return visit(seg, off, typ, payload)
		}}
		n, records, err := scanSegment(f, st.Size(), hold.record)
		if err == nil && !last {
			err = hold.flush()
		}
		if err != nil && !(last && errors.Is(err, errTorn)) {
			f.Close()
			w.close()
			return nil, fmt.Errorf("%w: WAL segment %s: %v", ErrCorrupt, segmentName(seq), err)
		}
		seg.size = n
		if last && records < headerRecords {
			// Created, but the crash came before its header was durable: nothing was
			// ever written after it. The previous segment (if any) goes on.
			f.Close()
			if err := fs.Remove(path); err != nil {
				w.close()
				return nil, err
			}
			if err := syncDir(fs, dir); err != nil {
				w.close()
				return nil, err
			}
			break
		}
		if last && err != nil {
			// A torn tail: cut it, and preallocate again.
			w.cut = n
			if err := cutTail(f, n, segSize); err != nil {
				f.Close()
				w.close()
				return nil, err
			}
			if err := f.SyncData(); err != nil {
				f.Close()
				w.close()
				return nil, err
			}
		}
		w.segs = append(w.segs, seg)
	}
	return w, nil
}

// headerRecords is the number of records in a segment header.
const headerRecords = 3

// headerHold passes a segment's records on to visit, holding back the header's until
// all headerRecords of them have been read.
type headerHold struct {
	visit func(off int64, typ byte, payload []byte) error
	held  []heldRecord
	done  bool
}

type heldRecord struct {
	off     int64
	typ     byte
	payload []byte
}

func (h *headerHold) record(off int64, typ byte, payload []byte) error {
	if h.done {
		return h.visit(off, typ, payload)
	}
	h.held = append(h.held, heldRecord{off, typ, slices.Clone(payload)})
	if len(h.held) < headerRecords {
		return nil
	}
	return h.flush()
}

// flush visits the held records (a header read whole, or an older segment's short one).
func (h *headerHold) flush() error {
	h.done = true
	for _, r := range h.held {
		if err := h.visit(r.off, r.typ, r.payload); err != nil {
			return err
		}
	}
	h.held = nil
	return nil
}

var errTorn = errors.New("torn or corrupt record")

// scanSegment calls fn for every valid record of the first size bytes of f and returns
// the size of the valid prefix and the number of records in it; errTorn if it ended
// at a bad record. It reads at most 1 MiB ahead and allocates at most the largest
// record's body (a record claiming to go past size is torn, not read).
func scanSegment(f io.ReaderAt, size int64, fn func(off int64, typ byte, payload []byte) error) (int64, int, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	var (
		off     int64
		records int
		hdr     [recHeaderSize]byte
		body    []byte
	)
	for {
		if off+recHeaderSize > size {
			return off, records, nil
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, records, err
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:]))
		crc := binary.LittleEndian.Uint32(hdr[4:])
		if n == 0 && crc == 0 {
			return off, records, nil // the preallocated zeros
		}
		if n == 0 || off+recHeaderSize+n > size {
			return off, records, errTorn
		}
		body = slices.Grow(body[:0], int(n))[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return off, records, err
		}
		if crc32.Checksum(body, crcTable) != crc {
			return off, records, errTorn
		}
		if err := fn(off+recHeaderSize+1, body[0], body[1:]); err != nil {
			return off, records, err
		}
		records++
		off += recHeaderSize + n
	}
}

func listSegments(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, name := range names {
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 16, 64)
		if err != nil || segmentName(seq) != name {
			return nil, fmt.Errorf("%w: unexpected file %s in the WAL dir", ErrCorrupt, name)
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// write appends recs to the newest segment and fdatasyncs it; when they do not fit,
// it first rolls to a new segment whose header header() encodes. It returns the
// segment written and the offset at which recs start in it.
//
// Any failure is sticky: this and every later write return an error (ErrWALFailed
// after the first), and nothing is ever acknowledged after it.
func (w *wal) write(recs *recordBuf, header func() *recordBuf) (*segment, int64, error) {
	if err := w.check(); err != nil {
		return nil, 0, err
	}
	cur := w.current()
	if cur == nil || (cur.size+int64(len(recs.b)) > w.segSize && cur.size > 0) {
		var err error
		if cur, err = w.roll(header()); err != nil {
			return nil, 0, w.fail(err)
		}
	}
	base := cur.size
	if _, err := cur.f.WriteAt(recs.b, base); err != nil {
		return nil, 0, w.fail(err)
	}
	start := time.Now()
	if err := cur.f.SyncData(); err != nil {
		return nil, 0, w.fail(err)
	}
	if w.onSync != nil {
		w.onSync(time.Since(start), len(recs.b))
	}
	cur.size += int64(len(recs.b))
	return cur, base, nil
}

func (w *wal) current() *segment {
	if len(w.segs) == 0 {
		return nil
	}
	return w.segs[len(w.segs)-1]
}

// roll creates the next segment with header hdr, durably, and makes it current.
func (w *wal) roll(hdr *recordBuf) (*segment, error) {
	var seq uint64 = 1
	if cur := w.current(); cur != nil {
		seq = cur.seq + 1
	}
	path := w.fs.PathJoin(w.dir, segmentName(seq))
	// Never reuse a file of that name (vfs.FS.Create may truncate one): it would be
	// a segment this WAL does not know about.
	if _, err := w.fs.Stat(path); err == nil {
		return nil, fmt.Errorf("%w: WAL segment %s exists already", ErrCorrupt, segmentName(seq))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := w.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	preallocate(f, w.segSize)
	if _, err := f.WriteAt(hdr.b, 0); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(w.fs, w.dir); err != nil {
		f.Close()
		return nil, err
	}
	seg := &segment{seq: seq, path: path, f: f, size: int64(len(hdr.b))}
	w.segs = append(w.segs, seg)
	return seg, nil
}

// release deletes the oldest segments, other than the newest, whose entries are all
// at or below index (the log start, durably recorded in a newer segment).
func (w *wal) release(index uint64) error {
	if err := w.check(); err != nil {
		return err
	}
	n := 0
	for n < len(w.segs)-1 && w.segs[n].maxIndex <= index {
		n++
	}
	if n == 0 {
		return nil
	}
	old := slices.Clone(w.segs[:n])
	w.segs = slices.Delete(w.segs, 0, n)
	for _, seg := range old {
		seg.f.Close()
	}
	for _, seg := range old {
		if err := w.fs.Remove(seg.path); err != nil {
			return w.fail(err)
		}
	}
	if err := syncDir(w.fs, w.dir); err != nil {
		return w.fail(err)
	}
	return nil
}

// readAt reads n payload bytes at off in seg.
func readAt(seg *segment, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := seg.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: reading WAL segment %s at %d: %v", ErrCorrupt, segmentName(seg.seq), off, err)
	}
	return b, nil
}

func (w *wal) close() error {
	var err error
	for _, seg := range w.segs {
		if cerr := seg.f.Close(); err == nil {
			err = cerr
		}
	}
	w.segs = nil
	if w.lock != nil {
		w.lock.Close()
		w.lock = nil
	}
	return err
}

// preallocate reserves size bytes for f; where the file system cannot, writes extend
// the file instead (correct, a little slower to sync).
func preallocate(f vfs.File, size int64) {
	_ = f.Preallocate(0, size)
}

// cutTail makes f end, as far as scanSegment can tell, at n: nothing of a torn write
// after n may survive, or a later, shorter write at n could be followed by an
// unacknowledged record that happens to line up. Files that can be truncated
// (vfs.Default's) are truncated and preallocated again; others get zeros written
// over the tail. The caller syncs.
func cutTail(f vfs.File, n, segSize int64) error {
	if t, ok := f.(interface{ Truncate(int64) error }); ok {
		if err := t.Truncate(n); err != nil {
			return err
		}
		preallocate(f, segSize)
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := n; off < st.Size(); off += int64(len(zeros)) {
		b := zeros[:min(int64(len(zeros)), st.Size()-off)]
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// mkdirAllDurable creates dir and its missing parents, and syncs the parent of each
// one created, so that a power cut cannot lose a directory entry (and with it the
// whole WAL) after the first write was acknowledged.
func mkdirAllDurable(fs vfs.FS, dir string) error {
	var missing []string // deepest first
	for d := dir; ; d = fs.PathDir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if fs.PathDir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(fs, fs.PathDir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
