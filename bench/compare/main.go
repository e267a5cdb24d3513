// Command compare runs the side-by-side benchmark of MetaStore against etcd: on loopback with
// fresh data dirs it starts each system with the same member flags (one member, then three),
// both at once in each of --rounds rounds, runs every metastore-bench workload on both in turn
// (A B, then B A for the next workload, and so on), measures
// RSS and disk usage after loading --keys keys, restart time to the first successful read and
// the p99 of a 10,000-key prefix list, and prints one table with each figure for both systems
// and the ratio B/A with its spread. Without a MetaStore binary both A and B are etcd, which
// checks that the harness is fair (ratios near 1.0).
//
// It is its own Go module so that nothing it needs reaches the product's go.mod. It owns only
// the processes it starts and the work directory it is given; it never asserts a speed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type options struct {
	etcdBin, metastoreBin, benchBin string
	etcdExtra, metastoreExtra       string
	members                         []int
	rounds                          int
	total                           int
	keys                            int
	listKeys                        int
	clients, conns                  int
	workloads                       []string
	workdir                         string
	out, raw                        string
	keep                            bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.StringVar(&o.etcdBin, "etcd-bin", "", "etcd v3.7.3 server binary (system A)")
	fs.StringVar(&o.metastoreBin, "metastore-bin", "", "MetaStore server binary (system B); empty: B is etcd too")
	fs.StringVar(&o.benchBin, "bench-bin", "", "metastore-bench binary")
	fs.StringVar(&o.etcdExtra, "etcd-flags", "--log-level=error", "extra flags for every etcd member (space separated)")
	fs.StringVar(&o.metastoreExtra, "metastore-flags", "", "extra flags for every MetaStore member (space separated)")
	members := fs.String("members", "1,3", "cluster sizes to compare")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs A then B")
	fs.IntVar(&o.total, "total", 2000, "requests per workload (watch and list use a fraction)")
	fs.IntVar(&o.keys, "keys", 1000000, "keys loaded before measuring RSS, disk usage and restart time")
	fs.IntVar(&o.listKeys, "list-keys", 10000, "keys under the listed prefix for the list p99 figure")
	fs.IntVar(&o.clients, "clients", 16, "bench clients")
	fs.IntVar(&o.conns, "conns", 4, "bench gRPC connections")
	wl := fs.String("workloads", strings.Join(workloadNames(), ","), "workloads to run")
	fs.StringVar(&o.workdir, "workdir", "", "where data dirs and logs go (default: a new temp dir)")
	fs.StringVar(&o.out, "out", "", "also write the table (markdown) to this file")
	fs.StringVar(&o.raw, "raw", "", "also write every per-round figure as JSON to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep data dirs after each session")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*members, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("bad --members %q", *members)
		}
		o.members = append(o.members, n)
	}
	for _, w := range strings.Split(*wl, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		if findWorkload(w) == nil {
			return o, fmt.Errorf("unknown workload %q (have %v)", w, workloadNames())
		}
		o.workloads = append(o.workloads, w)
	}
	if o.etcdBin == "" || o.benchBin == "" {
		return o, fmt.Errorf("--etcd-bin and --bench-bin are required")
	}
	if o.rounds < 1 || o.total < 10 || o.keys < o.listKeys {
		return o, fmt.Errorf("need --rounds >= 1, --total >= 10 and --keys >= --list-keys")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func version(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(strings.Join(lines[:min(2, len(lines))], "; "))
}

func run(ctx context.Context, o options) (err error) {
	a := system{label: "etcd", bin: o.etcdBin, extra: strings.Fields(o.etcdExtra)}
	b := system{label: "etcd (B)", bin: o.etcdBin, extra: strings.Fields(o.etcdExtra)}
	if o.metastoreBin != "" {
		b = system{label: "metastore", bin: o.metastoreBin, extra: strings.Fields(o.metastoreExtra)}
	}
	if o.workdir == "" {
		d, mkErr := os.MkdirTemp("", "metastore-compare-")
		if mkErr != nil {
			return mkErr
		}
		o.workdir = d
		defer func() {
			if err == nil && !o.keep {
				_ = os.RemoveAll(d) // kept after a failure, for the logs its message points to
			}
		}()
	}
	res := newResults(a.label, b.label)
	started := time.Now()
	for _, n := range o.members {
		for r := range o.rounds {
			dir := filepath.Join(o.workdir, fmt.Sprintf("%dm-r%d", n, r+1))
			fmt.Fprintf(os.Stderr, "== %d member(s), round %d/%d (%s)\n", n, r+1, o.rounds, dir)
			sa, sb, err := round(ctx, o, a, b, n, r, dir)
			if err != nil {
				return fmt.Errorf("%d member(s), round %d: %w", n, r+1, err)
			}
			for _, sd := range []*side{sa, sb} {
				res.add(n, sd.sys.label, r, sd.figs)
				for _, f := range sd.fails {
					fmt.Fprintln(os.Stderr, "   not measured:", f)
					res.fail(f)
				}
			}
			if !o.keep {
				_ = os.RemoveAll(dir)
			}
		}
	}
	header := fmt.Sprintf("Run %s (%.0f min). A = %s: %s. B = %s: %s.\n"+
		"Settings: %d round(s), both clusters up in each, workloads alternating A B / B A, %d requests per workload, %d clients over %d connections, "+
		"%d keys loaded for RSS/disk/restart, %d-key list prefix. Client and servers share this machine.\n",
		started.UTC().Format("2006-01-02 15:04 MST"), time.Since(started).Minutes(),
		a.label, version(a.bin), b.label, version(b.bin),
		o.rounds, o.total, o.clients, o.conns, o.keys, o.listKeys)
	table := header + "\n" + res.table()
	fmt.Print(table)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(table), 0o644); err != nil {
			return err
		}
	}
	if o.raw != "" {
		b, _ := json.MarshalIndent(res.raw(), "", "  ")
		if err := os.WriteFile(o.raw, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
