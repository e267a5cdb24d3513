package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// errParse is the text Go's flag package prints for a malformed number; our own
// flag.Value types return it too so that messages read as etcd's.
var errParse = errors.New("parse error")

// newFlagSet registers every flag etcd v3.7.3 accepts (plus --storage-engine) on a
// flag.FlagSet that writes into c. Unimplemented flags write into c.Ignored.
func newFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	// Implemented.
	fs.StringVar(&c.Name, "name", c.Name, "Human-readable name for this member.")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "Path to the data directory ('${name}"+DataDirSuffix+"' when empty).")
	fs.StringVar(&c.WALDir, "wal-dir", c.WALDir, "Path to the dedicated wal directory.")
	fs.Var(&urlsValue{&c.ListenPeerURLs}, "listen-peer-urls", "List of URLs to listen on for peer traffic.")
	fs.Var(&urlsValue{&c.ListenClientURLs}, "listen-client-urls", "List of URLs to listen on for client grpc traffic.")
	fs.Var(&urlsValue{&c.ListenMetricsURLs}, "listen-metrics-urls", "List of URLs to listen on for the metrics and health endpoints.")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics")
	fs.Var(&urlsValue{&c.AdvertisePeerURLs}, "initial-advertise-peer-urls", "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.Var(&urlsValue{&c.AdvertiseClientURLs}, "advertise-client-urls", "List of this member's client URLs to advertise to the public.")
	fs.StringVar(&c.InitialCluster, "initial-cluster", c.InitialCluster, "Initial cluster configuration for bootstrapping.")
	fs.Var(&choiceValue{&c.InitialClusterState, []string{ClusterStateNew, ClusterStateExisting}}, "initial-cluster-state",
		"Initial cluster state ('new' or 'existing').")
	fs.StringVar(&c.InitialClusterToken, "initial-cluster-token", c.InitialClusterToken, "Initial cluster token for the etcd cluster during bootstrap.")
	fs.Uint64Var(&c.SnapshotCount, "snapshot-count", c.SnapshotCount, "Number of committed transactions to trigger a snapshot to disk.")
	fs.Uint64Var(&c.SnapshotCatchUpEntries, "snapshot-catchup-entries", c.SnapshotCatchUpEntries, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	fs.Var(&msValue{&c.HeartbeatInterval}, "heartbeat-interval", "Time (in milliseconds) of a heartbeat interval.")
	fs.Var(&msValue{&c.ElectionTimeout}, "election-timeout", "Time (in milliseconds) for an election to timeout.")
	fs.BoolVar(&c.InitialElectionTickAdvance, "initial-election-tick-advance", c.InitialElectionTickAdvance, "Whether to fast-forward initial election ticks on boot for faster election.")
	fs.BoolVar(&c.StrictReconfigCheck, "strict-reconfig-check", c.StrictReconfigCheck, "Reject reconfiguration requests that would cause quorum loss.")
	fs.IntVar(&c.MaxLearners, "max-learners", c.MaxLearners, "Sets the maximum number of learners that can be available in the cluster membership.")
	fs.Int64Var(&c.QuotaBackendBytes, "quota-backend-bytes", c.QuotaBackendBytes, "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).")
	fs.UintVar(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.UintVar(&c.MaxTxnOps, "max-txn-ops", c.MaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.DurationVar(&c.WatchProgress, "watch-progress-notify-interval", c.WatchProgress, "Duration of periodic watch progress notifications.")
	fs.StringVar(&c.AutoCompactionMode, "auto-compaction-mode", c.AutoCompactionMode, "Interpret 'auto-compaction-retention' one of: 'periodic', 'revision'.")
	fs.StringVar(&c.AutoCompactionRetention, "auto-compaction-retention", c.AutoCompactionRetention, "Auto compaction retention length. 0 means disable auto compaction.")
	fs.StringVar(&c.Logger, "logger", c.Logger, "Currently only supports 'zap' for structured logging.")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "Configures log format. Only supports json, console.")
	fs.Var(&stringsValue{&c.LogOutputs}, "log-outputs", "Specify 'stdout' or 'stderr' or a comma-separated list of output file paths.")
	fs.StringVar(&c.ConfigFile, "config-file", "", "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.")
	fs.BoolVar(&c.PrintVersion, "version", false, "Print the version and exit.")
	fs.BoolVar(&c.EnablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	addTLSFlags(fs, c)
	addServingFlags(fs, &c.Serving)
	addAuthFlags(fs, c)
	fs.StringVar(&c.StorageEngine, "storage-engine", c.StorageEngine, "metastore only: storage engine, 'pebble' or 'rocksdb'.")

	// Accepted, warned about, ignored.
	for _, f := range unimplementedFlags {
		fs.Var(&ignoredValue{flagSpec: f, into: c.Ignored}, f.name, "not implemented by metastore yet; ignored")
	}
	for _, name := range etcdIgnoredFlags {
		fs.Var(&ignoredValue{flagSpec: flagSpec{name: name, kind: kindLegacy}, into: c.Ignored}, name, "no longer supported by etcd; ignored")
	}
	return fs
}

// urlsValue is etcd's flags.UniqueURLs: a comma-separated URL list; "" leaves the value unchanged.
type urlsValue struct{ p *[]url.URL }

func (v *urlsValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(URLStrings(*v.p), ",")
}

func (v *urlsValue) Set(s string) error {
	if s == "" {
		return nil
	}
	us, err := ParseURLs(strings.Split(s, ","))
	if err != nil {
		return err
	}
	*v.p = us
	return nil
}

// choiceValue is etcd's flags.SelectiveStringValue.
type choiceValue struct {
	p     *string
	valid []string
}

func (v *choiceValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v *choiceValue) Set(s string) error {
	for _, ok := range v.valid {
		if s == ok {
			*v.p = s
			return nil
		}
	}
	return errors.New("invalid value")
}

// msValue is an unsigned number of milliseconds held as a time.Duration.
type msValue struct{ p *time.Duration }

func (v *msValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(v.p.Milliseconds(), 10)
}

func (v *msValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, strconv.IntSize)
	if err != nil {
		return errParse
	}
	*v.p = time.Duration(n) * time.Millisecond
	return nil
}

// stringsValue is etcd's flags.UniqueStringsValue: comma-separated, deduplicated, sorted.
type stringsValue struct{ p *[]string }

func (v *stringsValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v *stringsValue) Set(s string) error {
	*v.p = uniqueSorted(strings.Split(s, ","))
	return nil
}

func uniqueSorted(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// ignoredValue checks a value the way etcd would parse it for that flag and records it.
type ignoredValue struct {
	flagSpec
	into map[string]string
	val  string
}

func (v *ignoredValue) IsBoolFlag() bool { return v.kind == kindBool || v.kind == kindLegacy }
func (v *ignoredValue) String() string   { return v.val }

func (v *ignoredValue) Set(s string) error {
	if err := v.check(s); err != nil {
		return err
	}
	v.val = s
	v.into[v.name] = s
	return nil
}

func (f flagSpec) check(s string) error {
	var err error
	switch f.kind {
	case kindBool:
		_, err = strconv.ParseBool(s)
	case kindUint:
		_, err = strconv.ParseUint(s, 0, strconv.IntSize)
	case kindUint32: // etcd's flags.Uint32Value returns strconv's error as is
		_, perr := strconv.ParseUint(s, 0, 32)
		return perr
	case kindInt:
		_, err = strconv.ParseInt(s, 0, strconv.IntSize)
	case kindDuration:
		_, err = time.ParseDuration(s)
	case kindURLs:
		if s == "" {
			return nil
		}
		_, perr := ParseURLs(strings.Split(s, ","))
		return perr
	case kindChoice:
		for _, ok := range f.choices {
			if s == ok {
				return nil
			}
		}
		return errors.New("invalid value")
	case kindChoices:
		for _, p := range strings.Split(s, ",") {
			if err := (flagSpec{kind: kindChoice, choices: f.choices}).check(p); err != nil {
				return fmt.Errorf("invalid value %q", p)
			}
		}
	}
	if err != nil {
		return errParse
	}
	return nil
}
