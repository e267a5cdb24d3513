package metrics

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value sums a family's series (a histogram's: its sample counts).
func value(mf *dto.MetricFamily) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v
}

// The names, types and labels etcd's dashboards and alerts read, fed by the hooks and
// the scrape-time sources.
func TestEtcdNamesTypesAndHooks(t *testing.T) {
	reg := prometheus.NewRegistry()
	leader := uint64(7)
	e := New(reg, Sources{
		MemberID: func() uint64 { return 0x8e9e05c52164694d }, ServerVersion: "3.7.3", QuotaBytes: 2 << 30,
		ClusterVersion: func() string { return "3.7" },
		Leader:         func() uint64 { return leader }, IsLeader: func() bool { return true },
		LeaderChanges: func() uint64 { return 1 }, CommittedIndex: func() uint64 { return 5 }, AppliedIndex: func() uint64 { return 4 },
		DBSize: func() uint64 { return 100 }, DBSizeInUse: func() uint64 { return 50 },
		Ops: func() (uint64, uint64, uint64, uint64) { return 1, 2, 3, 4 },
	})
	e.WALSynced(3*time.Millisecond, 100)
	e.BackendCommitted(time.Millisecond)
	e.PeerSent(0xa, 10)
	e.PeerSent(0xa, 5)
	e.PeerReceived(0xb, 7)
	e.SnapshotSent(0xa, time.Second, nil)
	e.SnapshotSent(0xa, time.Second, errors.New("x"))
	e.ProposalFailed()
	got := gather(t, reg)
	want := map[string]struct {
		typ dto.MetricType
		v   float64
	}{
		"etcd_server_has_leader":                    {dto.MetricType_GAUGE, 1},
		"etcd_server_is_leader":                     {dto.MetricType_GAUGE, 1},
		"etcd_server_leader_changes_seen_total":     {dto.MetricType_COUNTER, 1},
		"etcd_server_proposals_committed_total":     {dto.MetricType_GAUGE, 5},
		"etcd_server_proposals_applied_total":       {dto.MetricType_GAUGE, 4},
		"etcd_server_proposals_failed_total":        {dto.MetricType_COUNTER, 1},
		"etcd_server_quota_backend_bytes":           {dto.MetricType_GAUGE, 2 << 30},
		"etcd_disk_wal_fsync_duration_seconds":      {dto.MetricType_HISTOGRAM, 1},
		"etcd_disk_wal_write_bytes_total":           {dto.MetricType_COUNTER, 100},
		"etcd_disk_backend_commit_duration_seconds": {dto.MetricType_HISTOGRAM, 1},
		"etcd_mvcc_db_total_size_in_bytes":          {dto.MetricType_GAUGE, 100},
		"etcd_mvcc_db_total_size_in_use_in_bytes":   {dto.MetricType_GAUGE, 50},
		"etcd_mvcc_range_total":                     {dto.MetricType_COUNTER, 1},
		"etcd_mvcc_put_total":                       {dto.MetricType_COUNTER, 2},
		"etcd_mvcc_delete_total":                    {dto.MetricType_COUNTER, 3},
		"etcd_mvcc_txn_total":                       {dto.MetricType_COUNTER, 4},
		"etcd_network_peer_sent_bytes_total":        {dto.MetricType_COUNTER, 15},
		"etcd_network_peer_received_bytes_total":    {dto.MetricType_COUNTER, 7},
		"etcd_network_snapshot_send_success":        {dto.MetricType_COUNTER, 1},
		"etcd_network_snapshot_send_failures":       {dto.MetricType_COUNTER, 1},
		"etcd_server_id":                            {dto.MetricType_GAUGE, 1},
		"etcd_cluster_version":                      {dto.MetricType_GAUGE, 1},
		"etcd_server_version":                       {dto.MetricType_GAUGE, 1},
	}
	for name, w := range want {
		mf, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if mf.GetType() != w.typ || value(mf) != w.v {
			t.Errorf("%s = %v %v, want %v %v", name, mf.GetType(), value(mf), w.typ, w.v)
		}
	}
	if l := got["etcd_network_peer_sent_bytes_total"].GetMetric()[0].GetLabel()[0]; l.GetName() != "To" || l.GetValue() != "a" {
		t.Errorf("peer label %s=%s, want To=a (hex member ID, as etcd)", l.GetName(), l.GetValue())
	}
	if l := got["etcd_server_id"].GetMetric()[0].GetLabel()[0]; l.GetValue() != "8e9e05c52164694d" {
		t.Errorf("server_id %s", l.GetValue())
	}
	// etcd's buckets: 1 ms doubling, 14 of them.
	if b := got["etcd_disk_wal_fsync_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket(); len(b) != 14 || b[0].GetUpperBound() != 0.001 {
		t.Errorf("wal fsync buckets %v", b)
	}
	leader = 0
	if v := value(gather(t, reg)["etcd_server_has_leader"]); v != 0 {
		t.Errorf("has_leader without a leader = %v", v)
	}
}

func TestPebbleCollectorReadsAtScrape(t *testing.T) {
	db, err := pebble.Open(filepath.Join(t.TempDir(), "db"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewPebbleCollector(db.Metrics).WithWriteStalls(func() (uint64, time.Duration) { return 3, 1500 * time.Millisecond }))
	if err := db.Set([]byte("k"), []byte("v"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	for _, n := range []string{"metastore_engine_l0_files", "metastore_engine_read_amplification", "metastore_engine_block_cache_hit_ratio",
		"metastore_engine_table_cache_hit_ratio", "metastore_engine_memtable_size_bytes", "metastore_engine_wal_size_bytes",
		"metastore_engine_disk_usage_bytes", "metastore_engine_compactions_total", "metastore_engine_l0_sublevels"} {
		if got[n] == nil {
			t.Errorf("%s missing", n)
		}
	}
	if v := value(got["metastore_engine_flushes_total"]); v < 1 {
		t.Errorf("flushes after a flush = %v", v)
	}
	if v := value(got["metastore_engine_l0_files"]); v < 1 {
		t.Errorf("L0 files after a flush = %v", v)
	}
	if n, secs := value(got["metastore_engine_write_stalls_total"]), value(got["metastore_engine_write_stall_seconds_total"]); n != 3 || secs != 1.5 {
		t.Errorf("write stalls = %v, %v s; want 3, 1.5 s", n, secs)
	}
}
