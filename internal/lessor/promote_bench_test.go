package lessor

import (
	"testing"

	"github.com/metastore/metastore/internal/lease"
)

type listSource []lease.Info

func (s listSource) List() []lease.Info              { return s }
func (s listSource) Get(id int64) (lease.Info, bool) { return lease.Info{}, false }

// BenchmarkPromote1M: a new leader taking over the expiry of 1,000,000 leases.
func BenchmarkPromote1M(b *testing.B) {
	src := make(listSource, 1_000_000)
	for i := range src {
		src[i] = lease.Info{ID: int64(i + 1), TTL: 60, Remaining: int64(i % 60)}
	}
	for b.Loop() {
		l := New(src, Config{})
		l.Promote()
	}
}
