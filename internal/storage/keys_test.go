package storage

import (
	"bytes"
	"math/rand"
	"sort"
	"testing"
)

func TestVersionKeyRoundTrip(t *testing.T) {
	for _, k := range [][]byte{{}, []byte("a"), {0}, {0, 0xFF}, {0xFF, 0}, []byte("a\x00b\x01")} {
		ek := VersionKey(k, 42, 7)
		uk, m, s, err := ParseVersionKey(ek)
		if err != nil || !bytes.Equal(uk, k) || m != 42 || s != 7 {
			t.Fatalf("%q: got %q %d %d %v", k, uk, m, s, err)
		}
		if main, err := VersionKeyMain(ek); err != nil || main != 42 {
			t.Fatalf("%q: VersionKeyMain = %d %v", k, main, err)
		}
		if !bytes.HasPrefix(ek, KeyPrefix(k)) {
			t.Fatalf("%q: version key lacks its prefix", k)
		}
	}
}

// The encoding must order user keys as bytes.Compare does and versions newest first.
func TestVersionKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	type v struct {
		k    []byte
		m, s int64
	}
	var vs []v
	for i := 0; i < 2000; i++ {
		k := make([]byte, rng.Intn(4))
		for j := range k {
			k[j] = []byte{0, 1, 0xFF, 'a'}[rng.Intn(4)]
		}
		vs = append(vs, v{k, rng.Int63n(5) + 1, rng.Int63n(3)})
	}
	sort.Slice(vs, func(i, j int) bool {
		if c := bytes.Compare(vs[i].k, vs[j].k); c != 0 {
			return c < 0
		}
		if vs[i].m != vs[j].m {
			return vs[i].m > vs[j].m
		}
		return vs[i].s > vs[j].s
	})
	for i := 1; i < len(vs); i++ {
		a, b := VersionKey(vs[i-1].k, vs[i-1].m, vs[i-1].s), VersionKey(vs[i].k, vs[i].m, vs[i].s)
		if bytes.Compare(a, b) > 0 {
			t.Fatalf("order broken between %v and %v", vs[i-1], vs[i])
		}
		if bytes.Compare(vs[i-1].k, vs[i].k) < 0 && bytes.Compare(PrefixEnd(KeyPrefix(vs[i-1].k)), b) > 0 {
			t.Fatalf("versions of %q overlap %q", vs[i-1].k, vs[i].k)
		}
	}
}

func TestKeyRangeBounds(t *testing.T) {
	lo, hi := KeyRangeBounds([]byte("a"), []byte("c"))
	in := VersionKey([]byte("b\x00"), 3, 0)
	if bytes.Compare(in, lo) < 0 || bytes.Compare(in, hi) >= 0 {
		t.Fatal("b\\x00 not in [a, c)")
	}
	if c := VersionKey([]byte("c"), 3, 0); bytes.Compare(c, hi) < 0 {
		t.Fatal("c inside [a, c)")
	}
	_, hi = KeyRangeBounds([]byte("a"), []byte{0})
	if bytes.Compare(VersionKey([]byte{0xFF, 0xFF}, 1, 0), hi) >= 0 {
		t.Fatal("\\xff\\xff outside [a, \\0)")
	}
	lo, hi = KeyRangeBounds([]byte("a"), nil)
	if bytes.Compare(VersionKey([]byte("a"), 1, 0), lo) < 0 || bytes.Compare(VersionKey([]byte("a"), 1, 0), hi) >= 0 ||
		bytes.Compare(VersionKey([]byte("a\x00"), 1, 0), hi) < 0 {
		t.Fatal("single-key bounds wrong")
	}
}

// Split must give every version of a user key its KeyPrefix, and satisfy what an engine's
// prefix extractor relies on for any key at all (version keys, cut ones, other owners'):
// prefixes order keys as the keys order, and a bare prefix sorts before its extensions.
func TestSplitIsAnOrderPreservingPrefixExtractor(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	alphabet := []byte{0, 1, 2, 0xFF, 'a', PrefixKey, PrefixMeta}
	var keys [][]byte
	for i := 0; i < 400; i++ {
		uk := make([]byte, rng.Intn(4))
		for j := range uk {
			uk[j] = alphabet[rng.Intn(len(alphabet))]
		}
		vk := VersionKey(uk, rng.Int63n(5)+1, rng.Int63n(3))
		if got := vk[:Split(vk)]; !bytes.Equal(got, KeyPrefix(uk)) {
			t.Fatalf("Split(VersionKey(%q)) = %q, want %q", uk, got, KeyPrefix(uk))
		}
		raw := make([]byte, rng.Intn(6))
		for j := range raw {
			raw[j] = alphabet[rng.Intn(len(alphabet))]
		}
		keys = append(keys, vk, vk[:rng.Intn(len(vk)+1)], raw, append([]byte{PrefixKey}, raw...), RaftLogKey(uint64(i)))
	}
	for _, a := range keys {
		pa := a[:Split(a)]
		if len(pa) < len(a) && bytes.Compare(pa, a) >= 0 {
			t.Fatalf("prefix %q of %q does not sort first", pa, a)
		}
		if n := Split(pa); n != len(pa) {
			t.Fatalf("the prefix %q of %q splits again at %d", pa, a, n)
		}
		for _, b := range keys {
			pb := b[:Split(b)]
			if bytes.Compare(a, b) <= 0 && bytes.Compare(pa, pb) > 0 {
				t.Fatalf("%q <= %q but prefixes %q > %q", a, b, pa, pb)
			}
			if bytes.Compare(pa, pb) < 0 && bytes.Compare(a, b) >= 0 {
				t.Fatalf("prefixes %q < %q but keys %q >= %q", pa, pb, a, b)
			}
		}
	}
}

// PrefixSuccessor(p) must be a whole prefix after p with no whole prefix in between:
// every key between them extends p (and so has p's prefix).
func TestPrefixSuccessor(t *testing.T) {
	for _, p := range [][]byte{KeyPrefix([]byte("a")), KeyPrefix([]byte{0}), KeyPrefix(nil), {PrefixKey, 0, 0, 1},
		{PrefixKey, 'x', 0}, {PrefixKey}, RaftLogKey(7), MetaAppliedIndex} {
		if Split(p) != len(p) {
			t.Fatalf("%q is not a whole prefix", p)
		}
		s := PrefixSuccessor(nil, p)
		if bytes.Compare(p, s) >= 0 || Split(s) != len(s) {
			t.Fatalf("PrefixSuccessor(%q) = %q: not a later whole prefix", p, s)
		}
		for _, mid := range [][]byte{append(bytes.Clone(p), 0), append(bytes.Clone(p), 0xFF, 0xFF), s[:len(s)-1]} {
			if bytes.Compare(p, mid) < 0 && bytes.Compare(mid, s) < 0 && Split(mid) == len(mid) {
				t.Fatalf("%q lies between %q and its successor %q and is a whole prefix", mid, p, s)
			}
		}
	}
}

func TestLeaseKeys(t *testing.T) {
	for _, id := range []int64{1, -1, 1 << 62} {
		if got, err := ParseLeaseKey(LeaseKey(id)); err != nil || got != id {
			t.Fatalf("lease key %d: %d %v", id, got, err)
		}
		ak := LeaseAttachKey(id, []byte("a\x00b"))
		gid, k, err := ParseLeaseAttachKey(ak)
		if err != nil || gid != id || string(k) != "a\x00b" || !bytes.HasPrefix(ak, LeaseAttachPrefix(id)) {
			t.Fatalf("attach key %d: %d %q %v", id, gid, k, err)
		}
		lo, hi := LeaseAttachBounds()
		if bytes.Compare(ak, lo) < 0 || bytes.Compare(ak, hi) >= 0 {
			t.Fatalf("attach key %q outside its bounds", ak)
		}
		lo, hi = LeaseRecordBounds()
		if rk := LeaseKey(id); bytes.Compare(rk, lo) < 0 || bytes.Compare(rk, hi) >= 0 {
			t.Fatalf("record key %q outside its bounds", rk)
		}
	}
	// Lease 1's attachments do not sort among lease 2's.
	if bytes.HasPrefix(LeaseAttachKey(2, nil), LeaseAttachPrefix(1)) {
		t.Fatal("attachment prefixes overlap")
	}
}
