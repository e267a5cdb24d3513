package auth

import (
	"bytes"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/storage/pebble"
)

// newState applies reqs, as root, on an empty engine and returns the state.
func newState(t testing.TB, reqs ...*pb.InternalRaftRequest) *State {
	t.Helper()
	eng, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	st, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		r.Header = &pb.RequestHeader{Username: RootUser}
		b := eng.NewBatch()
		n, _, err := Apply(st, b, r)
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		st = n
	}
	// What was written loads back to the same answers.
	re, err := Load(eng)
	if err != nil {
		t.Fatal(err)
	}
	if re.Revision() != st.Revision() || re.Enabled() != st.Enabled() || len(re.UserNames()) != len(st.UserNames()) {
		t.Fatalf("reloaded state differs: rev %d/%d", re.Revision(), st.Revision())
	}
	return re
}

func setup(perms ...*authpb.Permission) []*pb.InternalRaftRequest {
	reqs := []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", Options: &authpb.UserAddOptions{NoPassword: true}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: RootRole}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "u", Options: &authpb.UserAddOptions{NoPassword: true}}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "u", Role: "r"}},
	}
	for _, p := range perms {
		reqs = append(reqs, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: p}})
	}
	return append(reqs, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
}

func perm(t authpb.Permission_Type, key, end string) *authpb.Permission {
	return &authpb.Permission{PermType: t, Key: []byte(key), RangeEnd: []byte(end)}
}

// TestPermissionRanges: etcd's rules for a key, a range, a prefix and "\x00", and the
// union of several permissions.
func TestPermissionRanges(t *testing.T) {
	st := newState(t, setup(
		perm(authpb.Permission_READ, "k", ""),
		perm(authpb.Permission_READ, "a", "c"),
		perm(authpb.Permission_READ, "c", "d"), // touches [a,c): together [a,d)
		perm(authpb.Permission_WRITE, "p/", "p0"),
		perm(authpb.Permission_READWRITE, "z", "\x00"),
	)...)
	u := Info{Username: "u", Revision: st.Revision()}
	for _, tc := range []struct {
		key, end string
		read     bool
		write    bool
	}{
		{"k", "", true, false},
		{"k\x00", "", false, false},
		{"k", "k\x00", true, false},
		{"k", "l", false, false},
		{"a", "", true, false},
		{"b\xff\xff", "", true, false},
		{"a", "d", true, false}, // the union of two touching ranges
		{"a", "d\x00", false, false},
		{"c", "", true, false},
		{"d", "", false, false},
		{"p/", "", false, true},
		{"p/x", "", false, true},
		{"p/", "p0", false, true},
		{"p", "p0", false, false},
		{"z", "\x00", true, true},
		{"zzz", "", true, true},
		{"y", "\x00", false, false},
		{"", "\x00", false, false},
		{"b", "a", true, false}, // inverted: checked as its first key
		{"e", "a", false, false},
	} {
		if got := st.CanRead(u, []byte(tc.key), []byte(tc.end)) == nil; got != tc.read {
			t.Errorf("read [%q, %q): %v, want %v", tc.key, tc.end, got, tc.read)
		}
		if got := st.CanWrite(u, []byte(tc.key), []byte(tc.end)) == nil; got != tc.write {
			t.Errorf("write [%q, %q): %v, want %v", tc.key, tc.end, got, tc.write)
		}
	}
	if err := st.CanRead(Info{Username: "u", Revision: st.Revision() - 1}, []byte("k"), nil); err != ErrAuthOldRevision {
		t.Errorf("old revision: %v", err)
	}
	if err := st.CanRead(Info{}, []byte("k"), nil); err != ErrUserEmpty {
		t.Errorf("no user: %v", err)
	}
	if err := st.CanRead(Info{Username: "root", Revision: st.Revision()}, []byte(""), []byte{0}); err != nil {
		t.Errorf("root: %v", err)
	}
	if err := st.IsAdmin("u"); err != ErrPermissionDenied {
		t.Errorf("IsAdmin(u) = %v", err)
	}
}

// oracle decides a single permission [pk, pe) against a request as etcd's interval
// rules do, written from the rules and not from the implementation.
func oracle(pk, pe, key, end []byte) bool {
	if len(pk) == 0 && len(pe) == 0 {
		return false
	}
	open := func(e []byte) bool { return len(e) == 1 && e[0] == 0 }
	inPerm := func(k []byte) bool { // k inside the permission
		switch {
		case len(pe) == 0:
			return bytes.Equal(k, pk)
		case open(pe):
			return bytes.Compare(k, pk) >= 0
		default:
			return bytes.Compare(k, pk) >= 0 && bytes.Compare(k, pe) < 0
		}
	}
	switch {
	case len(end) == 0:
		return inPerm(key)
	case open(end):
		return open(pe) && bytes.Compare(key, pk) >= 0
	case bytes.Compare(end, key) <= 0:
		return inPerm(key)
	}
	if !inPerm(key) {
		return false
	}
	switch {
	case len(pe) == 0:
		return bytes.Equal(end, append(append([]byte{}, key...), 0))
	case open(pe):
		return true
	default:
		return bytes.Compare(end, pe) <= 0
	}
}

// FuzzPermissionRange: no odd bytes, empty, "\x00" or inverted range lets a request
// through that a single permission does not cover.
func FuzzPermissionRange(f *testing.F) {
	for _, s := range [][4]string{{"a", "c", "b", ""}, {"a", "\x00", "", "\x00"}, {"k", "", "k", "k\x00"}, {"a", "c", "c", "a"},
		{"p/", "p0", "p/", "p0"}, {"\x00", "\x01", "\x00", ""}, {"a", "b", "a", "b\x00"}, {"x", "\x00", "x", "\x00"}} {
		f.Add([]byte(s[0]), []byte(s[1]), []byte(s[2]), []byte(s[3]))
	}
	eng, err := pebble.Open(f.TempDir(), pebble.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	base, err := Load(eng)
	if err != nil {
		f.Fatal(err)
	}
	apply := func(st *State, r *pb.InternalRaftRequest) (*State, error) {
		r.Header = &pb.RequestHeader{Username: RootUser}
		b := eng.NewBatch()
		defer b.Close() // never committed: each input starts from base
		n, _, err := Apply(st, b, r)
		return n, err
	}
	for _, r := range setup() {
		b := eng.NewBatch()
		r.Header = &pb.RequestHeader{Username: RootUser}
		n, _, err := Apply(base, b, r)
		if err != nil {
			f.Fatal(err)
		}
		must(f, b.Commit(false))
		b.Close()
		base = n
	}
	f.Fuzz(func(t *testing.T, pk, pe, key, end []byte) {
		st, err := apply(base, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r",
			Perm: &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: pk, RangeEnd: pe}}})
		if err != nil {
			if ValidPermissionRange(pk, pe) {
				t.Fatalf("valid permission [%q, %q) refused: %v", pk, pe, err)
			}
			return
		}
		got := st.CanRead(Info{Username: "u", Revision: st.Revision()}, key, end) == nil
		if want := oracle(pk, pe, key, end); got != want {
			t.Fatalf("perm [%q, %q), request [%q, %q): allowed %v, want %v", pk, pe, key, end, got, want)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
