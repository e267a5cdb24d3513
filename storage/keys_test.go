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
