// Package config owns the command line, environment and YAML configuration of the
// metastore binary: which etcd v3.7.3 flags exist, how they are spelled, their defaults,
// how ETCD_* environment variables and --config-file map onto them, and etcd's
// validation rules and messages. It also builds the zap logger the flags describe and
// refuses data directories written by etcd itself.
//
// It must not touch the network, start servers or open storage: it only turns
// (args, environment, files) into a validated *Config.
//
// Contract of Parse, in etcd's order:
//  1. flags are parsed with Go's flag package, exactly as etcd does (-f v, --f v, --f=v,
//     bare booleans); an unknown flag or a bad value is a *FlagError (etcd exits 2);
//  2. a positional argument is an error (`"x" is not a valid flag`, etcd exits 1);
//  3. --version short-cuts everything else (Config.PrintVersion);
//  4. if --config-file (or ETCD_CONFIG_FILE) is set, the YAML file is the ONLY source:
//     other flags and the environment are ignored, as in etcd;
//  5. otherwise ETCD_<FLAG> variables fill every flag not given on the command line;
//     a variable shadowed by a flag given on the command line is an error;
//  6. defaults are derived (initial-cluster from --name, data-dir "<name>.metastore");
//  7. Validate applies etcd's checks with etcd's messages.
//
// Every etcd flag metastore does not implement is accepted and produces one warning.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults, as in etcd v3.7.3 (embed.NewConfig) unless marked "ours".
const (
	DefaultName                    = "default"
	DefaultListenPeerURLs          = "http://localhost:2380"
	DefaultListenClientURLs        = "http://localhost:2379"
	DefaultAdvertisePeerURLs       = "http://localhost:2380"
	DefaultAdvertiseClientURLs     = "http://localhost:2379"
	DefaultInitialCluster          = DefaultName + "=" + DefaultAdvertisePeerURLs
	DefaultInitialClusterToken     = "etcd-cluster"
	DefaultSnapshotCount           = uint64(10000)
	DefaultSnapshotCatchUpEntries  = uint64(5000)
	DefaultHeartbeatInterval       = 100 * time.Millisecond
	DefaultElectionTimeout         = 1000 * time.Millisecond
	DefaultQuotaBackendBytes       = int64(2 * 1024 * 1024 * 1024) // used when --quota-backend-bytes is 0
	MaxQuotaBackendBytes           = int64(8 * 1024 * 1024 * 1024) // above this etcd warns
	DefaultMaxRequestBytes         = uint(1.5 * 1024 * 1024)
	DefaultMaxTxnOps               = uint(128)
	DefaultAutoCompactionMode      = CompactionModePeriodic
	DefaultAutoCompactionRetention = "0"
	DefaultLogger                  = "zap"
	DefaultLogLevel                = "info"
	DefaultLogFormat               = "json"
	DefaultLogOutput               = "default"
	DefaultStorageEngine           = StorageEnginePebble // ours

	// DefaultWatchProgress is etcd's --watch-progress-notify-interval default.
	DefaultWatchProgress = 10 * time.Minute

	// DataDirSuffix is ours: etcd's default data dir is "<name>.etcd".
	DataDirSuffix = ".metastore"

	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"

	CompactionModePeriodic = "periodic"
	CompactionModeRevision = "revision"

	StorageEnginePebble  = "pebble"
	StorageEngineRocksDB = "rocksdb"

	// maxElectionTimeout is etcd's upper bound for --election-timeout.
	maxElectionTimeout = 50000 * time.Millisecond
)

// Sentinel errors. Messages that etcd prints are reproduced verbatim.
var (
	// ErrHelp is returned by Parse for -h / --help: the caller prints HelpText to stdout and exits 0.
	ErrHelp = errors.New("config: help requested")
	// ErrUnsetAdvertiseClientURLs is etcd's ErrUnsetAdvertiseClientURLsFlag.
	ErrUnsetAdvertiseClientURLs = errors.New("--advertise-client-urls is required when --listen-client-urls is set explicitly")
	// ErrConflictBootstrapFlags is etcd's ErrConflictBootstrapFlags.
	ErrConflictBootstrapFlags = errors.New("multiple discovery or bootstrap flags are set. " +
		"Choose one of \"initial-cluster\", \"discovery-endpoints\" or \"discovery-srv\"")
	// ErrEtcdDataDir is returned by CheckDataDir for a directory written by etcd (bbolt + WAL).
	ErrEtcdDataDir = errors.New("config: data directory holds an etcd (bbolt) data layout")
)

// FlagError is a command-line syntax error: unknown flag, missing argument, bad value.
// etcd prints the message and its usage text to stderr and exits 2 for these.
type FlagError struct{ Msg string }

func (e *FlagError) Error() string { return e.Msg }

// ExitCode is the process exit status etcd uses for an error returned by Parse:
// 0 for ErrHelp, 2 for a *FlagError, 1 for everything else (validation, files, environment).
func ExitCode(err error) int {
	var fe *FlagError
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return 0
	case errors.As(err, &fe):
		return 2
	default:
		return 1
	}
}

// Config is the validated configuration of one member. Durations are typed; URL lists are
// parsed, deduplicated and sorted as etcd does (types.NewURLs sorts them).
type Config struct {
	Name    string // --name
	DataDir string // --data-dir; "<name>.metastore" when unset
	WALDir  string // --wal-dir; "" means inside DataDir

	ListenClientURLs []url.URL // --listen-client-urls
	// ListenMetricsURLs serve /metrics (and /health) on their own (etcd's
	// --listen-metrics-urls); Metrics is "basic" or "extensive" (etcd's --metrics:
	// extensive adds grpc_server_handling_seconds).
	ListenMetricsURLs   []url.URL
	Metrics             string
	AdvertiseClientURLs []url.URL // --advertise-client-urls
	ListenPeerURLs      []url.URL // --listen-peer-urls
	AdvertisePeerURLs   []url.URL // --initial-advertise-peer-urls

	InitialCluster      string // --initial-cluster, "name=url,..." (derived from Name when left default)
	InitialClusterState string // --initial-cluster-state: ClusterStateNew or ClusterStateExisting
	InitialClusterToken string // --initial-cluster-token

	SnapshotCount          uint64        // --snapshot-count
	SnapshotCatchUpEntries uint64        // --snapshot-catchup-entries
	HeartbeatInterval      time.Duration // --heartbeat-interval (milliseconds on the command line and in YAML)
	ElectionTimeout        time.Duration // --election-timeout (milliseconds on the command line and in YAML)
	// InitialElectionTickAdvance (--initial-election-tick-advance, default true): at
	// start, once peers answer, fast-forward the election clock as etcd does.
	InitialElectionTickAdvance bool
	// StrictReconfigCheck (--strict-reconfig-check, default true): refuse a membership
	// change that would lose quorum, as etcd.
	StrictReconfigCheck bool
	// MaxLearners (--max-learners, default 1): the most learners the member list holds.
	MaxLearners int
	// Auth: --auth-token, --auth-token-ttl, --bcrypt-cost (auth.go).
	Auth AuthFlags

	QuotaBackendBytes int64 // --quota-backend-bytes as given; see QuotaBytes
	MaxRequestBytes   uint  // --max-request-bytes
	MaxTxnOps         uint  // --max-txn-ops

	// WatchProgress (--watch-progress-notify-interval, default 10m): how often
	// watches that asked for progress notifications get one while idle.
	WatchProgress time.Duration

	AutoCompactionMode      string // --auto-compaction-mode: periodic | revision
	AutoCompactionRetention string // --auto-compaction-retention as given
	// Parsed from the two above as etcd does: in periodic mode a bare integer is hours,
	// otherwise a Go duration; in revision mode the number of revisions to keep.
	// Zero means auto compaction is off.
	AutoCompactionPeriod    time.Duration
	AutoCompactionRevisions int64

	Logger     string   // --logger (only "zap")
	LogLevel   string   // --log-level: debug, info, warn, error, panic, fatal
	LogFormat  string   // --log-format: json, console
	LogOutputs []string // --log-outputs: default, stderr, stdout or file paths

	// TLS (see tls.go): the client and peer sides, self-signed certificates
	// (written under <data-dir>/fixtures/{client,peer}), and the settings both share.
	ClientTLS              TLSFiles
	PeerTLS                TLSFiles
	ClientAutoTLS          bool     // --auto-tls
	PeerAutoTLS            bool     // --peer-auto-tls
	SelfSignedCertValidity uint     // --self-signed-cert-validity, years
	CipherSuites           []string // --cipher-suites, names as crypto/tls spells them, in preference order
	TLSMinVersion          string   // --tls-min-version: TLS1.2 or TLS1.3
	TLSMaxVersion          string   // --tls-max-version: "" (Go's default), TLS1.2 or TLS1.3

	ConfigFile    string // --config-file (or ETCD_CONFIG_FILE)
	PrintVersion  bool   // --version: the caller prints VersionText and exits 0
	StorageEngine string // --storage-engine (ours): pebble | rocksdb
	EnablePprof   bool   // --enable-pprof: serve /debug/pprof/ on the client URLs

	// Serving: gRPC limits, the JSON gateway, log rotation, slow warnings, tracing,
	// our connection and rate limits (serving.go).
	Serving

	// Ignored holds every etcd flag that was set but that metastore does not implement,
	// flag name -> value as given. Each also produced a warning.
	Ignored map[string]string
	// ExplicitlySet names every flag set on the command line, by environment or in the file.
	ExplicitlySet map[string]bool
}

// NewConfig returns a Config holding etcd's defaults (and ours for DataDir and StorageEngine,
// which are derived/defaulted by Parse).
func NewConfig() *Config {
	return &Config{
		Name:                       DefaultName,
		ListenClientURLs:           mustURLs(DefaultListenClientURLs),
		Metrics:                    "basic",
		AdvertiseClientURLs:        mustURLs(DefaultAdvertiseClientURLs),
		ListenPeerURLs:             mustURLs(DefaultListenPeerURLs),
		AdvertisePeerURLs:          mustURLs(DefaultAdvertisePeerURLs),
		InitialCluster:             DefaultInitialCluster,
		InitialClusterState:        ClusterStateNew,
		InitialClusterToken:        DefaultInitialClusterToken,
		SnapshotCount:              DefaultSnapshotCount,
		SnapshotCatchUpEntries:     DefaultSnapshotCatchUpEntries,
		HeartbeatInterval:          DefaultHeartbeatInterval,
		ElectionTimeout:            DefaultElectionTimeout,
		InitialElectionTickAdvance: true,
		StrictReconfigCheck:        true,
		MaxLearners:                1,
		Auth:                       defaultAuthFlags(),
		MaxRequestBytes:            DefaultMaxRequestBytes,
		MaxTxnOps:                  DefaultMaxTxnOps,
		WatchProgress:              DefaultWatchProgress,
		AutoCompactionMode:         DefaultAutoCompactionMode,
		AutoCompactionRetention:    DefaultAutoCompactionRetention,
		Logger:                     DefaultLogger,
		LogLevel:                   DefaultLogLevel,
		LogFormat:                  DefaultLogFormat,
		LogOutputs:                 []string{DefaultLogOutput},
		StorageEngine:              DefaultStorageEngine,
		SelfSignedCertValidity:     DefaultSelfSignedCertValidity,
		TLSMinVersion:              DefaultTLSMinVersion,
		TLSMaxVersion:              DefaultTLSMaxVersion,
		Serving:                    defaultServing(),
		Ignored:                    map[string]string{},
		ExplicitlySet:              map[string]bool{},
	}
}

// QuotaBytes is the backend size limit in effect, as etcd computes it: 0 means the
// default 2 GiB; a negative value disables the quota (returned as 0, "no limit").
func (c *Config) QuotaBytes() int64 {
	switch {
	case c.QuotaBackendBytes == 0:
		return DefaultQuotaBackendBytes
	case c.QuotaBackendBytes < 0:
		return 0
	default:
		return c.QuotaBackendBytes
	}
}

// ElectionTicks is ElectionTimeout in heartbeats, as etcd gives it to raft.
func (c *Config) ElectionTicks() int { return int(c.ElectionTimeout / c.HeartbeatInterval) }

// URLStrings returns the String() of each URL.
func URLStrings(us []url.URL) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].String()
	}
	return out
}

// deriveDefaults applies etcd's post-parse defaulting (etcdmain UpdateDefaultClusterFromName,
// without the 0.0.0.0 → hostname substitution) and our data-dir default.
func (c *Config) deriveDefaults() {
	if c.Name != DefaultName && c.InitialCluster == DefaultInitialCluster {
		c.InitialCluster = initialClusterFromName(c.Name, c.AdvertisePeerURLs)
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + DataDirSuffix
	}
	if c.InitialClusterState == "" {
		c.InitialClusterState = ClusterStateNew
	}
	if c.StorageEngine == "" {
		c.StorageEngine = DefaultStorageEngine
	}
	if len(c.LogOutputs) == 0 {
		c.LogOutputs = []string{DefaultLogOutput}
	}
}

func initialClusterFromName(name string, apurls []url.URL) string {
	if len(apurls) == 0 {
		return ""
	}
	if name == "" {
		name = DefaultName
	}
	parts := make([]string, len(apurls))
	for i := range apurls {
		parts[i] = name + "=" + apurls[i].String()
	}
	return strings.Join(parts, ",")
}

// parseCompactionRetention mirrors etcd's embed.parseCompactionRetention.
func (c *Config) parseCompactionRetention() error {
	c.AutoCompactionPeriod, c.AutoCompactionRevisions = 0, 0
	var d time.Duration
	if h, err := strconv.Atoi(c.AutoCompactionRetention); err == nil && h >= 0 {
		switch c.AutoCompactionMode {
		case CompactionModeRevision:
			d = time.Duration(int64(h))
		case CompactionModePeriodic:
			d = time.Duration(int64(h)) * time.Hour
		}
	} else {
		pd, perr := time.ParseDuration(c.AutoCompactionRetention)
		if perr != nil {
			return fmt.Errorf("error parsing CompactionRetention: %w", perr)
		}
		d = pd
	}
	if c.AutoCompactionMode == CompactionModeRevision {
		c.AutoCompactionRevisions = int64(d)
	} else {
		c.AutoCompactionPeriod = d
	}
	return nil
}
