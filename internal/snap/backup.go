package snap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"

	"github.com/metastore/metastore/internal/storage"
)

// A backup is what the Maintenance Snapshot RPC streams and `metastore snapshot save`
// (or `etcdctl snapshot save`) writes to a file: the stream format above, then zero
// bytes up to a multiple of BackupAlign, then the SHA-256 of everything before it:
//
//	stream                        as Encoder writes it (its own CRC-32C trailer included)
//	0 … 0                         padding: (stream + padding) % BackupAlign == 0
//	sha256(stream + padding)      32 bytes
//
// etcd's clients accept a snapshot only when its size modulo 512 is 32 (a sha256 after
// 512-byte sectors of bbolt pages), and etcdutl checks the digest the same way; the
// padding makes our stream pass that check and the digest means the same thing. A file
// without the digest (a member's received snap/*.snap file) can still be restored with
// BackupOptions.SkipHash.
const BackupAlign = 512

// ErrNoDigest is returned for a backup whose size does not leave room for a trailing
// SHA-256 digest (size % BackupAlign != sha256.Size).
var ErrNoDigest = errors.New("snap: no sha256 digest at the end of the snapshot")

// ErrDigestMismatch is returned when the trailing SHA-256 does not match the contents.
var ErrDigestMismatch = errors.New("snap: sha256 digest mismatch")

// BackupPadding is the number of zero bytes that follow a stream of n bytes.
func BackupPadding(n int64) int {
	return int((BackupAlign - n%BackupAlign) % BackupAlign)
}

// BackupWriter writes a backup to w: the bytes written to it, then, on Finish, the
// padding and the digest. It counts what it wrote.
type BackupWriter struct {
	w   io.Writer
	sha hash.Hash
	n   int64
}

// NewBackupWriter returns a BackupWriter over w.
func NewBackupWriter(w io.Writer) *BackupWriter {
	return &BackupWriter{w: w, sha: sha256.New()}
}

// Write writes stream bytes.
func (b *BackupWriter) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.sha.Write(p[:n])
	b.n += int64(n)
	return n, err
}

// Pad writes the zero padding after the stream and returns the digest, which the
// caller sends last (the RPC sends it as a message of its own, as etcd does).
func (b *BackupWriter) Pad() ([]byte, error) {
	if _, err := b.Write(make([]byte, BackupPadding(b.n))); err != nil {
		return nil, err
	}
	return b.sha.Sum(nil), nil
}

// Written is the number of bytes written so far (stream and padding).
func (b *BackupWriter) Written() int64 { return b.n }

// WriteBackup streams every state-machine pair visible in r to w as a whole backup,
// digest included, and returns the bytes written.
func WriteBackup(w io.Writer, r storage.Reader) (int64, error) {
	bw := NewBackupWriter(w)
	if _, err := Write(bw, r); err != nil {
		return bw.n, err
	}
	sum, err := bw.Pad()
	if err != nil {
		return bw.n, err
	}
	n, err := w.Write(sum)
	return bw.n + int64(n), err
}

// BackupInfo describes a backup file, as `snapshot status` prints it.
type BackupInfo struct {
	// Hash is the stream's CRC-32C (its own trailer), a short name for the contents.
	Hash uint32
	// Revision is the store's revision: the newest entry of the revision log.
	Revision int64
	// TotalKeys counts every engine pair in the snapshot (all versions, revision log,
	// metadata, leases), as etcdutl counts every bbolt key.
	TotalKeys uint64
	// Size is the file's size in bytes.
	Size int64
	// Version is the cluster version the state machine recorded, "" if none.
	Version string
	// Digest tells whether the file's trailing SHA-256 digest was checked (not with
	// BackupOptions.SkipHash).
	Digest bool
}

// BackupOptions change how a backup is read.
type BackupOptions struct {
	// SkipHash reads a file without checking a trailing digest: a backup whose digest
	// is wrong or missing, or a stream with none (a member's snap/*.snap file).
	SkipHash bool
	// Progress, if set, is called now and then with the bytes read so far and the size.
	Progress func(read, total int64)
}

// ReadBackup reads the backup at path to its end, checking its format, its CRC-32C
// and (unless opts.SkipHash) its SHA-256 digest, and calls fn, if not nil, with every
// pair in order (key and value are valid during the call only). fn's error stops
// the read and is returned. Every pair fn saw is only known good once ReadBackup
// returns nil.
func ReadBackup(path string, opts BackupOptions, fn func(key, value []byte) error) (*BackupInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	info := &BackupInfo{Size: st.Size()}
	body := st.Size()
	// With SkipHash the digest, if any, is read as bytes after the stream.
	hasDigest := !opts.SkipHash
	if hasDigest {
		if body%BackupAlign != sha256.Size {
			return nil, fmt.Errorf("%w [bytes: %d]", ErrNoDigest, st.Size())
		}
		body -= sha256.Size
	}
	sha := sha256.New()
	pr := &progressReader{r: io.LimitReader(f, body), total: st.Size(), fn: opts.Progress}
	src := io.TeeReader(pr, sha)
	dec, err := NewDecoder(src)
	if err != nil {
		return nil, fmt.Errorf("%w (not a MetaStore snapshot: etcd's, a bbolt file, cannot be read)", err)
	}
	for dec.Next() {
		k, v := dec.Key(), dec.Value()
		if err := checkKey(k); err != nil {
			return nil, err
		}
		switch {
		case k[0] == storage.PrefixRevision:
			if main, _, err := storage.ParseRevisionKey(k); err == nil {
				info.Revision = max(info.Revision, main)
			}
		case bytes.Equal(k, storage.MetaClusterVersion):
			info.Version = string(v)
		case bytes.Equal(k, storage.MetaCompactScheduled):
			// A compaction scheduled above the last revision (restore --bump-revision)
			// is the store's revision: see storage.StoreRevision.
			if c, err := storage.Uint64(v); err == nil {
				info.Revision = max(info.Revision, int64(c))
			}
		}
		if fn != nil {
			if err := fn(k, v); err != nil {
				return nil, err
			}
		}
	}
	if err := dec.Err(); err != nil {
		return nil, err
	}
	info.TotalKeys = dec.Count()
	info.Hash = dec.crc.Sum32()
	// The padding (and, with SkipHash, whatever follows the stream) is in the digest.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return nil, err
	}
	if hasDigest {
		want := make([]byte, sha256.Size)
		if _, err := io.ReadFull(f, want); err != nil {
			return nil, err
		}
		if got := sha.Sum(nil); !bytes.Equal(got, want) {
			return nil, fmt.Errorf("%w: file says %x, contents hash to %x", ErrDigestMismatch, want, got)
		}
		info.Digest = true
	}
	if opts.Progress != nil {
		opts.Progress(st.Size(), st.Size())
	}
	return info, nil
}

// restoreDropped are the state-machine keys a restore leaves out: the position of the
// raft log the snapshot came from and the identity of the cluster it ran in. The new
// cluster gets its own from its bootstrap (its members' conf changes, applied from
// index 1), as etcdutl's restore gives a new cluster new member IDs and its own raft
// log. Alarms name members of the old cluster and are dropped too.
var restoreDropped = [][]byte{
	storage.MetaAppliedIndex,
	storage.MetaAppliedTerm,
	storage.MetaConfState,
	storage.MetaMembers,
	storage.MetaConfRefused,
	storage.MetaClusterID,
	storage.MetaAlarms,
	storage.MetaSnapshotInstall,
}

// RestoreBackup writes the state machine of the backup at path into eng, which must
// hold no state machine yet (a new data dir), leaving out restoreDropped. It writes in
// batches as it reads and syncs at the end; on an error the engine holds part of the
// backup and the caller must discard it.
func RestoreBackup(eng storage.Engine, path string, opts BackupOptions) (*BackupInfo, error) {
	b := eng.NewBatch()
	defer func() { b.Close() }()
	size := 0
	info, err := ReadBackup(path, opts, func(k, v []byte) error {
		if slices.ContainsFunc(restoreDropped, func(d []byte) bool { return bytes.Equal(d, k) }) {
			return nil
		}
		if err := b.Set(k, v); err != nil {
			return err
		}
		if size += len(k) + len(v); size >= installBatchBytes {
			if err := b.Commit(false); err != nil {
				return err
			}
			b.Close()
			b, size = eng.NewBatch(), 0
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := b.Commit(true); err != nil {
		return nil, err
	}
	return info, nil
}

// progressReader reports the bytes read through it, every 1 MiB or so.
type progressReader struct {
	r     io.Reader
	n     int64
	last  int64
	total int64
	fn    func(read, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.fn != nil && p.n-p.last >= 1<<20 {
		p.last = p.n
		p.fn(p.n, p.total)
	}
	return n, err
}
