package snap

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
)

// DefaultKeep is how many received snapshot files a Store keeps.
const DefaultKeep = 3

// Store is a member's snap dir: where received snapshot streams become files.
type Store struct {
	dir  string
	keep int
}

// NewStore creates dir if needed and removes leftovers of interrupted saves.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if strings.HasSuffix(n.Name(), ".tmp") {
			os.Remove(filepath.Join(dir, n.Name()))
		}
	}
	return &Store{dir: dir, keep: DefaultKeep}, nil
}

// Dir is the directory of the store.
func (s *Store) Dir() string { return s.dir }

// Save reads one snapshot stream from r, checking it as it goes, and stores it durably
// (fsync of the file and the directory) as FileName(md.Term, md.Index). It returns the
// file's path. Only after Save returns may the snapshot message be given to raft.
// Older files beyond the newest DefaultKeep are removed.
func (s *Store) Save(md *raftpb.SnapshotMetadata, r io.Reader) (string, error) {
	final := filepath.Join(s.dir, FileName(md.GetTerm(), md.GetIndex()))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	dec, err := NewDecoder(io.TeeReader(r, bw))
	if err != nil {
		return "", err
	}
	for dec.Next() {
		if err := checkKey(dec.Key()); err != nil {
			return "", err
		}
	}
	if err := dec.Err(); err != nil {
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	ok = true
	if err := syncDir(s.dir); err != nil {
		return "", err
	}
	s.purge()
	return final, nil
}

// purge removes all but the newest s.keep snapshot files.
func (s *Store) purge() {
	names, err := s.List()
	if err != nil || len(names) <= s.keep {
		return
	}
	for _, p := range names[:len(names)-s.keep] {
		os.Remove(p)
	}
}

// List returns the paths of the snapshot files, oldest first.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if isSnapName(e.Name()) {
			out = append(out, filepath.Join(s.dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("snap: sync %s: %w", dir, err)
	}
	return nil
}
