package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// figure is one measured value of a session, e.g. ("put", "ops/s", 5321).
type figure struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
}

// benchSummary is the part of metastore-bench's --json result that the table uses.
type benchSummary struct {
	Name       string  `json:"name"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Duration   float64 `json:"duration_seconds"`
	Throughput float64 `json:"throughput_per_second"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
}

type benchOutput struct {
	Workload string         `json:"workload"`
	Results  []benchSummary `json:"results"`
}

// workload is one row group of the table: the bench command and which series it reports.
type workload struct {
	name   string
	args   func(o options) []string
	series []string // series to report: throughput, p50 and p99 each
	paced  bool     // requests are rate-limited: throughput is not a result
}

const rangeKey = "/compare/range-key"

var workloads = []workload{
	{name: "put", series: []string{"put"}, args: func(o options) []string {
		return []string{"put", "--total", itoa(o.total), "--val-size", "256", "--key-space-size", "100000"}
	}},
	{name: "range-l", series: []string{"range"}, args: func(o options) []string {
		return []string{"range", rangeKey, "--total", itoa(o.total), "--consistency", "l"}
	}},
	{name: "range-s", series: []string{"range"}, args: func(o options) []string {
		return []string{"range", rangeKey, "--total", itoa(o.total), "--consistency", "s"}
	}},
	{name: "txn-put", series: []string{"txn-put"}, args: func(o options) []string {
		return []string{"txn-put", "--total", itoa(o.total), "--txn-ops", "4", "--val-size", "256", "--key-space-size", "10000"}
	}},
	{name: "txn-mixed", series: []string{"txn-mixed-read", "txn-mixed-write"}, args: func(o options) []string {
		return []string{"txn-mixed", "--total", itoa(o.total), "--val-size", "256", "--key-space-size", "10000", "--limit", "100"}
	}},
	{name: "watch", series: []string{"watch-event"}, args: func(o options) []string {
		return []string{"watch", "--streams", "10", "--watch-per-stream", "10", "--watched-key-total", "10",
			"--put-total", itoa(max(10, o.total/4)), "--sequential-keys", "--key-space-size", "10"}
	}},
	{name: "watch-latency", series: []string{"watch-latency-watch"}, paced: true, args: func(o options) []string {
		return []string{"watch-latency", "--streams", "5", "--watchers-per-stream", "5",
			"--put-total", itoa(max(10, o.total/4)), "--put-rate", "200"}
	}},
	{name: "lease-keepalive", series: []string{"lease-keepalive"}, args: func(o options) []string {
		return []string{"lease-keepalive", "--total", itoa(o.total)}
	}},
	{name: "lease-grant", series: []string{"lease-grant"}, args: func(o options) []string {
		return []string{"lease-grant", "--total", itoa(o.total)}
	}},
	{name: "list", series: []string{"list"}, args: func(o options) []string {
		return []string{"list", "--prefix", "/compare/list1k/", "--keys", "1000", "--page-size", "500",
			"--total", itoa(max(10, o.total/10))}
	}},
	{name: "k8s", series: []string{"update", "list", "event", "watch"}, args: func(o options) []string {
		return []string{"k8s", "--total", itoa(o.total), "--objects", "1000", "--val-size", "1024", "--watchers", "2"}
	}},
}

func itoa(n int) string { return strconv.Itoa(n) }

func workloadNames() []string {
	var n []string
	for _, w := range workloads {
		n = append(n, w.name)
	}
	return n
}

func findWorkload(name string) *workload {
	for i := range workloads {
		if workloads[i].name == name {
			return &workloads[i]
		}
	}
	return nil
}

// bench runs metastore-bench with args against the cluster and returns its JSON output.
func bench(ctx context.Context, o options, c *cluster, args ...string) (benchOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	full := append([]string{"--endpoints", strings.Join(c.endpoints(), ","),
		"--clients", itoa(o.clients), "--conns", itoa(o.conns), "--json"}, args...)
	cmd := exec.CommandContext(ctx, o.benchBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return benchOutput{}, fmt.Errorf("metastore-bench %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	var out benchOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, fmt.Errorf("metastore-bench %s: bad JSON: %v", args[0], err)
	}
	for _, s := range out.Results {
		if s.Errors > 0 {
			return out, fmt.Errorf("metastore-bench %s: series %s had %d errors", args[0], s.Name, s.Errors)
		}
	}
	return out, nil
}

func find(out benchOutput, series string) (benchSummary, bool) {
	for _, s := range out.Results {
		if s.Name == series {
			return s, true
		}
	}
	return benchSummary{}, false
}

// side is one system's cluster within a round, and the figures measured on it.
type side struct {
	sys   system
	c     *cluster
	figs  []figure
	fails []string
}

// failed notes a measurement that could not be taken; the round goes on without it.
func (s *side) failed(n int, what string, err error) {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	s.fails = append(s.fails, fmt.Sprintf("%s, %d member(s), %s: %s", s.sys.label, n, what, msg))
}

func (s *side) add(metric string, v float64) { s.figs = append(s.figs, figure{metric, v}) }

// round starts fresh n-member clusters of both systems under dir, runs every workload on each
// in turn (A B for even steps, B A for odd ones, so neither always goes first and both see the
// same moments of a shared machine), then the large-data measurements likewise, stops both,
// and returns the figures of A and of B.
func round(ctx context.Context, o options, a, b system, n, r int, dir string) (sideA, sideB *side, err error) {
	sides := []*side{{sys: a}, {sys: b}}
	for i, sd := range sides {
		c, err := newCluster(sd.sys, filepath.Join(dir, fmt.Sprintf("%c", 'A'+i)), n)
		if err != nil {
			return nil, nil, err
		}
		sd.c = c
		defer c.stop()
		if err := c.start(); err != nil {
			return nil, nil, err
		}
	}
	var up []*side // the sides whose cluster serves; a side that does not is reported, not fatal
	for _, sd := range sides {
		if _, err := sd.c.waitReady(ctx, time.Now(), 60*time.Second, "compare-ready-probe", false); err != nil {
			sd.failed(n, "start", err)
			continue
		}
		if err := putKey(ctx, sd.c, rangeKey, strings.Repeat("v", 256)); err != nil {
			sd.failed(n, "start", err)
			continue
		}
		up = append(up, sd)
	}
	order := func(step int) []*side {
		if (r+step)%2 == 0 || len(up) < 2 {
			return up
		}
		return []*side{up[1], up[0]}
	}
	for step, name := range o.workloads {
		for _, sd := range order(step) {
			if err := runWorkload(ctx, o, sd, findWorkload(name)); err != nil {
				sd.failed(n, name, err)
			}
		}
	}
	for _, sd := range order(len(o.workloads)) {
		if err := largeData(ctx, o, sd); err != nil {
			sd.failed(n, "large-data phase", err)
		}
		sd.c.stop() // free its memory and cores before the other side's large-data phase
	}
	return sides[0], sides[1], nil
}

func runWorkload(ctx context.Context, o options, sd *side, w *workload) error {
	out, err := bench(ctx, o, sd.c, w.args(o)...)
	if err != nil {
		return err
	}
	for _, series := range w.series {
		s, ok := find(out, series)
		if !ok {
			return fmt.Errorf("%s: no series %s in output", w.name, series)
		}
		label := w.name
		if series != w.name && len(w.series) > 1 || w.name == "k8s" {
			label = w.name + " " + strings.TrimPrefix(series, w.name+"-")
		}
		if !w.paced {
			sd.add(label+" | ops/s", s.Throughput)
		}
		sd.add(label+" | p50 ms", s.P50)
		sd.add(label+" | p99 ms", s.P99)
	}
	return nil
}

// largeData loads the list prefix and then --keys keys in all; measures RSS and disk usage,
// the list p50/p99, and the restart time to the first successful read.
func largeData(ctx context.Context, o options, sd *side) error {
	c := sd.c
	if _, err := bench(ctx, o, c, "load", "--prefix", "/compare/list10k/", "--keys", itoa(o.listKeys), "--val-size", "256"); err != nil {
		return err
	}
	if rest := o.keys - o.listKeys; rest > 0 {
		out, err := bench(ctx, o, c, "load", "--prefix", "/compare/load/", "--keys", itoa(rest), "--val-size", "256")
		if err != nil {
			return err
		}
		if s, ok := find(out, "load"); ok && s.Duration > 0 {
			sd.add(fmt.Sprintf("load %d keys | keys/s", rest), float64(rest)/s.Duration)
		}
	}
	rss, err := c.rssBytes()
	if err != nil {
		return err
	}
	sd.add(fmt.Sprintf("RSS after %d keys (per member) | MiB", o.keys), rss/(1<<20))
	disk, err := c.diskBytes()
	if err != nil {
		return err
	}
	sd.add(fmt.Sprintf("disk after %d keys (per member) | MiB", o.keys), disk/(1<<20))
	// One client: the latency of a list on its own, not queued behind other lists.
	out, err := bench(ctx, o, c, "list", "--prefix", "/compare/list10k/", "--keys", itoa(o.listKeys), "--skip-load",
		"--total", itoa(max(10, o.total/40)), "--clients", "1", "--conns", "1")
	if err != nil {
		return err
	}
	if s, ok := find(out, "list"); ok {
		sd.add(fmt.Sprintf("list %d keys of %d | p50 ms", o.listKeys, o.keys), s.P50)
		sd.add(fmt.Sprintf("list %d keys of %d | p99 ms", o.listKeys, o.keys), s.P99)
	}

	// Restart: stop every member, start them again, time to the first successful read of a
	// key loaded above.
	c.stop()
	t0 := time.Now()
	if err := c.start(); err != nil {
		return err
	}
	d, err := c.waitReady(ctx, t0, 5*time.Minute, fmt.Sprintf("/compare/list10k/%010d", o.listKeys-1), true)
	if err != nil {
		return err
	}
	sd.add(fmt.Sprintf("restart with %d keys to first read | s", o.keys), d.Seconds())
	return nil
}

func putKey(ctx context.Context, c *cluster, key, val string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, key, val)
	return err
}
