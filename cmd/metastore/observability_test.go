package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/config"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// scrape returns the families /metrics at url lists (its TYPE lines) and the samples.
func scrape(t *testing.T, url string) (map[string]bool, map[string]float64) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names, samples := map[string]bool{}, map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
		} else if len(f) == 2 && !strings.HasPrefix(line, "#") {
			v, _ := strconv.ParseFloat(f[1], 64)
			samples[f[0]] = v
		}
	}
	return names, samples
}

var metricName = regexp.MustCompile(`\b(?:etcd|grpc|process|go|metastore)_[a-z0-9_]*[a-z0-9]`)

// needPeers are families whose series exist only once a member has peers (labelled by
// peer): a single member exposes none, as etcd.
var needPeers = map[string]bool{
	"etcd_network_peer_round_trip_time_seconds": true,
	"etcd_network_peer_sent_bytes_total":        true,
	"etcd_network_peer_received_bytes_total":    true,
	"etcd_network_peer_sent_failures_total":     true,
}

// grpcLabels are label names of grpc_server_* the regexp also matches.
var grpcLabels = map[string]bool{"grpc_service": true, "grpc_type": true, "grpc_code": true, "grpc_method": true}

// TestObservabilityFilesMatchARunningMember starts a member (--metrics=extensive, as
// the dashboard's and alerts' grpc_server_handling_seconds need), and checks that every
// metric docs/observability's dashboard and alert rules use is on its /metrics, and
// that a put moves etcd_mvcc_put_total and the proposals committed.
func TestObservabilityFilesMatchARunningMember(t *testing.T) {
	dir := t.TempDir()
	cport, pport := freePort(t), freePort(t)
	curl, purl := "http://127.0.0.1:"+cport, "http://127.0.0.1:"+pport
	cfg, _, err := config.Parse([]string{"--name", "m1", "--data-dir", filepath.Join(dir, "m1"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "m1=" + purl, "--metrics", "extensive"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := startMember(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer m.close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{curl}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, before := scrape(t, curl+"/metrics")
	for i := range 3 {
		if _, err := cli.Put(ctx, "k"+strconv.Itoa(i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Get(ctx, "k0"); err != nil {
		t.Fatal(err)
	}
	names, after := scrape(t, curl+"/metrics")
	if d := after["etcd_mvcc_put_total"] - before["etcd_mvcc_put_total"]; d != 3 {
		t.Errorf("etcd_mvcc_put_total rose by %v after 3 puts", d)
	}
	if after["etcd_server_proposals_committed_total"] < before["etcd_server_proposals_committed_total"]+3 {
		t.Errorf("proposals committed %v -> %v after 3 puts", before["etcd_server_proposals_committed_total"], after["etcd_server_proposals_committed_total"])
	}
	if after["etcd_server_has_leader"] != 1 || after["etcd_server_is_leader"] != 1 {
		t.Errorf("has_leader %v is_leader %v on a single member", after["etcd_server_has_leader"], after["etcd_server_is_leader"])
	}

	for _, f := range []string{"../../docs/observability/dashboard.json", "../../docs/observability/alerts.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used := metricName.FindAllString(string(b), -1)
		if len(used) < 10 {
			t.Fatalf("%s: only %d metric names found", f, len(used))
		}
		for _, n := range used {
			base := n
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(n, suf); ok && (names[s] || needPeers[s]) {
					base = s
				}
			}
			if !names[base] && !needPeers[base] && !grpcLabels[base] {
				t.Errorf("%s uses %s, which a running member does not expose", f, n)
			}
		}
	}
}

// TestThreeMembersHasLeaderDropsWithoutQuorum runs three real members in process:
// each exposes etcd_server_has_leader 1, exactly one is_leader, peers' bytes are
// counted; once two are stopped the last one's has_leader drops to 0.
func TestThreeMembersHasLeaderDropsWithoutQuorum(t *testing.T) {
	dir := t.TempDir()
	var curls, purls []string
	var initial []string
	for i := range 3 {
		curls = append(curls, "http://127.0.0.1:"+freePort(t))
		purls = append(purls, "http://127.0.0.1:"+freePort(t))
		initial = append(initial, "m"+strconv.Itoa(i)+"="+purls[i])
	}
	ms := make([]*member, 3)
	errc := make(chan error, 3)
	for i := range 3 {
		go func() {
			cfg, _, err := config.Parse([]string{"--name", "m" + strconv.Itoa(i), "--data-dir", filepath.Join(dir, strconv.Itoa(i)),
				"--listen-client-urls", curls[i], "--advertise-client-urls", curls[i],
				"--listen-peer-urls", purls[i], "--initial-advertise-peer-urls", purls[i],
				"--initial-cluster", strings.Join(initial, ","), "--heartbeat-interval", "50", "--election-timeout", "500"}, nil)
			if err == nil {
				ms[i], err = startMember(cfg, zap.NewNop())
			}
			errc <- err
		}()
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, m := range ms {
			if m != nil {
				m.close(context.Background())
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := m.srv.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: curls[:1], DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	leaders := 0.0
	for i, u := range curls {
		// Every member applies the put: wait for it there.
		var s map[string]float64
		for {
			_, s = scrape(t, u+"/metrics")
			if s["etcd_mvcc_put_total"] >= 1 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if s["etcd_server_has_leader"] != 1 || s["etcd_mvcc_put_total"] != 1 {
			t.Errorf("member %d: has_leader %v, put_total %v", i, s["etcd_server_has_leader"], s["etcd_mvcc_put_total"])
		}
		leaders += s["etcd_server_is_leader"]
	}
	if leaders != 1 {
		t.Errorf("%v members say they lead", leaders)
	}
	names, _ := scrape(t, curls[0]+"/metrics")
	for n := range needPeers {
		if n != "etcd_network_peer_round_trip_time_seconds" && !names[n] {
			t.Errorf("%s missing on a member with peers", n)
		}
	}
	ms[1].close(context.Background())
	ms[2].close(context.Background())
	ms[1], ms[2] = nil, nil
	for {
		_, s := scrape(t, curls[0]+"/metrics")
		if s["etcd_server_has_leader"] == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("etcd_server_has_leader still 1 with 2 of 3 members stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
