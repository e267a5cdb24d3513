// Package metrics owns MetaStore's Prometheus collectors: etcd's metrics under etcd's
// names, types, labels and buckets (so that the etcd dashboards and the etcd-mixin
// alerts work unchanged), and the metastore_* collectors of the original design
// (Pebble's own figures, read at scrape time). Everything is registered on the
// registry given to New (no init() globals, no prometheus.DefaultRegisterer). The
// figures come in two ways: hooks the other packages call on their paths (the
// methods of Etcd, which are cheap: a counter add or a histogram observe, no
// allocation, no lock), and Sources, functions read at scrape time.
//
// It must not import the packages it measures (cmd wires them together): they
// declare small hook interfaces or func fields that Etcd satisfies.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources are read at scrape time. A nil function leaves its metric out.
type Sources struct {
	MemberID       func() uint64 // read at scrape time: known once the data dir is loaded
	ServerVersion  string
	ClusterVersion func() string
	QuotaBytes     int64

	Leader           func() uint64 // 0: no leader
	IsLeader         func() bool
	IsLearner        func() bool
	LeaderChanges    func() uint64
	CommittedIndex   func() uint64
	AppliedIndex     func() uint64
	PendingProposals func() int

	DBSize      func() uint64
	DBSizeInUse func() uint64
	Revision    func() int64
	CompactRev  func() int64
	Keys        func() int64 // live keys at the current revision
	// Ops are the store's operation totals: ranges, puts, delete ranges, txns.
	Ops func() (ranges, puts, deletes, txns uint64)
}

// Etcd holds the etcd metrics fed by hooks.
type Etcd struct {
	walFsync      prometheus.Histogram
	walBytes      prometheus.Counter
	backendCommit prometheus.Histogram
	backendSnap   prometheus.Histogram

	proposalsFailed prometheus.Counter
	slowApply       prometheus.Counter
	slowReadIndex   prometheus.Counter
	readIndexFailed prometheus.Counter
	heartbeatFailed prometheus.Counter
	promoted        prometheus.Counter
	promoteFailed   *prometheus.CounterVec
	applySec        *prometheus.HistogramVec
	applySeries     sync.Map // applyKey → prometheus.Observer
	requestSec      *prometheus.HistogramVec
	requestSeries   sync.Map // applyKey → prometheus.Observer

	leaseGranted, leaseRevoked, leaseRenewed prometheus.Counter
	leaseTTL                                 prometheus.Histogram

	compactPause, compactTotal prometheus.Histogram
	compactKeys                prometheus.Counter
	compactLast                prometheus.Gauge
	hashSec, hashRevSec        prometheus.Histogram

	peerSent     *prometheus.CounterVec
	peerFailed   *prometheus.CounterVec
	peerReceived *prometheus.CounterVec
	peerRTT      *prometheus.HistogramVec
	snapSuccess  *prometheus.CounterVec
	snapFailure  *prometheus.CounterVec
	snapDuration *prometheus.HistogramVec

	// peer series cached by member ID, so the hot path formats no label.
	peers sync.Map // uint64 → *peerSeries
}

type peerSeries struct {
	sent, failed, received prometheus.Counter
}

func opts(ns, sub, name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: ns, Subsystem: sub, Name: name, Help: help}
}

func counter(ns, sub, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts(opts(ns, sub, name, help)))
}

func histogram(ns, sub, name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets})
}

func gaugeFunc(ns, sub, name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts(ns, sub, name, help)), f)
}

func counterFunc(ns, sub, name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts(opts(ns, sub, name, help)), f)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// New registers etcd's metrics on reg and returns the hooks that feed them.
func New(reg prometheus.Registerer, src Sources) *Etcd {
	e := &Etcd{
		walFsync: histogram("etcd", "disk", "wal_fsync_duration_seconds",
			"The latency distributions of fsync called by WAL.", prometheus.ExponentialBuckets(0.001, 2, 14)),
		walBytes: counter("etcd", "disk", "wal_write_bytes_total", "Total number of bytes written in WAL."),
		backendCommit: histogram("etcd", "disk", "backend_commit_duration_seconds",
			"The latency distributions of commit called by backend.", prometheus.ExponentialBuckets(0.001, 2, 14)),
		backendSnap: histogram("etcd", "disk", "backend_snapshot_duration_seconds",
			"The latency distribution of backend snapshots.", prometheus.ExponentialBuckets(.01, 2, 17)),
		proposalsFailed: counter("etcd", "server", "proposals_failed_total", "The total number of failed proposals seen."),
		slowApply:       counter("etcd", "server", "slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk)."),
		slowReadIndex:   counter("etcd", "server", "slow_read_indexes_total", "The total number of pending read indexes not in sync with leader's or timed out read index requests."),
		readIndexFailed: counter("etcd", "server", "read_indexes_failed_total", "The total number of failed read indexes seen."),
		heartbeatFailed: counter("etcd", "server", "heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk)."),
		promoted:        counter("etcd", "server", "learner_promote_successes", "The total number of successful learner promotions while this member is leader."),
		promoteFailed: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "server", "learner_promote_failures",
			"The total number of failed learner promotions (likely learner not ready) while this member is leader.")), []string{"Reason"}),
		applySec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "server", Name: "apply_duration_seconds",
			Help: "The latency distributions of v2 apply called by backend.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20)},
			[]string{"version", "op", "success"}),
		requestSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "server", Name: "request_duration_seconds",
			Help: "Response latency distribution in seconds for each type.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)},
			[]string{"type", "success"}),
		leaseGranted: counter("etcd_debugging", "lease", "granted_total", "The total number of granted leases."),
		leaseRevoked: counter("etcd_debugging", "lease", "revoked_total", "The total number of revoked leases."),
		leaseRenewed: counter("etcd_debugging", "lease", "renewed_total", "The number of renewed leases seen by the leader."),
		leaseTTL: histogram("etcd_debugging", "lease", "ttl_total", "Bucketed histogram of lease TTLs.",
			prometheus.ExponentialBuckets(1, 2, 24)),
		compactPause: histogram("etcd_debugging", "mvcc", "db_compaction_pause_duration_milliseconds",
			"Bucketed histogram of db compaction pause duration.", prometheus.ExponentialBuckets(1, 2, 13)),
		compactTotal: histogram("etcd_debugging", "mvcc", "db_compaction_total_duration_milliseconds",
			"Bucketed histogram of db compaction total duration.", prometheus.ExponentialBuckets(100, 2, 14)),
		hashSec: histogram("etcd", "mvcc", "hash_duration_seconds", "The latency distribution of storage hash operation.",
			prometheus.ExponentialBuckets(.01, 2, 15)),
		hashRevSec: histogram("etcd", "mvcc", "hash_rev_duration_seconds", "The latency distribution of storage hash by revision operation.",
			prometheus.ExponentialBuckets(.01, 2, 15)),
		compactKeys: counter("etcd_debugging", "mvcc", "db_compaction_keys_total", "Total number of db keys compacted."),
		compactLast: prometheus.NewGauge(prometheus.GaugeOpts(opts("etcd_debugging", "mvcc", "db_compaction_last",
			"The unix time of the last db compaction. Resets to 0 on start."))),
		peerSent: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "network", "peer_sent_bytes_total",
			"The total number of bytes sent to peers.")), []string{"To"}),
		peerFailed: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "network", "peer_sent_failures_total",
			"The total number of send failures from peers.")), []string{"To"}),
		peerReceived: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "network", "peer_received_bytes_total",
			"The total number of bytes received from peers.")), []string{"From"}),
		peerRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "network", Name: "peer_round_trip_time_seconds",
			Help: "Round-Trip-Time histogram between peers", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"To"}),
		snapSuccess: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "network", "snapshot_send_success",
			"Total number of successful snapshot sends")), []string{"To"}),
		snapFailure: prometheus.NewCounterVec(prometheus.CounterOpts(opts("etcd", "network", "snapshot_send_failures",
			"Total number of snapshot send failures")), []string{"To"}),
		snapDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "network", Name: "snapshot_send_total_duration_seconds",
			Help: "Total latency distributions of v3 snapshot sends", Buckets: prometheus.ExponentialBuckets(0.1, 2, 10)}, []string{"To"}),
	}
	cs := []prometheus.Collector{e.walFsync, e.walBytes, e.backendCommit, e.backendSnap, e.proposalsFailed, e.slowApply,
		e.slowReadIndex, e.readIndexFailed, e.heartbeatFailed, e.promoted, e.promoteFailed, e.applySec, e.requestSec, e.leaseGranted, e.leaseRevoked, e.leaseRenewed, e.leaseTTL, e.peerSent, e.peerFailed, e.peerReceived, e.peerRTT,
		e.snapSuccess, e.snapFailure, e.snapDuration, e.compactPause, e.compactTotal, e.compactKeys, e.compactLast, e.hashSec, e.hashRevSec}
	cs = append(cs, scrapeTime(src)...)
	for _, c := range cs {
		reg.MustRegister(c)
	}
	return e
}

// scrapeTime builds the collectors read from src at scrape time.
func scrapeTime(src Sources) []prometheus.Collector {
	var cs []prometheus.Collector
	add := func(ok bool, c func() prometheus.Collector) {
		if ok {
			cs = append(cs, c())
		}
	}
	ver := prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("etcd", "server", "version", "Which version is running. 1 for 'server_version' label with current version.")), []string{"server_version"})
	ver.WithLabelValues(src.ServerVersion).Set(1)
	quota := prometheus.NewGauge(prometheus.GaugeOpts(opts("etcd", "server", "quota_backend_bytes", "Current backend storage quota size in bytes.")))
	quota.Set(float64(src.QuotaBytes))
	cs = append(cs, ver, quota)
	add(src.MemberID != nil, func() prometheus.Collector {
		return &labelGauge{d: serverIDDesc, f: func() string { return strconv.FormatUint(src.MemberID(), 16) }}
	})
	add(src.ClusterVersion != nil, func() prometheus.Collector { return &labelGauge{d: clusterVersionDesc, f: src.ClusterVersion} })
	add(src.Leader != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "server", "has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
			func() float64 { return b2f(src.Leader() != 0) })
	})
	add(src.IsLeader != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "server", "is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.",
			func() float64 { return b2f(src.IsLeader()) })
	})
	add(src.IsLearner != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "server", "is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.",
			func() float64 { return b2f(src.IsLearner()) })
	})
	add(src.LeaderChanges != nil, func() prometheus.Collector {
		return counterFunc("etcd", "server", "leader_changes_seen_total", "The number of leader changes seen.",
			func() float64 { return float64(src.LeaderChanges()) })
	})
	// etcd exposes these two as gauges.
	add(src.CommittedIndex != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "server", "proposals_committed_total", "The total number of consensus proposals committed.",
			func() float64 { return float64(src.CommittedIndex()) })
	})
	add(src.AppliedIndex != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "server", "proposals_applied_total", "The total number of consensus proposals applied.",
			func() float64 { return float64(src.AppliedIndex()) })
	})
	add(src.PendingProposals != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "server", "proposals_pending", "The current number of pending proposals to commit.",
			func() float64 { return float64(src.PendingProposals()) })
	})
	add(src.DBSize != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "mvcc", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.",
			func() float64 { return float64(src.DBSize()) })
	})
	add(src.DBSizeInUse != nil, func() prometheus.Collector {
		return gaugeFunc("etcd", "mvcc", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.",
			func() float64 { return float64(src.DBSizeInUse()) })
	})
	add(src.Revision != nil, func() prometheus.Collector {
		return gaugeFunc("etcd_debugging", "mvcc", "current_revision", "The current revision of store.",
			func() float64 { return float64(src.Revision()) })
	})
	add(src.CompactRev != nil, func() prometheus.Collector {
		return gaugeFunc("etcd_debugging", "mvcc", "compact_revision", "The revision of the last compaction in store.",
			func() float64 { return float64(src.CompactRev()) })
	})
	add(src.Keys != nil, func() prometheus.Collector {
		return gaugeFunc("etcd_debugging", "mvcc", "keys_total", "Total number of keys.",
			func() float64 { return float64(src.Keys()) })
	})
	if src.Ops != nil {
		op := func(name, help string, pick func(r, p, d, t uint64) uint64) prometheus.Collector {
			return counterFunc("etcd", "mvcc", name, help, func() float64 { return float64(pick(src.Ops())) })
		}
		cs = append(cs,
			op("range_total", "Total number of ranges seen by this member.", func(r, _, _, _ uint64) uint64 { return r }),
			op("put_total", "Total number of puts seen by this member.", func(_, p, _, _ uint64) uint64 { return p }),
			op("delete_total", "Total number of deletes seen by this member.", func(_, _, d, _ uint64) uint64 { return d }),
			op("txn_total", "Total number of txns seen by this member.", func(_, _, _, t uint64) uint64 { return t }))
	}
	return cs
}

// labelGauge is a gauge of value 1 whose one label is read at scrape time, as
// etcd_cluster_version{cluster_version="3.7"} 1 (the cluster version changes once the
// members agree on it) and etcd_server_id{server_id="..."} 1. No series while the label
// is empty.
type labelGauge struct {
	d *prometheus.Desc
	f func() string
}

var (
	clusterVersionDesc = prometheus.NewDesc("etcd_cluster_version",
		"Which version is running. 1 for 'cluster_version' label with current cluster version", []string{"cluster_version"}, nil)
	serverIDDesc = prometheus.NewDesc("etcd_server_id",
		"Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", []string{"server_id"}, nil)
)

func (c *labelGauge) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c *labelGauge) Collect(ch chan<- prometheus.Metric) {
	if v := c.f(); v != "" {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.GaugeValue, 1, v)
	}
}

// WALSynced is raftlog.Options.OnSync.
func (e *Etcd) WALSynced(took time.Duration, bytes int) {
	e.walFsync.Observe(took.Seconds())
	e.walBytes.Add(float64(bytes))
}

// BackendCommitted is pebble.Options.OnCommit.
func (e *Etcd) BackendCommitted(took time.Duration) { e.backendCommit.Observe(took.Seconds()) }

// BackendSnapshotted records the duration of one state-machine snapshot sent out.
func (e *Etcd) BackendSnapshotted(took time.Duration) { e.backendSnap.Observe(took.Seconds()) }

// ProposalFailed, SlowApply, SlowReadIndex and ReadIndexFailed count the server's
// events of those names.
func (e *Etcd) ProposalFailed()  { e.proposalsFailed.Inc() }
func (e *Etcd) SlowApply()       { e.slowApply.Inc() }
func (e *Etcd) SlowReadIndex()   { e.slowReadIndex.Inc() }
func (e *Etcd) ReadIndexFailed() { e.readIndexFailed.Inc() }

// LearnerPromoted and LearnerPromoteFailed implement server.MemberObserver.
func (e *Etcd) LearnerPromoted()                   { e.promoted.Inc() }
func (e *Etcd) LearnerPromoteFailed(reason string) { e.promoteFailed.WithLabelValues(reason).Inc() }

type applyKey struct {
	op      string
	success bool
}

// Applied implements server.ApplyObserver (etcd_server_apply_duration_seconds, with
// etcd's version label "v3"); series are cached by op, so the apply path formats no
// label after the first of each.
func (e *Etcd) Applied(op string, success bool, took time.Duration) {
	cachedSeries(&e.applySeries, applyKey{op, success}, func() prometheus.Observer {
		return e.applySec.WithLabelValues("v3", op, strconv.FormatBool(success))
	}).Observe(float64(took.Microseconds()) / 1e6)
}

// cachedSeries is the series of k in cache, made by mk the first time.
func cachedSeries(cache *sync.Map, k applyKey, mk func() prometheus.Observer) prometheus.Observer {
	o, ok := cache.Load(k)
	if !ok {
		o, _ = cache.LoadOrStore(k, mk())
	}
	return o.(prometheus.Observer)
}

// Requested implements server.RequestObserver (etcd_server_request_duration_seconds),
// its series cached as Applied's.
func (e *Etcd) Requested(typ string, success bool, took time.Duration) {
	cachedSeries(&e.requestSeries, applyKey{typ, success}, func() prometheus.Observer {
		return e.requestSec.WithLabelValues(typ, strconv.FormatBool(success))
	}).Observe(took.Seconds())
}

func (e *Etcd) peer(id uint64) *peerSeries {
	if p, ok := e.peers.Load(id); ok {
		return p.(*peerSeries)
	}
	l := strconv.FormatUint(id, 16)
	p, _ := e.peers.LoadOrStore(id, &peerSeries{sent: e.peerSent.WithLabelValues(l), failed: e.peerFailed.WithLabelValues(l),
		received: e.peerReceived.WithLabelValues(l)})
	return p.(*peerSeries)
}

// PeerSent, PeerSendFailed, PeerReceived, HeartbeatSendFailed and SnapshotSent
// implement transport.Observer.
func (e *Etcd) PeerSent(to uint64, bytes int)       { e.peer(to).sent.Add(float64(bytes)) }
func (e *Etcd) PeerSendFailed(to uint64, msgs int)  { e.peer(to).failed.Add(float64(msgs)) }
func (e *Etcd) PeerReceived(from uint64, bytes int) { e.peer(from).received.Add(float64(bytes)) }
func (e *Etcd) HeartbeatSendFailed(uint64)          { e.heartbeatFailed.Inc() }
func (e *Etcd) SnapshotSent(to uint64, took time.Duration, err error) {
	l := strconv.FormatUint(to, 16)
	if err != nil {
		e.snapFailure.WithLabelValues(l).Inc()
		e.peer(to).failed.Inc() // etcd counts a failed snapshot send there too
		return
	}
	e.snapSuccess.WithLabelValues(l).Inc()
	e.snapDuration.WithLabelValues(l).Observe(took.Seconds())
	e.BackendSnapshotted(took)
}

// PeerRoundTrip records one probe's round trip to the peer.
func (e *Etcd) PeerRoundTrip(to uint64, took time.Duration) {
	e.peerRTT.WithLabelValues(strconv.FormatUint(to, 16)).Observe(took.Seconds())
}

// LeaseGranted, LeaseRevoked and LeaseRenewed implement server.LeaseObserver.
func (e *Etcd) LeaseGranted(ttl int64) {
	e.leaseGranted.Inc()
	e.leaseTTL.Observe(float64(ttl))
}
func (e *Etcd) LeaseRevoked() { e.leaseRevoked.Inc() }
func (e *Etcd) LeaseRenewed() { e.leaseRenewed.Inc() }

// CompactionBatch is mvcc.Options.OnCompactBatch: one batch of a physical compaction
// (etcd's pause: the time one batch holds the store) and the versions it deleted.
func (e *Etcd) CompactionBatch(took time.Duration, versions int) {
	e.compactPause.Observe(float64(took) / float64(time.Millisecond))
	e.compactKeys.Add(float64(versions))
}

// Compacted is mvcc.Options.OnCompacted: a physical compaction finished after took.
func (e *Etcd) Compacted(took time.Duration) {
	e.compactTotal.Observe(float64(took) / float64(time.Millisecond))
	e.compactLast.Set(float64(time.Now().Unix()))
}

// Hashed and HashedKV implement server.HashObserver.
func (e *Etcd) Hashed(took time.Duration)   { e.hashSec.Observe(took.Seconds()) }
func (e *Etcd) HashedKV(took time.Duration) { e.hashRevSec.Observe(took.Seconds()) }
