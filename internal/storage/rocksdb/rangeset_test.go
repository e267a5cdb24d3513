//go:build rocksdb

package rocksdb

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// TestRangeSetMatchesList checks the fragments against a plain list of the deletions:
// for every key, the newest deletion covering it.
func TestRangeSetMatchesList(t *testing.T) {
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	key := func() []byte { return []byte{byte('a' + rng.Intn(20)), byte(rng.Intn(3))} }
	for round := 0; round < 50; round++ {
		rs := newRangeSet()
		var list [][3][]byte
		for seq := uint32(1); seq <= 40; seq++ {
			lo, hi := key(), key()
			if bytes.Compare(lo, hi) >= 0 {
				continue
			}
			rs.add(lo, hi, seq)
			list = append(list, [3][]byte{lo, hi, []byte(fmt.Sprint(seq))})
			for c := byte('a' - 1); c <= 'a'+20; c++ {
				for d := 0; d < 4; d++ {
					k := []byte{c, byte(d)}
					want := "0"
					for _, r := range list {
						if bytes.Compare(k, r[0]) >= 0 && bytes.Compare(k, r[1]) < 0 {
							want = string(r[2])
						}
					}
					if got := fmt.Sprint(rs.seqAt(k)); got != want {
						t.Fatalf("round %d after %d deletions: seqAt(%q) = %s, want %s", round, len(list), k, got, want)
					}
				}
			}
		}
		if rs.len() > 3*len(list)+1 {
			t.Fatalf("%d fragments for %d deletions", rs.len(), len(list))
		}
	}
}

// BenchmarkBatchManyDeleteRanges is a batch as mvcc's compaction writes: per key a few
// point deletes and a range deletion of its older versions, n keys. Its cost per
// operation must not grow with n (the batch once rescanned itself on every DeleteRange).
func BenchmarkBatchManyDeleteRanges(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := open(&testing.T{}, b.TempDir(), Options{})
			defer e.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bt := e.NewBatch()
				for k := 0; k < n; k++ {
					_ = bt.Set([]byte(fmt.Sprintf("R%08d", k)), []byte("v"))
					_ = bt.Delete([]byte(fmt.Sprintf("K%08d-1", k)))
					_ = bt.DeleteRange([]byte(fmt.Sprintf("K%08d-2", k)), []byte(fmt.Sprintf("K%08d-9", k)))
				}
				bt.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
		})
	}
}
