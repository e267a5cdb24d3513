package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/internal/apply"
	"github.com/metastore/metastore/internal/config"
	"github.com/metastore/metastore/internal/grpcapi"
	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/metrics"
	"github.com/metastore/metastore/internal/mvcc"
	"github.com/metastore/metastore/internal/raftlog"
	"github.com/metastore/metastore/internal/raftnode"
	"github.com/metastore/metastore/internal/server"
	"github.com/metastore/metastore/internal/snap"
	"github.com/metastore/metastore/internal/storage"
	"github.com/metastore/metastore/internal/storage/engines"
	"github.com/metastore/metastore/internal/tlsconf"
	"github.com/metastore/metastore/internal/transport"
	"github.com/metastore/metastore/internal/watch"
)

// maxSizePerMsg is raft's bound on the entries of one message, as etcd's (1 MiB); the
// peer frame bound is derived from it.
const maxSizePerMsg = 1 << 20

// member is one running MetaStore member: every part and its listeners.
type member struct {
	lg        *zap.Logger
	eng       storage.Engine
	store     *mvcc.Store
	hub       *watch.Hub
	node      *raftnode.Node
	rlog      *raftlog.Storage
	tr        *transport.Transport
	srv       *server.Server
	grpc      *grpc.Server
	inproc    *clientv3.Client // serves v3lock and v3election (lockelect.go)
	gwClose   func()           // closes the JSON gateway's in-process connection (serving.go)
	tracing   *tracing         // nil unless --enable-distributed-tracing (tracing.go)
	listeners []net.Listener
	peerHTTP  []*http.Server
	wg        sync.WaitGroup
	stopc     chan struct{} // closed by close
}

func (m *member) done() <-chan struct{} { return m.srv.Done() }

// startMember opens (or bootstraps) the member's data dir and starts serving.
func startMember(cfg *config.Config, lg *zap.Logger) (_ *member, err error) {
	if err := config.CheckDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	m := &member{lg: lg, stopc: make(chan struct{})}
	defer func() {
		if err != nil {
			m.close(context.Background())
		}
	}()
	// The registry and etcd's metrics first: the engine, the WAL and the transport
	// feed them from their start (metrics.go).
	reg := prometheus.NewRegistry()
	var selfID uint64
	em := newEtcdMetrics(reg, m, func() uint64 { return selfID }, cfg.QuotaBytes())
	// The engine (--storage-engine) is recorded in db/ when it is created; another
	// engine, or a build without it, refuses that dir (storage/engines).
	eng, err := engines.Open(filepath.Join(cfg.DataDir, "db"), engines.Options{Engine: cfg.StorageEngine, Logger: lg, MemTableSize: 16 << 20, OnCommit: em.BackendCommitted})
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	m.eng = eng
	snapDir := filepath.Join(cfg.DataDir, "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return nil, err
	}
	if err := snap.ResumeInstall(eng, snapDir); err != nil {
		return nil, fmt.Errorf("resume snapshot install: %w", err)
	}
	peerTLSInfo, peerDialTLS, err := peerTLS(cfg, lg)
	if err != nil {
		return nil, err
	}
	// Followers forward every lease renewal to the leader with it: keep enough idle
	// connections (net/http keeps 2 per host by default, and each renewal past them
	// would dial a new one).
	peerClient := &http.Client{Transport: &http.Transport{TLSClientConfig: peerDialTLS,
		MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}}
	cl, selfID, fresh, err := loadOrBootstrapCluster(cfg, eng, lg, peerClient)
	registerEngineMetrics(reg, eng)
	if err != nil {
		return nil, err
	}
	if m.store, err = mvcc.OpenWithOptions(eng, mvcc.Options{OnCompactBatch: em.CompactionBatch, OnCompacted: em.Compacted}); err != nil {
		return nil, err
	}
	app, err := apply.New(eng, m.store, lg)
	if err != nil {
		return nil, err
	}
	app.SetMaxLearners(cfg.MaxLearners)
	// The raft log lives in its own WAL, in --wal-dir as etcd's does; the engine's
	// own write-ahead log stays in the engine's dir.
	walDir := cfg.WALDir
	if walDir == "" {
		walDir = filepath.Join(cfg.DataDir, "wal")
	}
	if err := storage.CheckLayout(eng); err != nil {
		return nil, err
	}
	rlog, err := raftlog.Open(eng, raftlog.Options{Dir: walDir, Logger: lg, SnapDir: snapDir, OnSync: em.WALSynced})
	if err != nil {
		return nil, err
	}
	m.rlog = rlog
	self := cl.Member(selfID)
	lg.Info("starting member",
		zap.String("name", cfg.Name), zap.String("member-id", membership.IDString(selfID)),
		zap.String("cluster-id", membership.IDString(cl.ID)), zap.Bool("new-cluster", fresh),
		zap.String("data-dir", cfg.DataDir), zap.String("storage-engine", eng.Name()))

	m.tr = transport.New(transport.Config{
		ID: selfID, ClusterID: cl.ID, Logger: lg, SnapDir: snapDir, TLS: peerDialTLS,
		// Through the store, so that no outgoing snapshot is taken mid-install.
		Snapshots:     snap.NewSource(m.store),
		MaxFrameBytes: transport.MaxFrameFor(uint64(cfg.MaxRequestBytes), maxSizePerMsg),
		ServerVersion: server.Version, ClusterVersion: server.ClusterVersion, // GET /version for the leader's cluster-version check
		Observer: em,
	})
	for _, p := range cl.Members {
		if p.ID != selfID {
			m.tr.AddPeer(p.ID, p.PeerURLs)
		}
	}
	// Bootstrap raft whenever its log is still empty, not only on the very first start:
	// a crash between saving the member ID and raft's first write must not leave a
	// member that restarts with no log and no peers.
	last, err := rlog.LastIndex()
	if err != nil {
		return nil, err
	}
	var peers []raft.Peer
	if last == 0 && cfg.InitialClusterState == config.ClusterStateNew {
		for _, p := range cl.Members {
			// As etcd, each bootstrap entry carries its member: applying them
			// builds the state machine's member list.
			ctx, err := membership.EncodeAddContext(p)
			if err != nil {
				return nil, err
			}
			peers = append(peers, raft.Peer{ID: p.ID, Context: ctx})
		}
	}
	m.node, err = raftnode.Start(raftnode.Config{
		ID:                       selfID,
		Peers:                    peers,
		Storage:                  rlog,
		AppliedState:             appliedState(m.store),
		ConfChangeRefused:        app.ConfChangeRefused,
		Transport:                m.tr,
		Logger:                   lg,
		TickInterval:             cfg.HeartbeatInterval,
		ElectionTicks:            cfg.ElectionTicks(),
		HeartbeatTicks:           1,
		MaxSizePerMsg:            maxSizePerMsg,
		SnapshotCount:            cfg.SnapshotCount,
		SnapshotCatchupEntries:   cfg.SnapshotCatchUpEntries,
		LeaderSendsBeforePersist: true, // as etcd: raft counts the leader's own entries only once persisted
	})
	if err != nil {
		return nil, err
	}
	m.tr.SetRaft(m.node)
	if len(cl.Members) == 1 {
		ticks := cfg.ElectionTicks() - 1
		lg.Info("started as single-node; fast-forwarding election ticks",
			zap.String("local-member-id", membership.IDString(selfID)), zap.Int("forward-ticks", ticks),
			zap.Duration("forward-duration", time.Duration(ticks)*cfg.HeartbeatInterval),
			zap.Int("election-ticks", cfg.ElectionTicks()), zap.Duration("election-timeout", cfg.ElectionTimeout))
		m.node.AdvanceTicks(ticks)
	}

	authCfg := server.AuthConfig{Token: cfg.Auth.Token, TokenTTL: cfg.Auth.TokenTTL, BcryptCost: int(cfg.Auth.BcryptCost),
		ClientCertAuth: cfg.ClientTLS.ClientCertAuth}
	if err := server.CheckAuthConfig(authCfg); err != nil {
		return nil, err
	}
	m.hub = watch.New(m.store, lg)
	if m.tracing, err = newTracing(context.Background(), cfg, lg); err != nil {
		return nil, fmt.Errorf("distributed tracing: %w", err)
	}
	m.srv = server.New(server.Config{
		Logger:            lg,
		MemberID:          selfID,
		ClusterID:         cl.ID,
		Engine:            eng,
		Store:             m.store,
		Applier:           app,
		Node:              m.node,
		MaxRequestBytes:   cfg.MaxRequestBytes,
		QuotaBackendBytes: cfg.QuotaBytes(),
		ElectionTimeout:   cfg.ElectionTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval,
		IsLearner:         self != nil && self.IsLearner,
		Peers:             m.tr,

		StrictReconfigCheck: cfg.StrictReconfigCheck,

		AutoCompactionMode:      cfg.AutoCompactionMode,
		AutoCompactionPeriod:    cfg.AutoCompactionPeriod,
		AutoCompactionRevisions: cfg.AutoCompactionRevisions,
		PeerClient:              peerClient,
		OnApply:                 m.hub.Notify,
		Tracer:                  m.tracing.serverTracer(),
		WarningApplyDuration:    cfg.WarningApplyDuration,
		Auth:                    authCfg,
		Observer:                em,
	})
	m.tr.SetMembership(m.srv) // GET /members, and peers removed from the cluster

	// Peer listeners first, so the other members can reach us while we start.
	for _, u := range cfg.ListenPeerURLs {
		l, err := tlsconf.ListenPeer(u, peerTLSInfo)
		if err != nil {
			return nil, fmt.Errorf("listen on peer URL %s: %w", u.String(), err)
		}
		m.listeners = append(m.listeners, l)
		hs := &http.Server{Handler: h2c.NewHandler(peerHandler(m.tr.Handler(), m.srv), &http2.Server{}), ReadHeaderTimeout: 10 * time.Second}
		m.peerHTTP = append(m.peerHTTP, hs)
		m.wg.Add(1)
		go func() { defer m.wg.Done(); _ = hs.Serve(l) }()
		lg.Info("serving peer traffic", zap.String("address", l.Addr().String()))
	}
	if err := m.startIntegrity(cfg); err != nil { // integrity.go
		return nil, err
	}
	m.wg.Add(1)
	go m.probePeers() // etcd_network_peer_round_trip_time_seconds (metrics.go)
	if len(cl.Members) > 1 && cfg.InitialElectionTickAdvance {
		m.wg.Add(1)
		go m.advanceTicksWhenPeersAnswer(cfg, selfID)
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerWatchMetrics(reg, m.hub)
	if c := engines.Collector(m.eng); c != nil { // RocksDB's metastore_engine_* statistics
		reg.MustRegister(c)
	}
	m.grpc = grpcapi.NewServer(m.srv, servingOptions(cfg, grpcapi.Options{
		Logger:          lg,
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxTxnOps:       cfg.MaxTxnOps,
		Registry:        reg,

		HandlingTimeHistogram: cfg.Metrics == "extensive",
		StatsHandler:          metrics.NewGRPC(reg),

		NewWatchStream:              func() grpcapi.WatchStream { return m.hub.NewStream() },
		WatchProgressNotifyInterval: cfg.WatchProgress,
		ElectionTimeout:             cfg.ElectionTimeout,
		ServerOptions:               m.tracing.grpcOptions(),
	}))
	if m.inproc, err = serveLockElection(m.grpc, lg); err != nil {
		return nil, fmt.Errorf("in-process client for v3lock and v3election: %w", err)
	}
	mux := grpcapi.NewHTTPMux(m.srv, reg, lg)
	if cfg.EnablePprof {
		lg.Info("pprof is enabled", zap.String("path", grpcapi.PathPprof))
		grpcapi.RegisterPprof(mux)
	}
	handler, gwClose, err := clientHandler(cfg, m.grpc, mux, lg)
	if err != nil {
		return nil, fmt.Errorf("grpc gateway: %w", err)
	}
	m.gwClose = gwClose
	if err := m.serveMetricsURLs(cfg, reg, lg); err != nil {
		return nil, err
	}
	clientLs, clientTLSInfo, err := listenClients(cfg, lg)
	if err != nil {
		return nil, err
	}
	limitClients(cfg, clientLs, reg, lg)
	for _, cl := range clientLs {
		m.listeners = append(m.listeners, cl.l)
	}
	for _, cl := range clientLs {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); _ = cl.serve(clientTLSInfo, m.grpc, handler) }()
	}

	go func() {
		if err := m.srv.WaitReady(context.Background()); err != nil {
			return
		}
		pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := m.srv.Publish(pctx, cfg.Name, config.URLStrings(cfg.AdvertiseClientURLs)); err == nil {
			lg.Info("published local member to cluster through raft", zap.String("local-member-id", membership.IDString(selfID)))
		}
		cancel()
		for _, cl := range clientLs {
			cl.logServing(lg)
		}
		lg.Info("ready to serve client requests")
	}()
	return m, nil
}

// peerHandler serves the peer protocol and, as etcd, the lease requests a follower
// forwards to the leader (server.PathLeases, server.PathLeaseInternal).
func peerHandler(tr http.Handler, srv *server.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", tr)
	mux.Handle(server.PathLeases, srv.LeaseHandler())
	mux.Handle(server.PathLeaseInternal, srv.LeaseHandler())
	mux.Handle(server.PathHashKV, srv.HashKVHandler())
	mux.Handle(server.PathLeaseBatch, srv.LeaseHandler())
	return mux
}

// appliedState is raftnode's Config.AppliedState: the position the state machine
// wrote with its data (snap.ReadMeta), nil before it applied anything, read from a
// snapshot of the store, which is never taken in the middle of a snapshot install.
func appliedState(store *mvcc.Store) func() (*raftpb.SnapshotMetadata, error) {
	return func() (*raftpb.SnapshotMetadata, error) {
		es := store.NewSnapshot()
		defer es.Close()
		md, err := snap.ReadMeta(es)
		if errors.Is(err, snap.ErrNoState) {
			return nil, nil
		}
		return md, err
	}
}

// advanceTicksWhenPeersAnswer is etcd's --initial-election-tick-advance in a cluster of
// several members: once more than one peer answers (waiting up to 5 s, etcd's wait for
// peer connections), the election clock jumps to two ticks before its timeout, so that a
// cluster restarted all at once elects within a few heartbeats instead of after a whole
// election timeout. With a leader already in place nothing changes: its heartbeats
// reset the clock every tick, and pre-vote keeps a member that misses them from
// disturbing it.
func (m *member) advanceTicksWhenPeersAnswer(cfg *config.Config, selfID uint64) {
	defer m.wg.Done()
	ticks := cfg.ElectionTicks() - 2
	if ticks <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	const every = 50 * time.Millisecond
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return
		}
		if n := m.tr.ActivePeers(ctx, 500*time.Millisecond); n > 1 {
			m.lg.Info("initialized peer connections; fast-forwarding election ticks",
				zap.String("local-member-id", membership.IDString(selfID)), zap.Int("forward-ticks", ticks),
				zap.Duration("forward-duration", time.Duration(ticks)*cfg.HeartbeatInterval),
				zap.Int("election-ticks", cfg.ElectionTicks()), zap.Duration("election-timeout", cfg.ElectionTimeout),
				zap.Int("active-remote-members", n))
			m.node.AdvanceTicks(ticks)
			return
		}
	}
}

// close stops serving and closes storage, in the reverse order of start.
func (m *member) close(ctx context.Context) {
	select {
	case <-m.stopc:
	default:
		close(m.stopc)
	}
	if m.hub != nil {
		// First: it ends every Watch stream, which GracefulStop would wait for.
		m.hub.Close()
	}
	if m.inproc != nil {
		_ = m.inproc.Close()
	}
	if m.gwClose != nil {
		m.gwClose()
	}
	if m.grpc != nil {
		stopped := make(chan struct{})
		go func() { m.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			m.grpc.Stop()
		}
	}
	m.tracing.close(ctx)
	if m.srv != nil {
		m.srv.Stop()
	} else if m.node != nil {
		m.node.Stop()
	}
	for _, hs := range m.peerHTTP {
		_ = hs.Close()
	}
	for _, l := range m.listeners {
		_ = l.Close()
	}
	if m.tr != nil {
		m.tr.Stop()
	}
	m.wg.Wait()
	if m.rlog != nil {
		if err := m.rlog.Close(); err != nil {
			m.lg.Warn("closing the raft log", zap.Error(err))
		}
	}
	if m.store != nil {
		_ = m.store.Close()
	}
	if m.eng != nil {
		if err := m.eng.Close(); err != nil {
			m.lg.Warn("closing storage", zap.Error(err))
		}
	}
}

// loadOrBootstrapCluster returns the cluster and this member's ID: from the data dir
// when it has been initialised (the --initial-cluster* flags are then ignored, as in
// etcd), else from the flags, persisting them.
//
// The list is stored as this member's bootstrap list (storage.LocalBootstrapMembers),
// not as the state machine's: apply builds that one from the conf changes in the log
// (raft's bootstrap entries carry their members) or takes it from a snapshot, the same
// on every member. A member joining a running cluster (--initial-cluster-state=existing)
// takes the cluster ID and member IDs from its peers (join.go).
func loadOrBootstrapCluster(cfg *config.Config, eng storage.Engine, lg *zap.Logger, peerClient *http.Client) (*membership.Cluster, uint64, bool, error) {
	idb, err := eng.Get(storage.LocalMemberID)
	switch {
	case err == nil:
		id, err := storage.Uint64(idb)
		if err != nil {
			return nil, 0, false, err
		}
		// The state machine's list once it has applied a conf change; until then
		// the one this member started from.
		mb, err := eng.Get(storage.MetaMembers)
		if errors.Is(err, storage.ErrNotFound) {
			mb, err = eng.Get(storage.LocalBootstrapMembers)
		}
		if err != nil {
			return nil, 0, false, fmt.Errorf("read members: %w", err)
		}
		cl, err := membership.Unmarshal(mb)
		if err != nil {
			return nil, 0, false, err
		}
		lg.Info("restarting member from its data dir; --initial-cluster flags are ignored")
		return cl, id, false, nil
	case !errors.Is(err, storage.ErrNotFound):
		return nil, 0, false, err
	}
	var cl *membership.Cluster
	var selfID uint64
	if cfg.InitialClusterState == config.ClusterStateExisting {
		if cl, selfID, err = clusterFromPeers(cfg, peerClient, lg); err != nil {
			return nil, 0, false, err
		}
	} else {
		ic, err := membership.ParseInitialCluster(cfg.InitialCluster)
		if err != nil {
			return nil, 0, false, err
		}
		if err := membership.VerifyBootstrap(cfg.Name, config.URLStrings(cfg.AdvertisePeerURLs), ic); err != nil {
			return nil, 0, false, err
		}
		if cl, err = membership.NewCluster(cfg.InitialClusterToken, ic); err != nil {
			return nil, 0, false, err
		}
		self := cl.MemberByName(cfg.Name)
		if self == nil {
			return nil, 0, false, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", cfg.Name)
		}
		selfID = self.ID
	}
	mb, err := membership.Marshal(cl)
	if err != nil {
		return nil, 0, false, err
	}
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.LocalBootstrapMembers, mb); err != nil {
		return nil, 0, false, err
	}
	if err := b.Set(storage.MetaClusterID, storage.PutUint64(cl.ID)); err != nil {
		return nil, 0, false, err
	}
	if err := b.Set(storage.LocalMemberID, storage.PutUint64(selfID)); err != nil {
		return nil, 0, false, err
	}
	if err := b.Commit(true); err != nil {
		return nil, 0, false, err
	}
	return cl, selfID, true, nil
}
