package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/metastore/metastore/internal/bench/workload"
)

// loadFlags are the per-command flags shared by most workloads, with etcd benchmark's names.
type loadFlags struct {
	total        int
	duration     time.Duration
	rate         float64
	keySize      int
	valSize      int
	keySpaceSize int
	seqKeys      bool
}

type loadDefaults struct {
	total, keySize, valSize int
	noTotal                 bool // the command counts something else (watch: --put-total)
}

func (l *loadFlags) register(fs *pflag.FlagSet, d loadDefaults) {
	if !d.noTotal {
		fs.IntVar(&l.total, "total", d.total, "Total number of requests (0 with --duration: no count limit)")
		fs.DurationVar(&l.duration, "duration", 0, "Stop issuing requests after this long (e.g. 30s)")
		fs.Float64Var(&l.rate, "rate", 0, "Maximum requests per second (0 is no limit)")
	}
	fs.IntVar(&l.keySize, "key-size", d.keySize, "Key size in bytes")
	fs.IntVar(&l.valSize, "val-size", d.valSize, "Value size in bytes")
	fs.IntVar(&l.keySpaceSize, "key-space-size", 1, "Maximum possible keys")
	fs.BoolVar(&l.seqKeys, "sequential-keys", false, "Use sequential keys")
}

func (l *loadFlags) config(g *globals) (workload.Config, error) {
	cfg, err := g.baseConfig()
	if err != nil {
		return cfg, err
	}
	cfg.Total, cfg.Duration, cfg.Rate = l.total, l.duration, l.rate
	cfg.KeySize, cfg.ValSize = l.keySize, l.valSize
	cfg.KeySpaceSize, cfg.SequentialKeys = l.keySpaceSize, l.seqKeys
	return cfg, nil
}

var etcdDefaults = loadDefaults{total: 10000, keySize: 8, valSize: 8}

func consistency(s string) (serializable bool, err error) {
	switch s {
	case "l":
		return false, nil
	case "s":
		return true, nil
	}
	return false, fmt.Errorf("%w: --consistency must be l (linearizable) or s (serializable), got %q", ErrUsage, s)
}

func putCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.PutOptions
	cmd := &cobra.Command{Use: "put", Short: "Benchmark put", Args: cobra.NoArgs}
	l.register(cmd.Flags(), etcdDefaults)
	cmd.Flags().StringVar(&opts.Prefix, "prefix", "", "Prefix for keys")
	cmd.Flags().IntVar(&opts.Idle.Streams, "idle-watch-streams", 0, "Watch streams held open during the puts, watching a key no put writes")
	cmd.Flags().IntVar(&opts.Idle.WatchersPerStr, "idle-watchers-per-stream", 100, "Idle watchers on each of --idle-watch-streams")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "put", Config: cfg, Options: opts})
	}
	return cmd
}

func rangeCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.RangeOptions
	var cons string
	cmd := &cobra.Command{Use: "range key [end-range]", Short: "Benchmark range (linearizable or serializable)",
		Args: cobra.RangeArgs(0, 2)}
	l.register(cmd.Flags(), etcdDefaults)
	fs := cmd.Flags()
	fs.StringVar(&cons, "consistency", "l", "Linearizable(l) or Serializable(s)")
	fs.Int64Var(&opts.Limit, "limit", 0, "Maximum number of results of each range (0 is no limit)")
	fs.BoolVar(&opts.CountOnly, "count-only", false, "Only return the count of keys")
	fs.BoolVar(&opts.KeysOnly, "keys-only", false, "Only return the keys")
	fs.BoolVar(&opts.Prefix, "prefix", false, "Range over all keys with the given key as prefix")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 && !opts.Prefix {
			return fmt.Errorf("%w: range needs a key, or --prefix", ErrUsage)
		}
		if len(args) >= 1 {
			opts.Key = args[0]
		}
		if len(args) == 2 {
			opts.End = args[1]
		}
		var err error
		if opts.Serializable, err = consistency(cons); err != nil {
			return err
		}
		if err := opts.Validate(); err != nil {
			return err
		}
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "range", Config: cfg, Options: opts})
	}
	return cmd
}

func txnPutCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var ops int
	cmd := &cobra.Command{Use: "txn-put", Short: "Benchmark transactions of puts", Args: cobra.NoArgs}
	l.register(cmd.Flags(), etcdDefaults)
	cmd.Flags().IntVar(&ops, "txn-ops", 1, "Number of puts per txn")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		if ops < 1 || ops > cfg.KeySpaceSize {
			return fmt.Errorf("%w: expected --txn-ops between 1 and --key-space-size (%d), got %d",
				ErrUsage, cfg.KeySpaceSize, ops)
		}
		return run(cmd, o, g, Plan{Workload: "txn-put", Config: cfg, Options: workload.TxnPutOptions{OpsPerTxn: ops}})
	}
	return cmd
}

func txnMixedCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.TxnMixedOptions
	var cons string
	cmd := &cobra.Command{Use: "txn-mixed", Short: "Benchmark a mix of txn-put and txn-range", Args: cobra.NoArgs}
	l.register(cmd.Flags(), etcdDefaults)
	fs := cmd.Flags()
	fs.StringVar(&opts.EndKey, "end-key", "", "Read range end key (default: full range with --limit)")
	fs.Int64Var(&opts.Limit, "limit", 1000, "Read operation range result limit")
	fs.StringVar(&cons, "consistency", "l", "Linearizable(l) or Serializable(s)")
	fs.Float64Var(&opts.ReadWriteRatio, "rw-ratio", 1, "Read/write ops ratio")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var err error
		if opts.Serializable, err = consistency(cons); err != nil {
			return err
		}
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "txn-mixed", Config: cfg, Options: opts})
	}
	return cmd
}

func watchFlags(fs *pflag.FlagSet, opts *workload.WatchOptions, perStreamName string, perStream, putRate int) {
	fs.IntVar(&opts.Streams, "streams", 10, "Total watch streams")
	fs.IntVar(&opts.WatchersPerStr, perStreamName, perStream, "Total watchers per stream")
	fs.IntVar(&opts.PutTotal, "put-total", 1000, "Number of put requests")
	fs.Float64Var(&opts.PutRate, "put-rate", float64(putRate), "Number of keys to put per second (0 is no limit)")
	fs.BoolVar(&opts.PrevKV, "prevkv", false, "PrevKV enabled on watch requests")
	fs.DurationVar(&opts.EventTimeout, "event-timeout", 30*time.Second, "How long to wait for the last events after the last put")
	fs.IntVar(&opts.StalledStreams, "stalled-streams", 0, "More streams of as many watchers that never read once their watches are created")
	fs.BoolVar(&opts.Raw, "raw", false, "Watch on the raw gRPC API, one reading goroutine per stream (not clientv3)")
}

func watchIdleCommand(g *globals, o Options) *cobra.Command {
	var opts workload.IdleOptions
	cmd := &cobra.Command{Use: "watch-idle", Short: "Hold idle watchers open (to measure the server's memory per watcher)", Args: cobra.NoArgs,
		Long: `Opens --streams x --watchers-per-stream watches of a key nothing writes, holds them for
--hold, then closes them.`}
	cmd.Flags().IntVar(&opts.Streams, "streams", 100, "Total watch streams")
	cmd.Flags().IntVar(&opts.WatchersPerStr, "watchers-per-stream", 100, "Total watchers per stream")
	cmd.Flags().DurationVar(&opts.Hold, "hold", 10*time.Second, "How long to hold the watches open")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := g.baseConfig()
		if err != nil {
			return err
		}
		cfg.Total = opts.Streams * opts.WatchersPerStr // what it counts: watches
		cfg.KeySpaceSize, cfg.KeySize = 1, 1           // unused
		return run(cmd, o, g, Plan{Workload: "watch-idle", Config: cfg, Options: opts})
	}
	return cmd
}

func watchCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.WatchOptions
	cmd := &cobra.Command{Use: "watch", Short: "Benchmark watch creation and event delivery", Args: cobra.NoArgs,
		Long: `Opens --streams x --watch-per-stream watches over --watched-key-total keys, then puts
--put-total values to those keys and measures every event's delivery to every watcher.`}
	l.register(cmd.Flags(), loadDefaults{keySize: 32, valSize: 8, noTotal: true})
	watchFlags(cmd.Flags(), &opts, "watch-per-stream", 100, 0)
	cmd.Flags().IntVar(&opts.WatchedKeyTotal, "watched-key-total", 1, "Total number of keys to be watched")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		cfg.Total = opts.PutTotal
		return run(cmd, o, g, Plan{Workload: "watch", Config: cfg, Options: opts})
	}
	return cmd
}

func watchLatencyCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.WatchOptions
	cmd := &cobra.Command{Use: "watch-latency", Short: "Benchmark the delay from a put to its watch event", Args: cobra.NoArgs}
	l.register(cmd.Flags(), loadDefaults{keySize: 32, valSize: 32, noTotal: true})
	watchFlags(cmd.Flags(), &opts, "watchers-per-stream", 10, 100)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		cfg.Total = opts.PutTotal
		opts.WatchedKeyTotal = 1
		return run(cmd, o, g, Plan{Workload: "watch-latency", Config: cfg, Options: opts})
	}
	return cmd
}

func leaseKeepaliveCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	cmd := &cobra.Command{Use: "lease-keepalive", Short: "Benchmark lease keepalive", Args: cobra.NoArgs}
	l.register(cmd.Flags(), etcdDefaults)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "lease-keepalive", Config: cfg})
	}
	return cmd
}

func leaseGrantCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	cmd := &cobra.Command{Use: "lease-grant", Short: "Benchmark lease grant", Args: cobra.NoArgs}
	l.register(cmd.Flags(), etcdDefaults)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "lease-grant", Config: cfg})
	}
	return cmd
}

func loadOptionFlags(fs *pflag.FlagSet, opts *workload.LoadOptions, keys int) {
	fs.StringVar(&opts.Prefix, "prefix", workload.DefaultListPrefix, "Prefix under which the keys are written")
	fs.IntVar(&opts.Keys, "keys", keys, "Number of keys under the prefix")
	fs.IntVar(&opts.BatchSize, "batch", 100, "Puts per transaction when writing the keys")
	fs.BoolVar(&opts.RandomValues, "random-values", false, "Give every key its own random (incompressible) value")
}

func loadCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.LoadOptions
	cmd := &cobra.Command{Use: "load", Short: "Write --keys keys under --prefix in batched transactions", Args: cobra.NoArgs}
	l.register(cmd.Flags(), loadDefaults{keySize: 8, valSize: 256, noTotal: true})
	cmd.Flags().Float64Var(&l.rate, "rate", 0, "Maximum transactions per second (0 is no limit)")
	loadOptionFlags(cmd.Flags(), &opts, 1000000)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		if opts.BatchSize < 1 {
			return fmt.Errorf("%w: --batch must be positive", ErrUsage)
		}
		cfg.Total = (opts.Keys + opts.BatchSize - 1) / opts.BatchSize
		return run(cmd, o, g, Plan{Workload: "load", Config: cfg, Options: opts})
	}
	return cmd
}

func listCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.ListOptions
	var cons string
	cmd := &cobra.Command{Use: "list", Short: "Benchmark listing a prefix of --keys keys, as Kubernetes lists", Args: cobra.NoArgs}
	l.register(cmd.Flags(), loadDefaults{total: 100, keySize: 8, valSize: 256})
	fs := cmd.Flags()
	loadOptionFlags(fs, &opts.LoadOptions, 10000)
	fs.Int64Var(&opts.PageSize, "page-size", 0, "Keys per page, pages pinned to one revision (0: one request)")
	fs.StringVar(&cons, "consistency", "l", "Linearizable(l) or Serializable(s)")
	fs.BoolVar(&opts.KeysOnly, "keys-only", false, "Only return the keys")
	fs.BoolVar(&opts.SkipLoad, "skip-load", false, "Do not check for or write the keys first")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var err error
		if opts.Serializable, err = consistency(cons); err != nil {
			return err
		}
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "list", Config: cfg, Options: opts})
	}
	return cmd
}

func k8sCommand(g *globals, o Options) *cobra.Command {
	var l loadFlags
	var opts workload.K8sOptions
	var mix string
	cmd := &cobra.Command{Use: "k8s", Short: "Benchmark a kube-apiserver-shaped mix", Args: cobra.NoArgs,
		Long: `Preloads --objects objects under /registry/pods/, opens --watchers prefix watches on
/registry/ with prev_kv, then issues requests drawn from --mix: create (txn guarded by
create_revision = 0), update (txn guarded by the object's mod_revision, retried once on
conflict), get (linearizable), list (paginated at one revision) and event (put attached to a
lease that is reused for --lease-reuse events).`}
	l.register(cmd.Flags(), loadDefaults{total: 10000, keySize: 8, valSize: 1024})
	fs := cmd.Flags()
	fs.IntVar(&opts.Objects, "objects", 1000, "Objects created before the run")
	fs.StringVar(&mix, "mix", workload.FormatMix(workload.DefaultK8sMix), "Weight of each request kind")
	fs.Int64Var(&opts.PageSize, "page-size", 500, "List page size")
	fs.IntVar(&opts.Watchers, "watchers", 2, "Prefix watches on /registry/")
	fs.IntVar(&opts.LeaseReuse, "lease-reuse", 1000, "Events attached to one lease")
	fs.DurationVar(&opts.EventTimeout, "event-timeout", 30*time.Second, "How long to wait for watchers after the last write")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var err error
		if opts.Mix, err = workload.ParseMix(mix); err != nil {
			return err
		}
		cfg, err := l.config(g)
		if err != nil {
			return err
		}
		return run(cmd, o, g, Plan{Workload: "k8s", Config: cfg, Options: opts})
	}
	return cmd
}
