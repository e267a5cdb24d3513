package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"
)

// alertRulesFile is the Prometheus rules file shipped for operators
// (etcd-mixin-compatible alert names and expressions).
const alertRulesFile = "../../docs/observability/alerts.yaml"

// obsNotYetServed are metrics the rules file reads that MetaStore does not expose
// yet: known gaps. The test fails once one appears, so the list only shrinks.
var obsNotYetServed = map[string]bool{}

// obsScrape fetches url (a /metrics endpoint) and sums every sample by its exposed
// name (histograms appear as name_bucket, name_sum and name_count).
// obsRaw is the text of one scrape of url.
func obsRaw(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

func obsScrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
			rest = line[i:]
		}
		if j := strings.LastIndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("scrape %s: bad sample %q", url, line)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// obsWaitFor scrapes url until ok holds for the sample sums, failing after within.
func obsWaitFor(t *testing.T, url, what string, within time.Duration, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := obsScrape(t, url)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not a timing assertion
	}
}

type obsRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// obsMetricName matches metric names, not the label names grpc_code, grpc_type, grpc_method.
var obsMetricName = regexp.MustCompile(`\b(?:etcd|grpc_server|metastore)_[a-z0-9_]+\b`)

// obsAlertMetrics reads the rules file, checks each rule is well formed, and returns
// the metric names its expressions read (Prometheus' own `up` aside).
func obsAlertMetrics(t *testing.T) (alerts []string, names map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf obsRules
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}
	names = map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.For == "" {
				t.Fatalf("%s: group %s: rule %q lacks alert, expr or for", alertRulesFile, g.Name, r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Fatalf("%s: %s: severity %q", alertRulesFile, r.Alert, s)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Fatalf("%s: %s: unbalanced parentheses", alertRulesFile, r.Alert)
			}
			alerts = append(alerts, r.Alert)
			for _, n := range obsMetricName.FindAllString(r.Expr, -1) {
				names[n] = true
			}
		}
	}
	return alerts, names
}

// TestObservabilityEtcdMixinAlerts: the alert rules carry the etcd-mixin's alert
// names, and every metric they read is on a running member's /metrics, ours and real
// etcd's alike (so the same rules serve both), with --metrics=extensive, which
// etcdGRPCRequestsSlow's grpc_server_handling_seconds needs. The peer round-trip
// histogram appears once a peer was probed, and the peer send failures once a peer is
// down, so they are waited for.
func TestObservabilityEtcdMixinAlerts(t *testing.T) {
	alerts, names := obsAlertMetrics(t)
	have := map[string]bool{}
	for _, a := range alerts {
		have[a] = true
	}
	for _, a := range []string{"etcdMembersDown", "etcdNoLeader", "etcdHighNumberOfLeaderChanges",
		"etcdHighFsyncDurations", "etcdHighCommitDurations", "etcdDatabaseQuotaLowSpace",
		"etcdHighNumberOfFailedGRPCRequests", "etcdHighNumberOfFailedProposals"} {
		if !have[a] {
			t.Errorf("%s has no alert %s", alertRulesFile, a)
		}
	}
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3, "--metrics", "extensive")
		cli := c.client(0)
		for i := 0; i < 5; i++ {
			mustPut(t, cli, fmt.Sprintf("obs/%d", i), "v")
		}
		mustGet(t, cli, "obs/", clientv3.WithPrefix())
		// The leader is scraped: it is the member that keeps sending to every peer,
		// so the one whose send failures appear when a follower stops.
		leader := c.leaderIndex(t)
		url := c.members[leader].clientURL + "/metrics"
		const rtt = "etcd_network_peer_round_trip_time_seconds_bucket"
		ours := b.name == "metastore"
		s := obsScrape(t, url)
		if !ours || !obsNotYetServed[rtt] {
			s = obsWaitFor(t, url, rtt+" after the peers were probed", 30*time.Second,
				func(s map[string]float64) bool { _, ok := s[rtt]; return ok })
		}
		// etcdMembersDown reads the peer send failures, which appear (on both) once a
		// peer is down: stop a follower and wait for them on the leader.
		const failures = "etcd_network_peer_sent_failures_total"
		c.stop((leader + 1) % 3)
		s = obsWaitFor(t, url, failures+" after a peer stopped", 30*time.Second,
			func(s map[string]float64) bool { return s[failures] > 0 })
		for n := range names {
			_, ok := s[n]
			switch {
			case strings.HasPrefix(n, "metastore_") && !ours:
			case ours && obsNotYetServed[n]:
				if ok {
					t.Errorf("%s is served now: take it off obsNotYetServed", n)
				}
			case !ok:
				t.Errorf("%s reads %s, which %s does not expose", alertRulesFile, n, b.name)
			}
		}
	})
}

// TestObservabilityMetricsFollowTheCluster: the most-used metrics move as etcd's do:
// puts, ranges, deletes and multi-op txns count in etcd_mvcc_*_total, proposals are
// counted as committed and applied, exactly one member is leader, and a member
// that lost its quorum reports etcd_server_has_leader 0.
func TestObservabilityMetricsFollowTheCluster(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		c := newCluster(t, b, 3)
		url := func(i int) string { return c.members[i].clientURL + "/metrics" }
		cli := c.client(0)
		mustPut(t, cli, "obs/warm", "v") // a leader is elected and the first entries applied

		before := obsScrape(t, url(0))
		const puts = 20
		for i := 0; i < puts; i++ {
			mustPut(t, cli, fmt.Sprintf("obs/%d", i), "v")
		}
		mustGet(t, cli, "obs/", clientv3.WithPrefix())
		if _, err := cli.Delete(ctxT(t), "obs/0"); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Txn(ctxT(t)).Then(clientv3.OpPut("obs/t1", "v"), clientv3.OpPut("obs/t2", "v")).Commit(); err != nil {
			t.Fatal(err)
		}
		after := obsScrape(t, url(0))
		rise := func(name string, atLeast float64) {
			t.Helper()
			if d := after[name] - before[name]; d < atLeast {
				t.Errorf("%s rose by %v, want at least %v", name, d, atLeast)
			}
		}
		rise("etcd_mvcc_put_total", puts+2)
		rise("etcd_mvcc_range_total", 1)
		rise("etcd_mvcc_delete_total", 1)
		rise("etcd_mvcc_txn_total", 1)
		rise("etcd_server_proposals_committed_total", puts+2)
		rise("etcd_server_proposals_applied_total", puts+2)
		rise("etcd_disk_wal_fsync_duration_seconds_count", 1)
		rise("etcd_server_apply_duration_seconds_count", puts+2)
		rise("etcd_server_request_duration_seconds_count", puts+3) // the proposals and the range
		raw := obsRaw(t, url(0))
		for _, series := range []string{
			`etcd_server_apply_duration_seconds_count{op="Put",success="true",version="v3"}`,
			`etcd_server_apply_duration_seconds_count{op="Txn",success="true",version="v3"}`,
			`etcd_server_request_duration_seconds_count{success="true",type="Put"}`,
			`etcd_server_request_duration_seconds_count{success="true",type="Range"}`,
		} {
			if !strings.Contains(raw, series+" ") {
				t.Errorf("no series %s", series)
			}
		}
		// etcd commits its backend on a timer (100ms batches), not per put: wait for it.
		obsWaitFor(t, url(0), "a backend commit after the puts", 10*time.Second, func(s map[string]float64) bool {
			return s["etcd_disk_backend_commit_duration_seconds_count"] > before["etcd_disk_backend_commit_duration_seconds_count"]
		})
		if after["etcd_server_has_leader"] != 1 {
			t.Errorf("etcd_server_has_leader = %v on a healthy member", after["etcd_server_has_leader"])
		}
		if after["etcd_mvcc_db_total_size_in_bytes"] <= 0 || after["etcd_server_quota_backend_bytes"] <= 0 {
			t.Errorf("db size %v, quota %v: want both > 0",
				after["etcd_mvcc_db_total_size_in_bytes"], after["etcd_server_quota_backend_bytes"])
		}
		// obs/warm, obs/0..19 but obs/0, obs/t1 and obs/t2.
		if k := after["etcd_debugging_mvcc_keys_total"]; k != puts+2 {
			t.Errorf("etcd_debugging_mvcc_keys_total = %v, want %v", k, puts+2)
		}

		// A physical compaction (etcd answers once it ran) deletes the versions below
		// it: obs/0's put and tombstone at least, in one batch here.
		resp, err := cli.Get(ctxT(t), "obs/warm")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Compact(ctxT(t), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		after = obsWaitFor(t, url(0), "compaction metrics after a compaction", 30*time.Second, func(s map[string]float64) bool {
			return s["etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count"] >
				before["etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count"]
		})
		rise("etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_count", 1)
		rise("etcd_debugging_mvcc_db_compaction_keys_total", 2)
		if after["etcd_debugging_mvcc_db_compaction_last"] <= 0 {
			t.Errorf("etcd_debugging_mvcc_db_compaction_last = %v after a compaction", after["etcd_debugging_mvcc_db_compaction_last"])
		}
		if k := after["etcd_debugging_mvcc_keys_total"]; k != puts+2 {
			t.Errorf("etcd_debugging_mvcc_keys_total = %v after the compaction, want %v", k, puts+2)
		}
		// Hash and HashKV are timed.
		if _, err := cli.HashKV(ctxT(t), c.members[0].clientURL, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Hash(ctxT(t), &pb.HashRequest{}); err != nil {
			t.Fatal(err)
		}
		after = obsScrape(t, url(0))
		rise("etcd_mvcc_hash_duration_seconds_count", 1)
		rise("etcd_mvcc_hash_rev_duration_seconds_count", 1)
		// A restarted member reads its key count back.
		c.stop(2)
		c.restart(2)
		obsWaitFor(t, url(2), "etcd_debugging_mvcc_keys_total after a restart", 30*time.Second, func(s map[string]float64) bool {
			return s["etcd_debugging_mvcc_keys_total"] == puts+2
		})

		leaders := 0.0
		for i := range c.members {
			leaders += obsScrape(t, url(i))["etcd_server_is_leader"]
		}
		if leaders != 1 {
			t.Errorf("etcd_server_is_leader sums to %v over the members, want 1", leaders)
		}

		// Two of three stopped: the survivor has no quorum, so no leader.
		c.stop(1)
		c.stop(2)
		obsWaitFor(t, url(0), "etcd_server_has_leader 0 on the member left alone", 30*time.Second,
			func(s map[string]float64) bool { v, ok := s["etcd_server_has_leader"]; return ok && v == 0 })
		// A linearizable read cannot be confirmed without a quorum: it fails, and the
		// ReadIndex rounds that waited past their retry interval are counted as slow.
		slowBefore := obsScrape(t, url(0))["etcd_server_slow_read_indexes_total"]
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = cli.Get(ctx, "obs/1")
		cancel()
		if err == nil {
			t.Fatal("a linearizable get without a quorum succeeded")
		}
		obsWaitFor(t, url(0), "etcd_server_slow_read_indexes_total rising after a read without a quorum", 10*time.Second,
			func(s map[string]float64) bool { return s["etcd_server_slow_read_indexes_total"] > slowBefore })
	})
}
