package snap

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metastore/metastore/internal/storage"
)

// writeBackupFile writes eng's state machine as a backup file and returns its path.
func writeBackupFile(t *testing.T, eng storage.Engine) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	es := eng.NewSnapshot()
	defer es.Close()
	n, err := WriteBackup(f, es)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// What etcd's clients check before they keep a snapshot (hasChecksum).
	if n%512 != sha256.Size {
		t.Fatalf("backup of %d bytes: size %% 512 = %d, etcd's clients want %d", n, n%512, sha256.Size)
	}
	return path
}

// A backup reads back whole: every pair, the revision, the cluster version; and a
// restore writes the state machine without the old cluster's raft position and
// identity.
func TestBackupReadAndRestore(t *testing.T) {
	src := openEngine(t)
	leaderState(t, src, 20000)
	set(t, src,
		storage.RevisionKey(7, 0), []byte("x"), storage.RevisionKey(9, 1), []byte("y"),
		storage.MetaClusterVersion, []byte("3.7.0"),
		storage.MetaMembers, []byte("old members"),
		storage.MetaClusterID, storage.PutUint64(99),
		storage.MetaCompactScheduled, []byte("kept"),
	)
	path := writeBackupFile(t, src)

	var seen uint64
	var calls int
	info, err := ReadBackup(path, BackupOptions{Progress: func(read, total int64) { calls++ }}, func(k, v []byte) error {
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if info.Revision != 9 || info.Version != "3.7.0" || info.TotalKeys != seen || seen != 20000+3+2+4 ||
		info.Size != st.Size() || !info.Digest || info.Hash == 0 || calls == 0 {
		t.Fatalf("info %+v, %d pairs seen, %d progress calls", info, seen, calls)
	}

	dst := openEngine(t)
	if _, err := RestoreBackup(dst, path, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	got := dump(t, dst)
	for _, gone := range [][]byte{storage.MetaAppliedIndex, storage.MetaAppliedTerm, storage.MetaConfState, storage.MetaMembers, storage.MetaClusterID} {
		if _, err := dst.Get(gone); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("restore kept %q", gone)
		}
	}
	for _, kept := range []string{"key00000", "key19999", "compact_scheduled", "cluster_version"} {
		if !strings.Contains(got, kept) {
			t.Errorf("restore lost %s", kept)
		}
	}
	if _, err := dst.Get(storage.RaftLogKey(5)); !errors.Is(err, storage.ErrNotFound) {
		t.Error("a raft log key travelled in a backup")
	}
}

// A damaged, cut or digest-less file is refused; SkipHash reads a stream without one.
func TestBackupRefusesDamage(t *testing.T) {
	src := openEngine(t)
	leaderState(t, src, 100)
	path := writeBackupFile(t, src)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	flipped := append([]byte(nil), data...)
	flipped[len(flipped)-40] ^= 1 // in the padding: only the digest sees it
	if _, err := ReadBackup(write(flipped), BackupOptions{}, nil); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("flipped padding byte: %v", err)
	}
	flipped = append([]byte(nil), data...)
	flipped[20] ^= 1 // in a record: the stream's own checksum sees it first
	if _, err := ReadBackup(write(flipped), BackupOptions{SkipHash: true}, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped record byte with SkipHash: %v", err)
	}
	if _, err := ReadBackup(write(data[:len(data)-1]), BackupOptions{}, nil); !errors.Is(err, ErrNoDigest) {
		t.Errorf("cut file: %v", err)
	}

	// A plain stream (a member's received snapshot file) has no digest.
	es := src.NewSnapshot()
	defer es.Close()
	var plain strings.Builder
	if _, err := Write(&plain, es); err != nil {
		t.Fatal(err)
	}
	p := write([]byte(plain.String()))
	if _, err := ReadBackup(p, BackupOptions{}, nil); !errors.Is(err, ErrNoDigest) && !errors.Is(err, ErrCorrupt) {
		t.Errorf("plain stream without SkipHash: %v", err)
	}
	if info, err := ReadBackup(p, BackupOptions{SkipHash: true}, nil); err != nil || info.Digest {
		t.Errorf("plain stream with SkipHash: %+v, %v", info, err)
	}
}
