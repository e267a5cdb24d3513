package mvcc

import "sync/atomic"

// opStats counts the operations this member's store has seen, as etcd's
// etcd_mvcc_{range,put,delete,txn}_total: every range (views and write
// transactions), put and delete range, and every write transaction of more than one
// operation. Atomic adds only: they run on the apply and read paths.
type opStats struct {
	ranges, puts, deletes, txns atomic.Uint64
}

// OpCounts are the totals of OpCounts.
type OpCounts struct{ Ranges, Puts, Deletes, Txns uint64 }

// OpCounts returns the operations counted since the store was opened.
func (s *Store) OpCounts() OpCounts {
	return OpCounts{Ranges: s.stats.ranges.Load(), Puts: s.stats.puts.Load(), Deletes: s.stats.deletes.Load(), Txns: s.stats.txns.Load()}
}
