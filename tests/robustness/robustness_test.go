package robustness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	flagBin        = flag.String("bin", os.Getenv("ROBUSTNESS_BIN"), "etcd-compatible server binary under test (env ROBUSTNESS_BIN)")
	flagLong       = flag.Bool("long", os.Getenv("ROBUSTNESS_MODE") == "long", "long (soak) mode: -runs runs across all faults (env ROBUSTNESS_MODE=long)")
	flagRuns       = flag.Int("runs", envInt("ROBUSTNESS_RUNS", 20), "runs in long mode (env ROBUSTNESS_RUNS)")
	flagDuration   = flag.Duration("duration", 0, "traffic duration per run (default 10s short, 15s long)")
	flagArtifacts  = flag.String("artifacts", envOr("ROBUSTNESS_ARTIFACTS", filepath.Join(os.TempDir(), "robustness")), "folder for run artifacts (env ROBUSTNESS_ARTIFACTS)")
	flagLeases     = flag.Bool("leases", envBool("ROBUSTNESS_LEASES", true), "lease traffic (env ROBUSTNESS_LEASES)")
	flagWatch      = flag.Bool("watch", envBool("ROBUSTNESS_WATCH", true), "traffic watches from recent revisions (env ROBUSTNESS_WATCH)")
	flagCompact    = flag.Bool("compact", envBool("ROBUSTNESS_COMPACT", true), "compaction traffic (env ROBUSTNESS_COMPACT)")
	flagMembership = flag.Bool("membership", envBool("ROBUSTNESS_MEMBERSHIP", true), "faults that change membership (env ROBUSTNESS_MEMBERSHIP)")
	flagHashKV     = flag.Bool("hashkv", envBool("ROBUSTNESS_HASHKV", true), "compare members' HashKV at the end (env ROBUSTNESS_HASHKV)")
	flagFaults     = flag.String("faults", os.Getenv("ROBUSTNESS_FAULTS"), "comma-separated fault names to run (default: the mode's set)")
	flagKeep       = flag.Bool("keep", false, "keep run folders of passing runs")
	flagExtra      = flag.String("member-flags", os.Getenv("ROBUSTNESS_MEMBER_FLAGS"), "extra flags for every member, space separated (env ROBUSTNESS_MEMBER_FLAGS)")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envBool(k string, def bool) bool {
	switch strings.ToLower(os.Getenv(k)) {
	case "0", "false", "no", "off":
		return false
	case "1", "true", "yes", "on":
		return true
	}
	return def
}

func envInt(k string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(k), &n); err == nil {
		return n
	}
	return def
}

func runConfig(t *testing.T) RunConfig {
	t.Helper()
	if *flagBin == "" {
		t.Skip("no server binary: pass -bin /path/to/etcd or set ROBUSTNESS_BIN")
	}
	bin, err := filepath.Abs(*flagBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("server binary: %v", err)
	}
	return RunConfig{
		Bin: bin, ArtifactsDir: *flagArtifacts, ExtraFlags: strings.Fields(*flagExtra),
		HashKV: *flagHashKV, Keep: *flagKeep, CheckTimeout: 2 * time.Minute, Logf: t.Logf,
	}
}

// traffic is 6 clients at 150 req/s in short mode, 8 at 300 req/s in long mode.
func traffic() TrafficConfig {
	tc := TrafficConfig{Clients: 6, Rate: 150, Leases: *flagLeases, Watch: *flagWatch, Compact: *flagCompact}
	if *flagLong {
		tc.Clients, tc.Rate = 8, 300
	}
	return tc
}

type planned struct {
	size  int
	fault string
}

// shortPlan is the CI set: a few scenarios covering process, network and
// membership faults, about 25 seconds each.
var shortPlan = []planned{
	{1, "kill-leader"},
	{3, "kill-leader"},
	{3, "blackhole-follower"},
	{3, "pause-leader"},
	{3, "restart-all"},
	{3, "member-replace"},
}

func faultAllowed(f Fault, size int) bool {
	return size >= f.MinMembers && (!f.Membership || *flagMembership)
}

// longPlan cycles through every fault on 3 members, and the process faults
// on 1 member, until runs scenarios are planned.
func longPlan(runs int) []planned {
	var all []planned
	for _, f := range Faults {
		if faultAllowed(f, 3) {
			all = append(all, planned{3, f.Name})
		}
	}
	for _, f := range Faults {
		if faultAllowed(f, 1) && f.MinMembers == 1 {
			all = append(all, planned{1, f.Name})
		}
	}
	var out []planned
	for i := 0; i < runs; i++ {
		out = append(out, all[i%len(all)])
	}
	return out
}

// TestRobustness runs the scenarios of the selected mode against the binary
// given by -bin. Every run must pass every check.
func TestRobustness(t *testing.T) {
	rc := runConfig(t)
	plan, dur := shortPlan, 10*time.Second
	if *flagLong {
		plan, dur = longPlan(*flagRuns), 15*time.Second
	}
	if *flagDuration > 0 {
		dur = *flagDuration
	}
	if *flagFaults != "" {
		var filtered []planned
		for _, name := range strings.Split(*flagFaults, ",") {
			for _, p := range plan {
				if p.fault == name {
					filtered = append(filtered, p)
				}
			}
		}
		plan = filtered
	}
	type tally struct{ runs, passed int }
	tallies := map[string]*tally{}
	total, passed := 0, 0
	for i, p := range plan {
		f, err := FaultByName(p.fault)
		if err != nil {
			t.Fatal(err)
		}
		if !faultAllowed(f, p.size) {
			continue
		}
		name := fmt.Sprintf("%02d-%s-%dm", i, p.fault, p.size)
		ran := false
		ok := t.Run(name, func(t *testing.T) {
			ran = true
			rc := rc
			rc.Logf = t.Logf
			sc := Scenario{Name: name, Size: p.size, Fault: &f, Traffic: traffic(), Duration: dur}
			r, err := Run(context.Background(), rc, sc)
			if r != nil {
				t.Log(r.Stats)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
		if !ran {
			continue
		}
		key := fmt.Sprintf("%s/%dm", p.fault, p.size)
		if tallies[key] == nil {
			tallies[key] = &tally{}
		}
		tallies[key].runs++
		total++
		if ok {
			tallies[key].passed++
			passed++
		}
	}
	var keys []string
	for k := range tallies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "robustness summary (%s, leases=%v watch=%v compact=%v membership=%v hashkv=%v): %d/%d runs passed\n",
		rc.Bin, *flagLeases, *flagWatch, *flagCompact, *flagMembership, *flagHashKV, passed, total)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %d/%d passed\n", k, tallies[k].passed, tallies[k].runs)
	}
	t.Log(b.String())
	fmt.Print(b.String())
}
