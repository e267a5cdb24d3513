package snap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// ErrNoState is returned by ReadMeta when the state machine has applied nothing yet.
var ErrNoState = errors.New("snap: state machine has no applied index")

// installBatchBytes is the size at which Install commits a batch and starts another.
const installBatchBytes = 4 << 20

// ReadMeta returns the raft position of the state held by r: the applied index and
// term and the configuration, as the state machine wrote them with its data.
func ReadMeta(r storage.Reader) (*raftpb.SnapshotMetadata, error) {
	get := func(k []byte) ([]byte, error) {
		v, err := r.Get(k)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		return v, err
	}
	iv, err := get(storage.MetaAppliedIndex)
	if err != nil {
		return nil, err
	}
	if iv == nil {
		return nil, ErrNoState
	}
	md := &raftpb.SnapshotMetadata{ConfState: &raftpb.ConfState{}}
	index, err := storage.Uint64(iv)
	if err != nil {
		return nil, fmt.Errorf("snap: applied index: %w", err)
	}
	md.Index = new(index)
	tv, err := get(storage.MetaAppliedTerm)
	if err != nil {
		return nil, err
	}
	var term uint64
	if tv != nil {
		if term, err = storage.Uint64(tv); err != nil {
			return nil, fmt.Errorf("snap: applied term: %w", err)
		}
	}
	md.Term = new(term)
	cv, err := get(storage.MetaConfState)
	if err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(cv, md.ConfState); err != nil {
		return nil, fmt.Errorf("snap: conf state: %w", err)
	}
	md.ConfState = raftpb.EnsureConfState(md.ConfState)
	return md, nil
}

// Write streams every state-machine pair visible in r to w and returns how many.
func Write(w io.Writer, r storage.Reader) (uint64, error) {
	enc := NewEncoder(w)
	for _, p := range storage.StateMachinePrefixes {
		it, err := r.NewIter(storage.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
		if err != nil {
			return 0, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if bytes.Equal(it.Key(), storage.MetaSnapshotInstall) {
				continue
			}
			if err := enc.Add(it.Key(), it.Value()); err != nil {
				it.Close()
				return 0, err
			}
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
	}
	return enc.count, enc.Close()
}

// Snapshotter pins point-in-time states: a storage.Engine, or mvcc.Store, whose
// snapshots are never taken in the middle of an Install.
type Snapshotter interface {
	NewSnapshot() storage.Snapshot
}

// Source takes point-in-time snapshots of a state machine for sending.
type Source struct{ snaps Snapshotter }

// NewSource returns a Source reading snaps. On a member that installs snapshots, snaps
// must be the mvcc.Store over the engine, so that no outgoing snapshot holds half an
// install.
func NewSource(snaps Snapshotter) *Source { return &Source{snaps: snaps} }

// Open pins the current state. The caller must Close the result.
func (s *Source) Open() (*Outgoing, error) {
	es := s.snaps.NewSnapshot()
	md, err := ReadMeta(es)
	if err != nil {
		es.Close()
		return nil, err
	}
	return &Outgoing{snap: es, md: md}, nil
}

// Outgoing is one pinned state, ready to be streamed.
type Outgoing struct {
	snap storage.Snapshot
	md   *raftpb.SnapshotMetadata
}

// Metadata is the raft position of exactly the state WriteTo streams.
func (o *Outgoing) Metadata() *raftpb.SnapshotMetadata { return o.md }

// WriteTo streams the pinned state in the stream format.
func (o *Outgoing) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	_, err := Write(cw, o.snap)
	return cw.n, err
}

// Close releases the pinned state.
func (o *Outgoing) Close() error { return o.snap.Close() }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// checkKey rejects a streamed key outside the state machine: a snapshot must never
// write the raft log's keys.
func checkKey(k []byte) error {
	if !slices.Contains(storage.StateMachinePrefixes, k[0]) || bytes.Equal(k, storage.MetaSnapshotInstall) {
		return fmt.Errorf("%w: key %q outside the state machine", ErrCorrupt, k)
	}
	return nil
}

// Verify reads the file at path to the end and checks its format and checksum.
func Verify(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dec, err := NewDecoder(f)
	if err != nil {
		return 0, err
	}
	for dec.Next() {
		if err := checkKey(dec.Key()); err != nil {
			return 0, err
		}
	}
	return dec.Count(), dec.Err()
}

// Install replaces the engine's state machine with the snapshot file at path.
//
// Crash safety: the file is verified first; then storage.MetaSnapshotInstall is set to
// path and synced; every state-machine prefix is deleted and the pairs are written in
// batches of a few MB; the last batch clears the marker and is synced. A crash
// between the first and the last sync leaves the marker set, and ResumeInstall redoes
// the whole install. Install must not run concurrently with other state-machine
// writers, and it is atomic for readers only when run inside mvcc.Store.Replace, which
// shuts every reader out until the install is done.
func Install(eng storage.Engine, path string) error {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if _, err := Verify(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec, err := NewDecoder(f)
	if err != nil {
		return err
	}

	b := eng.NewBatch()
	if err := b.Set(storage.MetaSnapshotInstall, []byte(path)); err != nil {
		b.Close()
		return err
	}
	if err := b.Commit(true); err != nil {
		b.Close()
		return err
	}
	b.Close()

	b = eng.NewBatch()
	defer func() { b.Close() }()
	marker := storage.MetaSnapshotInstall
	for _, p := range storage.StateMachinePrefixes {
		var err error
		if p == storage.PrefixMeta {
			// Keep the marker: it must survive until the last batch.
			err = b.DeleteRange([]byte{p}, marker)
			if err == nil {
				err = b.DeleteRange(append(bytes.Clone(marker), 0), []byte{p + 1})
			}
		} else {
			err = b.DeleteRange([]byte{p}, []byte{p + 1})
		}
		if err != nil {
			return err
		}
	}
	size := 0
	for dec.Next() {
		if err := checkKey(dec.Key()); err != nil {
			return err
		}
		if err := b.Set(dec.Key(), dec.Value()); err != nil {
			return err
		}
		size += len(dec.Key()) + len(dec.Value())
		if size >= installBatchBytes {
			if err := b.Commit(false); err != nil {
				return err
			}
			b.Close()
			b, size = eng.NewBatch(), 0
		}
	}
	if err := dec.Err(); err != nil {
		return err
	}
	if err := b.Delete(marker); err != nil {
		return err
	}
	return b.Commit(true)
}

// InstallPending returns the path of the snapshot whose install was interrupted, or "".
func InstallPending(eng storage.Reader) (string, error) {
	v, err := eng.Get(storage.MetaSnapshotInstall)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

// ResumeInstall finishes an install a crash interrupted, if any. The file is looked
// up at its recorded path, then under the same name in snapDir (a moved data dir).
func ResumeInstall(eng storage.Engine, snapDir string) error {
	path, err := InstallPending(eng)
	if err != nil || path == "" {
		return err
	}
	if _, err := os.Stat(path); err != nil && snapDir != "" {
		path = filepath.Join(snapDir, filepath.Base(path))
	}
	if err := Install(eng, path); err != nil {
		return fmt.Errorf("snap: resuming the install of %s: %w", path, err)
	}
	return nil
}

// FileName is the name of the snapshot file at (term, index); names sort by position.
func FileName(term, index uint64) string { return fmt.Sprintf("%016x-%016x.snap", term, index) }

func isSnapName(n string) bool { return strings.HasSuffix(n, ".snap") && len(n) == 38 }
