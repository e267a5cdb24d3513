// Package robustness checks an etcd-compatible server's linearizability and
// watch guarantees under faults, by running real server processes (etcd's or
// MetaStore's: the same command lines start both), driving concurrent clients,
// injecting one fault per run and checking the recorded history with
// porcupine (see the model package) and the watch checks in validate.go.
//
// It owns: member processes and their peer proxies (cluster.go, proxy.go),
// faults (faults.go), traffic and its recording (traffic.go, history.go),
// validation (validate.go) and the per-run orchestration (this file). It must
// not import MetaStore's packages: it talks to the binary under test only
// through the etcd v3 client API and signals.
package robustness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/metastore/metastore/tests/robustness/model"
)

// ErrViolation prefixes a failed run: the message names the artifacts folder.
var ErrViolation = errors.New("robustness: violation")

// Scenario is one run: a cluster, its traffic and one fault.
type Scenario struct {
	Name     string
	Size     int
	Fault    *Fault // nil: no fault
	Traffic  TrafficConfig
	Duration time.Duration // traffic duration; the fault starts after a third of it
	// Setup, when set, runs after the cluster starts and before traffic (the
	// broken-server test starts its proxy here). It may change the traffic config.
	Setup func(ctx context.Context, c *Cluster, tc *TrafficConfig) (cleanup func(), err error)
}

// RunConfig is what every run shares.
type RunConfig struct {
	Bin          string
	ArtifactsDir string   // a folder per run is created under it
	ExtraFlags   []string // appended to every member's command line
	HashKV       bool     // compare HashKV of all members at the end
	Keep         bool     // keep the run folder even if the run passed
	CheckTimeout time.Duration
	Logf         func(format string, args ...any)
}

// Run executes one scenario and validates it. It returns the report (nil if
// the run could not be completed) and an error naming the artifacts folder on
// any violation or harness failure.
func Run(ctx context.Context, rc RunConfig, sc Scenario) (*Report, error) {
	dir := filepath.Join(rc.ArtifactsDir, fmt.Sprintf("%s-%s", sc.Name, time.Now().Format("150405.000")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf := rc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var c *Cluster
	var err error
	for attempt := 0; ; attempt++ {
		// A port taken by another process between the check and the bind
		// fails the start: start again in a clean folder with other ports.
		c, err = StartCluster(ctx, ClusterConfig{Bin: rc.Bin, Size: sc.Size, Dir: dir, ExtraFlags: rc.ExtraFlags})
		if err == nil {
			break
		}
		if attempt == 2 {
			return nil, fmt.Errorf("%w (artifacts in %s)", err, dir)
		}
		logf("%s: cluster start failed, retrying: %v", sc.Name, err)
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
	}
	defer c.Close()
	tc := sc.Traffic
	if sc.Setup != nil {
		cleanup, err := sc.Setup(ctx, c, &tc)
		if err != nil {
			return nil, fmt.Errorf("robustness: setup: %w (artifacts in %s)", err, dir)
		}
		defer cleanup()
	}
	h := NewHistory()
	tr := NewTraffic(tc, c, h)
	refCtx, refCancel := context.WithCancel(ctx)
	defer refCancel()
	refDone := make(<-chan struct{})
	if tc.Watch {
		if refDone, err = tr.RunReference(refCtx); err != nil {
			return nil, err
		}
	} else {
		done := make(chan struct{})
		close(done)
		refDone = done
	}
	trafficCtx, trafficCancel := context.WithTimeout(ctx, sc.Duration)
	defer trafficCancel()
	wait, err := tr.Run(trafficCtx)
	if err != nil {
		return nil, err
	}
	var faultErr error
	if sc.Fault != nil {
		if err := sleep(trafficCtx, sc.Duration/3); err == nil {
			logf("%s: injecting %s at %v", sc.Name, sc.Fault.Name, time.Duration(h.Now()).Round(time.Millisecond))
			faultErr = sc.Fault.Inject(ctx, c)
			logf("%s: healed at %v (err=%v)", sc.Name, time.Duration(h.Now()).Round(time.Millisecond), faultErr)
		}
	}
	<-trafficCtx.Done()
	wait()

	final := &Report{}
	if faultErr != nil {
		final.addf("fault", "injecting %s failed: %v", sc.Fault.Name, faultErr)
	}
	finalChecks(ctx, c, h, tr, tc, rc.HashKV, final)
	refCancel()
	<-refDone

	ops, watches := h.Snapshot()
	timeout := rc.CheckTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ref := tr.Ref
	if !tc.Watch {
		ref = nil
	}
	r := Validate(ops, watches, ref, tr.compacted.Load(), timeout)
	r.Violations = append(final.Violations, r.Violations...)
	logf("%s: %s", sc.Name, r.Stats)
	if len(r.Violations) == 0 {
		if rc.Keep {
			writeArtifacts(dir, r, ops, watches)
		} else {
			os.RemoveAll(dir)
		}
		return r, nil
	}
	writeArtifacts(dir, r, ops, watches)
	return r, fmt.Errorf("%w in %s: %d violations, first: %s; history, porcupine visualisation and member logs in %s",
		ErrViolation, sc.Name, len(r.Violations), r.Violations[0], dir)
}

// finalChecks runs after traffic stops and every fault is healed: a final
// linearizable range (recorded), the reference watch catching up to it, and
// every member serving the same data and HashKV at that revision.
func finalChecks(ctx context.Context, c *Cluster, h *History, tr *Traffic, tc TrafficConfig, hashKV bool, r *Report) {
	clientID := tc.Clients
	for _, m := range c.Members {
		if err := c.WaitReady(ctx, m); err != nil {
			r.addf(KindConsistency, "member %s not ready after the run: %v", m.Name, err)
			return
		}
	}
	cli, err := c.Client()
	if err != nil {
		r.addf(KindConsistency, "client: %v", err)
		return
	}
	defer cli.Close()
	var finalRev int64
	var finalKVs []model.KeyKV
	for attempt := 0; ; attempt++ {
		op := Op{Client: clientID, Input: model.Input{Type: model.Range}, Call: h.Now()}
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		out, err := tr.do(rctx, cli, op.Input, false)
		cancel()
		if err == nil {
			op.Return, op.Output = h.Now(), out
			h.Add(op)
			finalRev, finalKVs = out.Rev, out.KVs
			break
		}
		if attempt == 10 {
			r.addf(KindConsistency, "final linearizable read failed: %v", err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	deadline := time.Now().Add(20 * time.Second)
	for tc.Watch && tr.RefRev() < finalRev && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := tr.RefRev(); tc.Watch && got < finalRev {
		r.addf(KindWatch, "reference watch stuck at revision %d, final revision is %d", got, finalRev)
	}
	type hashAt struct {
		hash    uint32
		compact int64
	}
	hashes := map[string]hashAt{}
	for _, m := range c.Members {
		var rev int64
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			op := Op{Client: clientID, Input: model.Input{Type: model.Range}, Serializable: true, Call: h.Now()}
			rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
			mcli, err := c.Client(m.ClientURL)
			if err == nil {
				op.Output, err = tr.do(rctx, mcli, op.Input, true)
				mcli.Close()
			}
			cancel()
			if err == nil {
				op.Return = h.Now()
				h.Add(op)
				if rev = op.Output.Rev; rev >= finalRev {
					// Without a watch history this is the only check that the
					// members hold the same data (with one, every serializable
					// read is checked against it).
					if rev == finalRev && !sameKVs(op.Output.KVs, finalKVs) {
						r.addf(KindConsistency, "member %s at revision %d serves %s, the final linearizable read served %s",
							m.Name, rev, model.Describe(op.Input, op.Output), model.Describe(op.Input, model.Output{Rev: finalRev, KVs: finalKVs}))
					}
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if rev < finalRev {
			r.addf(KindConsistency, "member %s stuck at revision %d, final revision is %d", m.Name, rev, finalRev)
			continue
		}
		if !hashKV {
			continue
		}
		for attempt := 0; attempt < 10; attempt++ {
			rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
			resp, err := cli.HashKV(rctx, m.ClientURL, finalRev)
			cancel()
			if err == nil {
				hashes[m.Name] = hashAt{resp.Hash, resp.CompactRevision}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var first string
	for name, hv := range hashes {
		if first == "" {
			first = name
			continue
		}
		if f := hashes[first]; f.compact == hv.compact && f.hash != hv.hash {
			r.addf(KindConsistency, "HashKV at revision %d: %s has %08x, %s has %08x (compact revision %d)", finalRev, first, f.hash, name, hv.hash, hv.compact)
		}
	}
	if hashKV && len(hashes) != len(c.Members) {
		r.addf(KindConsistency, "HashKV answered by %d of %d members", len(hashes), len(c.Members))
	}
}

func sameKVs(a, b []model.KeyKV) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func writeArtifacts(dir string, r *Report, ops []Op, watches []*WatchRecord) {
	if f, err := os.Create(filepath.Join(dir, "history.json")); err == nil {
		enc := json.NewEncoder(f)
		enc.Encode(map[string]any{"violations": r.Violations, "stats": r.Stats, "ops": ops})
		f.Close()
	}
	if f, err := os.Create(filepath.Join(dir, "watches.json")); err == nil {
		json.NewEncoder(f).Encode(watches)
		f.Close()
	}
	os.WriteFile(filepath.Join(dir, "violations.txt"), []byte(strings.Join(r.Violations, "\n")+"\n"), 0o644)
	if r.Result != porcupine.Ok && r.Result != "" {
		porcupine.VisualizePath(model.Porcupine, r.Linearization, filepath.Join(dir, "linearization.html"))
	}
}
