package mvcc

import (
	"fmt"
	"testing"
)

func fill(b *testing.B, s *Store, n int) {
	b.Helper()
	val := make([]byte, 128)
	for i := 0; i < n; i += 1000 {
		txn(b, s, func(w *TxnWrite) {
			for k := i; k < i+1000 && k < n; k++ {
				if _, err := w.Put([]byte(fmt.Sprintf("key%06d", k)), val, 0, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut is one Put per TxnWrite and batch, committed without sync, over 10k keys.
func BenchmarkPut(b *testing.B) {
	s, _ := newStore(b)
	val := make([]byte, 128)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		put(b, s, fmt.Sprintf("key%06d", i%10000), string(val), 0)
	}
}

func BenchmarkPointGet(b *testing.B) {
	s, _ := newStore(b)
	fill(b, s, 10000)
	r := s.Read()
	defer r.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.Range([]byte(fmt.Sprintf("key%06d", i%10000)), nil, RangeOptions{})
		if err != nil || len(res.KVs) != 1 {
			b.Fatal(err, len(res.KVs))
		}
	}
}

// BenchmarkRange10k reads all 10k keys (each with 3 versions) in one Range.
func BenchmarkRange10k(b *testing.B) {
	s, _ := newStore(b)
	for round := 0; round < 3; round++ {
		fill(b, s, 10000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := s.Read()
		res, err := r.Range([]byte("key"), []byte("kez"), RangeOptions{})
		r.Close()
		if err != nil || res.Count != 10000 {
			b.Fatal(err, res.Count)
		}
	}
}
