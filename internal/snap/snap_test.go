package snap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/testengine"
)

func openEngine(t *testing.T) storage.Engine {
	t.Helper()
	eng := testengine.Open(t, t.TempDir(), 0)
	t.Cleanup(func() { eng.Close() })
	return eng
}

func set(t *testing.T, eng storage.Engine, kv ...[]byte) {
	t.Helper()
	b := eng.NewBatch()
	defer b.Close()
	for i := 0; i < len(kv); i += 2 {
		if err := b.Set(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
}

// dump returns every key/value of eng as "k=v" lines.
func dump(t *testing.T, eng storage.Reader) string {
	t.Helper()
	it, err := eng.NewIter(storage.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&buf, "%q=%q\n", it.Key(), it.Value())
	}
	return buf.String()
}

// leaderState fills eng with a state machine at applied index 42, term 7, plus raft
// log keys that must never travel.
func leaderState(t *testing.T, eng storage.Engine, nkeys int) {
	cs, _ := proto.Marshal(&raftpb.ConfState{Voters: []uint64{1, 2, 3}})
	set(t, eng,
		storage.MetaAppliedIndex, storage.PutUint64(42),
		storage.MetaAppliedTerm, storage.PutUint64(7),
		storage.MetaConfState, cs,
		storage.RaftLogKey(5), []byte("leader-log"),
		storage.RaftHardStateKey, []byte("leader-hs"),
	)
	for i := 0; i < nkeys; i++ {
		set(t, eng, storage.VersionKey(fmt.Appendf(nil, "key%05d", i), int64(i+1), 0), bytes.Repeat([]byte{'v'}, 100))
	}
}

func stateMachine(t *testing.T, eng storage.Reader) string {
	it, _ := eng.NewIter(storage.IterOptions{LowerBound: []byte{storage.PrefixMeta}})
	defer it.Close()
	var buf bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&buf, "%q=%q\n", it.Key(), it.Value())
	}
	return buf.String()
}

// A follower that installs a leader's snapshot has exactly the leader's state machine
// and keeps its own raft log.
func TestStreamSaveInstall(t *testing.T) {
	leader, follower := openEngine(t), openEngine(t)
	leaderState(t, leader, 50000) // ~6 MB: more than one install batch
	set(t, follower,
		storage.RaftLogKey(1), []byte("follower-log"),
		storage.MetaKey("stale"), []byte("x"),
		storage.VersionKey([]byte("gone"), 1, 0), []byte("x"))

	out, err := NewSource(leader).Open()
	if err != nil {
		t.Fatal(err)
	}
	md := out.Metadata()
	if md.GetIndex() != 42 || md.GetTerm() != 7 || len(md.GetConfState().GetVoters()) != 3 {
		t.Fatalf("metadata = %v", md)
	}
	// Writes after Open are not part of the snapshot.
	set(t, leader, storage.VersionKey([]byte("later"), 99, 0), []byte("x"))
	var stream bytes.Buffer
	if _, err := out.WriteTo(&stream); err != nil {
		t.Fatal(err)
	}
	out.Close()

	st, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path, err := st.Save(md, &stream)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != FileName(7, 42) {
		t.Fatalf("saved as %s", path)
	}
	if err := Install(follower, path); err != nil {
		t.Fatal(err)
	}
	want := stateMachine(t, leader)
	want = string(bytes.Replace([]byte(want), fmt.Appendf(nil, "%q=%q\n", storage.VersionKey([]byte("later"), 99, 0), "x"), nil, 1))
	if got := stateMachine(t, follower); got != want {
		t.Fatalf("follower state machine differs from the leader's snapshot (%d vs %d bytes)", len(got), len(want))
	}
	if v, err := follower.Get(storage.RaftLogKey(1)); err != nil || string(v) != "follower-log" {
		t.Fatalf("follower raft log = %q, %v", v, err)
	}
	if _, err := follower.Get(storage.RaftHardStateKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("leader hard state travelled: %v", err)
	}
	if p, _ := InstallPending(follower); p != "" {
		t.Fatalf("install marker left: %q", p)
	}
}

// A truncated or altered stream is refused before anything is written.
func TestCorruptStreamRejected(t *testing.T) {
	leader := openEngine(t)
	leaderState(t, leader, 10)
	var stream bytes.Buffer
	if _, err := Write(&stream, leader); err != nil {
		t.Fatal(err)
	}
	md := &raftpb.SnapshotMetadata{Index: new(uint64(42)), Term: new(uint64(7))}
	st, _ := NewStore(t.TempDir())
	good := stream.Bytes()
	for name, bad := range map[string][]byte{
		"truncated": good[:len(good)-10],
		"bitflip":   append(append(bytes.Clone(good[:60]), good[60]^1), good[61:]...),
		"empty":     nil,
	} {
		if _, err := st.Save(md, bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Save = %v, want ErrCorrupt", name, err)
		}
	}
	if files, _ := st.List(); len(files) != 0 {
		t.Fatalf("corrupt streams left files: %v", files)
	}
}

// An install interrupted by a crash (marker set, state half replaced) is redone by
// ResumeInstall; without a marker ResumeInstall does nothing.
func TestResumeInterruptedInstall(t *testing.T) {
	leader, follower := openEngine(t), openEngine(t)
	leaderState(t, leader, 100)
	var stream bytes.Buffer
	Write(&stream, leader)
	st, _ := NewStore(t.TempDir())
	path, err := st.Save(&raftpb.SnapshotMetadata{Index: new(uint64(42)), Term: new(uint64(7))}, &stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := ResumeInstall(follower, st.Dir()); err != nil {
		t.Fatal(err)
	}
	before := dump(t, follower)
	if before != "" {
		t.Fatalf("ResumeInstall without marker wrote %q", before)
	}
	// The crash: marker durable, half of the old state deleted, some new pairs written.
	set(t, follower,
		storage.MetaSnapshotInstall, []byte(path),
		storage.VersionKey([]byte("key00003"), 4, 0), []byte("partial"),
		storage.VersionKey([]byte("old"), 1, 0), []byte("x"))
	if err := ResumeInstall(follower, st.Dir()); err != nil {
		t.Fatal(err)
	}
	if got, want := stateMachine(t, follower), stateMachine(t, leader); got != want {
		t.Fatalf("after resume:\n%s\nwant\n%s", got, want)
	}
	// Files moved with the data dir are found by name.
	os.Rename(path, path+".moved")
	set(t, follower, storage.MetaSnapshotInstall, []byte("/elsewhere/"+filepath.Base(path)))
	os.Rename(path+".moved", path)
	if err := ResumeInstall(follower, st.Dir()); err != nil {
		t.Fatal(err)
	}
}

// Save keeps only the newest DefaultKeep files.
func TestStorePurge(t *testing.T) {
	eng := openEngine(t)
	leaderState(t, eng, 1)
	st, _ := NewStore(t.TempDir())
	for i := uint64(1); i <= 5; i++ {
		var stream bytes.Buffer
		Write(&stream, eng)
		if _, err := st.Save(&raftpb.SnapshotMetadata{Index: new(i * 10), Term: new(uint64(1))}, &stream); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := st.List()
	if len(files) != DefaultKeep || filepath.Base(files[DefaultKeep-1]) != FileName(1, 50) {
		t.Fatalf("files = %v", files)
	}
}
