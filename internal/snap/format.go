// Package snap owns the snapshot of the replicated state machine as it travels between
// members: the stream format, writing it from a point-in-time engine view, saving a
// received stream to a file in the member's snap dir, and installing such a file into
// the engine, crash-safely. It reads and replaces exactly the keys under
// storage.StateMachinePrefixes and never touches the raft log's keys (raftlog).
//
// Stream format (also the file format), all integers unsigned varints:
//
//	"MSSNAP1\n"
//	{ len(key) key len(value) value }      one record per pair, keys ascending, non-empty
//	0                                      end of records (a zero-length key)
//	count                                  number of records
//	crc32c(all bytes before the checksum)  4 bytes, big endian
package snap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// ErrCorrupt is returned when a stream or file is not a complete, valid snapshot.
var ErrCorrupt = errors.New("snap: corrupt snapshot")

const magic = "MSSNAP1\n"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxRecord bounds one key or value, so a corrupt length cannot allocate unboundedly.
const maxRecord = 1 << 30

// readChunk is the first allocation for a record longer than the decoder's buffer;
// the buffer then doubles as the record's bytes arrive.
const readChunk = 64 << 10

// Encoder writes the stream format.
type Encoder struct {
	out   io.Writer
	w     *bufio.Writer
	crc   hash.Hash32
	count uint64
	buf   []byte
	err   error
}

// NewEncoder writes the header to w and returns an encoder for the records.
func NewEncoder(w io.Writer) *Encoder {
	e := &Encoder{out: w, crc: crc32.New(crcTable)}
	e.w = bufio.NewWriterSize(io.MultiWriter(w, e.crc), 256<<10)
	_, e.err = e.w.WriteString(magic)
	return e
}

// Add writes one pair. Keys must be non-empty and ascending.
func (e *Encoder) Add(key, value []byte) error {
	if e.err != nil {
		return e.err
	}
	if len(key) == 0 {
		return fmt.Errorf("snap: empty key")
	}
	e.buf = binary.AppendUvarint(e.buf[:0], uint64(len(key)))
	e.buf = append(e.buf, key...)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(value)))
	_, e.err = e.w.Write(e.buf)
	if e.err == nil {
		_, e.err = e.w.Write(value)
	}
	e.count++
	return e.err
}

// Close writes the trailer and flushes; it does not close the underlying writer.
func (e *Encoder) Close() error {
	if e.err != nil {
		return e.err
	}
	e.buf = binary.AppendUvarint(e.buf[:0], 0)
	e.buf = binary.AppendUvarint(e.buf, e.count)
	if _, e.err = e.w.Write(e.buf); e.err != nil {
		return e.err
	}
	if e.err = e.w.Flush(); e.err != nil {
		return e.err
	}
	// The checksum is not itself checksummed: write it past the MultiWriter.
	_, err := e.out.Write(binary.BigEndian.AppendUint32(nil, e.crc.Sum32()))
	e.err = errClosed
	return err
}

var errClosed = errors.New("snap: encoder closed")

// Decoder reads the stream format.
type Decoder struct {
	r     *bufio.Reader
	crc   hash.Hash32
	count uint64
	key   []byte
	value []byte
	done  bool
	err   error
}

// NewDecoder reads and checks the header from r.
func NewDecoder(r io.Reader) (*Decoder, error) {
	d := &Decoder{r: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(crcTable)}
	hdr := make([]byte, len(magic))
	if _, err := io.ReadFull(d.r, hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(hdr) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, hdr)
	}
	d.crc.Write(hdr)
	return d, nil
}

// Next advances to the next pair. It returns false at the end of the records or on an
// error; Err tells which. At the end the trailer has been checked.
func (d *Decoder) Next() bool {
	if d.done || d.err != nil {
		return false
	}
	klen, err := d.uvarint()
	if err != nil {
		d.err = err
		return false
	}
	if klen == 0 {
		d.done = true
		d.err = d.trailer()
		return false
	}
	if d.key, err = d.bytes(klen, d.key); err != nil {
		d.err = err
		return false
	}
	vlen, err := d.uvarint()
	if err != nil {
		d.err = err
		return false
	}
	if d.value, err = d.bytes(vlen, d.value); err != nil {
		d.err = err
		return false
	}
	d.count++
	return true
}

// Key and Value are valid until the next call to Next.
func (d *Decoder) Key() []byte   { return d.key }
func (d *Decoder) Value() []byte { return d.value }

// Err is the error that stopped Next, nil after a complete, valid stream.
func (d *Decoder) Err() error {
	if d.err == nil && !d.done {
		return fmt.Errorf("%w: not read to the end", ErrCorrupt)
	}
	return d.err
}

// Count is the number of pairs read so far.
func (d *Decoder) Count() uint64 { return d.count }

func (d *Decoder) trailer() error {
	count, err := d.uvarint()
	if err != nil {
		return err
	}
	if count != d.count {
		return fmt.Errorf("%w: %d records, trailer says %d", ErrCorrupt, d.count, count)
	}
	want := d.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(d.r, sum[:]); err != nil {
		return fmt.Errorf("%w: checksum: %v", ErrCorrupt, err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	return nil
}

func (d *Decoder) uvarint() (uint64, error) {
	var buf [binary.MaxVarintLen64]byte
	for i := range buf {
		c, err := d.r.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("%w: truncated: %v", ErrCorrupt, err)
		}
		buf[i] = c
		if c < 0x80 {
			d.crc.Write(buf[:i+1])
			v, n := binary.Uvarint(buf[:i+1])
			if n <= 0 {
				return 0, fmt.Errorf("%w: bad varint", ErrCorrupt)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: varint too long", ErrCorrupt)
}

// bytes reads an n-byte record into buf (reused when large enough). A record longer
// than what buf holds is read in pieces, growing buf as the bytes arrive, so a corrupt
// length on a short stream allocates about what the stream holds, never n.
func (d *Decoder) bytes(n uint64, buf []byte) ([]byte, error) {
	if n > maxRecord {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrCorrupt, n)
	}
	buf = buf[:0]
	for uint64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, max(2*uint64(cap(buf)), readChunk)))
			copy(grown, buf)
			buf = grown
		}
		end := min(uint64(cap(buf)), n)
		m, err := io.ReadFull(d.r, buf[len(buf):end])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, fmt.Errorf("%w: truncated: %v", ErrCorrupt, err)
		}
	}
	d.crc.Write(buf)
	return buf, nil
}
