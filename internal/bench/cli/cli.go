// Package cli is the command line of the bench tool (cmd/metastore-bench): etcd benchmark's
// commands and flags plus MetaStore's load, list and k8s workloads, text or --json output, and
// a progress bar when stdout is a terminal.
//
// It owns flag parsing and output selection; it must not time requests (package workload) nor
// compute figures (package report).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/metastore/metastore/internal/bench/report"
	"github.com/metastore/metastore/internal/bench/workload"
)

// ErrUsage marks a command line that cannot be run.
var ErrUsage = errors.New("bench: usage")

// Plan is a parsed command line: which workload to run, with which settings. Options holds the
// workload's own option struct (workload.PutOptions, workload.RangeOptions, ...; nil for
// lease-keepalive).
type Plan struct {
	Workload string
	Config   workload.Config
	Options  any
	JSON     bool
}

// Executor runs a plan. The default dials the endpoints and runs the workload; tests replace it.
type Executor func(ctx context.Context, p Plan) (report.Output, error)

// Options configure NewCommand.
type Options struct {
	Out  io.Writer // results; default os.Stdout
	Err  io.Writer // progress bar and diagnostics; default os.Stderr
	Exec Executor  // default Execute
	// Progress forces the progress bar on or off; nil means on when Out is a terminal.
	Progress *bool
}

type globals struct {
	endpoints   []string
	conns       int
	clients     int
	dialTimeout time.Duration
	cert, key   string
	cacert      string
	insecure    bool
	user        string
	password    string
	json        bool
}

// NewCommand returns the root command with every workload as a subcommand.
func NewCommand(o Options) *cobra.Command {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Err == nil {
		o.Err = os.Stderr
	}
	if o.Exec == nil {
		o.Exec = Execute
	}
	g := &globals{}
	root := &cobra.Command{
		Use:   "metastore-bench",
		Short: "Load generator for any etcd v3 API endpoint (MetaStore or etcd)",
		Long: `metastore-bench drives an etcd v3 API endpoint with etcd benchmark's workloads
(put, range, txn-put, txn-mixed, watch, watch-latency, lease-keepalive) and MetaStore's
own (load, list, k8s), and reports throughput, average and p50/p90/p99/p99.9 latency and a
latency histogram, as text or as JSON (--json).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(o.Out)
	root.SetErr(o.Err)
	pf := root.PersistentFlags()
	pf.StringSliceVar(&g.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "gRPC endpoints")
	pf.IntVar(&g.conns, "conns", 1, "Total number of gRPC connections")
	pf.IntVar(&g.clients, "clients", 1, "Total number of concurrent clients (requesters)")
	pf.DurationVar(&g.dialTimeout, "dial-timeout", 5*time.Second, "Dial timeout for client connections")
	pf.StringVar(&g.cert, "cert", "", "identify HTTPS client using this SSL certificate file")
	pf.StringVar(&g.key, "key", "", "identify HTTPS client using this SSL key file")
	pf.StringVar(&g.cacert, "cacert", "", "verify certificates of HTTPS-enabled servers using this CA bundle")
	pf.BoolVar(&g.insecure, "insecure-skip-tls-verify", false, "skip server certificate verification")
	pf.StringVar(&g.user, "user", "", "username[:password] for authentication")
	pf.StringVar(&g.password, "password", "", "password for authentication (if --user has none)")
	pf.BoolVar(&g.json, "json", false, "print the results as JSON")

	for _, mk := range []func(*globals, Options) *cobra.Command{
		putCommand, rangeCommand, txnPutCommand, txnMixedCommand, watchCommand,
		watchLatencyCommand, watchIdleCommand, leaseKeepaliveCommand, leaseGrantCommand, loadCommand, listCommand, k8sCommand,
	} {
		root.AddCommand(mk(g, o))
	}
	return root
}

// baseConfig turns the global flags into a workload.Config.
func (g *globals) baseConfig() (workload.Config, error) {
	cfg := workload.Config{
		Endpoints: g.endpoints,
		Conns:     g.conns,
		Clients:   g.clients,
	}
	for i, ep := range cfg.Endpoints {
		cfg.Endpoints[i] = strings.TrimSpace(ep)
	}
	cfg.DialTimeout = g.dialTimeout
	cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.TrustedCAFile = g.cert, g.key, g.cacert
	cfg.TLS.InsecureSkipVerify = g.insecure
	if g.user != "" {
		name, pass, ok := strings.Cut(g.user, ":")
		if !ok {
			pass = g.password
			if pass == "" {
				return cfg, fmt.Errorf("%w: --user %q has no password; give user:password or --password", ErrUsage, g.user)
			}
		}
		cfg.Username, cfg.Password = name, pass
	}
	return cfg, nil
}

// run validates and executes a plan and prints its output.
func run(cmd *cobra.Command, o Options, g *globals, p Plan) error {
	p.JSON = g.json
	if err := p.Config.Validate(); err != nil {
		return err
	}
	if wantProgress(o) {
		p.Config.NewProgress = func(n int) workload.Progress { return newBar(o.Err, n) }
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := o.Exec(ctx, p)
	if err != nil {
		return err
	}
	if p.JSON {
		return report.WriteJSON(o.Out, out)
	}
	return report.WriteText(o.Out, out)
}

func wantProgress(o Options) bool {
	if o.Progress != nil {
		return *o.Progress
	}
	f, ok := o.Out.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

type bar struct{ pb *pb.ProgressBar }

func (b bar) Increment() { b.pb.Increment() }
func (b bar) Finish()    { b.pb.Finish() }

func newBar(w io.Writer, n int) workload.Progress {
	var p *pb.ProgressBar
	if n < 0 {
		p = pb.ProgressBarTemplate(`{{counter . }} {{speed . "%s/s"}} {{etime . }}`).New(0)
	} else {
		p = pb.New(n)
	}
	p.SetWriter(w)
	p.Start()
	return bar{p}
}

// Execute dials p.Config's endpoints and runs the workload p names.
func Execute(ctx context.Context, p Plan) (report.Output, error) {
	e, err := workload.Dial(ctx, p.Config)
	if err != nil {
		return report.Output{}, err
	}
	defer e.Close()
	switch opts := p.Options.(type) {
	case workload.PutOptions:
		return workload.Put(ctx, e, opts)
	case workload.RangeOptions:
		return workload.Range(ctx, e, opts)
	case workload.TxnMixedOptions:
		return workload.TxnMixed(ctx, e, opts)
	case workload.LoadOptions:
		return workload.Load(ctx, e, opts)
	case workload.ListOptions:
		return workload.List(ctx, e, opts)
	case workload.K8sOptions:
		return workload.K8s(ctx, e, opts)
	case workload.TxnPutOptions:
		return workload.TxnPut(ctx, e, opts)
	case workload.WatchOptions:
		if p.Workload == "watch-latency" {
			return workload.WatchLatency(ctx, e, opts)
		}
		return workload.Watch(ctx, e, opts)
	case workload.IdleOptions:
		return workload.WatchIdle(ctx, e, opts)
	case nil:
		if p.Workload == "lease-grant" {
			return workload.LeaseGrant(ctx, e)
		}
		return workload.LeaseKeepalive(ctx, e)
	}
	return report.Output{}, fmt.Errorf("%w: unknown workload %q", ErrUsage, p.Workload)
}

// Main runs the tool with os.Args and returns the process exit code.
func Main() int {
	if err := NewCommand(Options{}).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		if errors.Is(err, ErrUsage) || errors.Is(err, workload.ErrBadConfig) {
			return 2
		}
		return 1
	}
	return 0
}
