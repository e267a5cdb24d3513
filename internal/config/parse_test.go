package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, args []string, env []string) (*Config, []string) {
	t.Helper()
	c, ws, err := Parse(args, env)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", args, env, err)
	}
	return c, ws
}

func TestDefaultsAreEtcds(t *testing.T) {
	c, ws := mustParse(t, nil, nil)
	if len(ws) != 0 {
		t.Errorf("warnings for an empty command line: %q", ws)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", c.Name, "default"},
		{"data-dir", c.DataDir, "default.metastore"},
		{"wal-dir", c.WALDir, ""},
		{"listen-client-urls", strings.Join(URLStrings(c.ListenClientURLs), ","), "http://localhost:2379"},
		{"advertise-client-urls", strings.Join(URLStrings(c.AdvertiseClientURLs), ","), "http://localhost:2379"},
		{"listen-peer-urls", strings.Join(URLStrings(c.ListenPeerURLs), ","), "http://localhost:2380"},
		{"initial-advertise-peer-urls", strings.Join(URLStrings(c.AdvertisePeerURLs), ","), "http://localhost:2380"},
		{"initial-cluster", c.InitialCluster, "default=http://localhost:2380"},
		{"initial-cluster-state", c.InitialClusterState, "new"},
		{"initial-cluster-token", c.InitialClusterToken, "etcd-cluster"},
		{"snapshot-count", c.SnapshotCount, uint64(10000)},
		{"snapshot-catchup-entries", c.SnapshotCatchUpEntries, uint64(5000)},
		{"heartbeat-interval", c.HeartbeatInterval, 100 * time.Millisecond},
		{"election-timeout", c.ElectionTimeout, time.Second},
		{"election ticks", c.ElectionTicks(), 10},
		{"initial-election-tick-advance", c.InitialElectionTickAdvance, true},
		{"quota-backend-bytes", c.QuotaBackendBytes, int64(0)},
		{"quota in effect", c.QuotaBytes(), int64(2 << 30)},
		{"max-request-bytes", c.MaxRequestBytes, uint(1572864)},
		{"max-txn-ops", c.MaxTxnOps, uint(128)},
		{"auto-compaction-mode", c.AutoCompactionMode, "periodic"},
		{"auto-compaction-retention", c.AutoCompactionRetention, "0"},
		{"auto-compaction period", c.AutoCompactionPeriod, time.Duration(0)},
		{"logger", c.Logger, "zap"},
		{"log-level", c.LogLevel, "info"},
		{"log-format", c.LogFormat, "json"},
		{"log-outputs", strings.Join(c.LogOutputs, ","), "default"},
		{"storage-engine", c.StorageEngine, "pebble"},
		{"version", c.PrintVersion, false},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestFlagSyntaxIsGoFlagLikeEtcd(t *testing.T) {
	for _, args := range [][]string{
		{"--name=n1"}, {"--name", "n1"}, {"-name", "n1"}, {"-name=n1"},
	} {
		c, _ := mustParse(t, args, nil)
		if c.Name != "n1" {
			t.Errorf("%q: name = %q", args, c.Name)
		}
	}
	c, ws := mustParse(t, []string{"--memory-mlock", "--name", "x"}, nil)
	if c.Ignored["memory-mlock"] != "true" || c.Name != "x" {
		t.Errorf("bare boolean: ignored=%v name=%q", c.Ignored, c.Name)
	}
	if len(ws) != 1 || ws[0] != "flag --memory-mlock is not implemented by metastore yet; ignored" {
		t.Errorf("warnings = %q", ws)
	}
	c, ws = mustParse(t, []string{"--enable-pprof"}, nil)
	if !c.EnablePprof || len(ws) != 0 {
		t.Errorf("--enable-pprof: enabled=%v warnings=%q", c.EnablePprof, ws)
	}
	c, ws = mustParse(t, []string{"--initial-election-tick-advance=false"}, nil)
	if c.InitialElectionTickAdvance || len(ws) != 0 {
		t.Errorf("--initial-election-tick-advance=false: %v, warnings %q", c.InitialElectionTickAdvance, ws)
	}
	c, _ = mustParse(t, nil, []string{"ETCD_INITIAL_ELECTION_TICK_ADVANCE=false"})
	if c.InitialElectionTickAdvance {
		t.Error("ETCD_INITIAL_ELECTION_TICK_ADVANCE=false not applied")
	}
	c, _ = mustParse(t, []string{"--version"}, nil)
	if !c.PrintVersion {
		t.Error("--version not reported")
	}
}

func TestNameDerivesInitialClusterAndDataDir(t *testing.T) {
	c, _ := mustParse(t, []string{"--name", "infra1", "--initial-advertise-peer-urls", "http://127.0.0.1:12380,http://127.0.0.1:12381"}, nil)
	if want := "infra1=http://127.0.0.1:12380,infra1=http://127.0.0.1:12381"; c.InitialCluster != want {
		t.Errorf("initial-cluster = %q, want %q", c.InitialCluster, want)
	}
	if c.DataDir != "infra1.metastore" {
		t.Errorf("data-dir = %q", c.DataDir)
	}
	// An explicit --initial-cluster is kept as given.
	c, _ = mustParse(t, []string{"--name", "a", "--initial-cluster", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
		"--initial-advertise-peer-urls", "http://10.0.0.1:2380"}, nil)
	if c.InitialCluster != "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380" {
		t.Errorf("initial-cluster = %q", c.InitialCluster)
	}
}

func TestURLFlags(t *testing.T) {
	c, _ := mustParse(t, []string{
		"--listen-client-urls", "http://127.0.0.1:0, unix://localhost:1234,http://127.0.0.1:0",
		"--advertise-client-urls", "http://127.0.0.1:2379",
	}, nil)
	if got := strings.Join(URLStrings(c.ListenClientURLs), ","); got != "http://127.0.0.1:0,unix://localhost:1234" {
		t.Errorf("listen-client-urls = %q (want deduplicated and sorted)", got)
	}
	_, _, err := Parse([]string{"--listen-client-urls", "http://127.0.0.1:2379"}, nil)
	if !errors.Is(err, ErrUnsetAdvertiseClientURLs) || ExitCode(err) != 1 {
		t.Errorf("listen without advertise: %v", err)
	}
}

func TestFlagErrorsMatchEtcd(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
		code int
	}{
		{[]string{"--foo"}, "flag provided but not defined: -foo", 2},
		{[]string{"--name"}, "flag needs an argument: -name", 2},
		{[]string{"--snapshot-count", "abc"}, `invalid value "abc" for flag -snapshot-count: parse error`, 2},
		{[]string{"--heartbeat-interval", "1s"}, `invalid value "1s" for flag -heartbeat-interval: parse error`, 2},
		{[]string{"--listen-client-urls", "foo://a:1"}, `invalid value "foo://a:1" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo://a:1`, 2},
		{[]string{"--initial-cluster-state", "bogus"}, `invalid value "bogus" for flag -initial-cluster-state: invalid value`, 2},
		{[]string{"--discovery", "x"}, "flag provided but not defined: -discovery", 2},
		{[]string{"extra"}, `"extra" is not a valid flag`, 1},
		{[]string{"--election-timeout", "400"}, "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]", 1},
		{[]string{"--heartbeat-interval=0"}, "--heartbeat-interval must be >0 (set to 0ms)", 1},
		{[]string{"--election-timeout=0"}, "--election-timeout must be >0 (set to 0ms)", 1},
		{[]string{"--election-timeout=60000"}, "--election-timeout[60000ms] is too long, and should be set less than 50000ms", 1},
		{[]string{"--auto-compaction-mode", "foo"}, `unknown auto-compaction-mode "foo"`, 1},
		{[]string{"--auto-compaction-retention", "x"}, `error parsing CompactionRetention: time: invalid duration "x"`, 1},
		{[]string{"--logger", "capnslog"}, "--logger=capnslog is removed in v3.5", 1},
		{[]string{"--log-outputs", "default,stdout"}, `multi logoutput for "default" is not supported yet`, 1},
		{[]string{"--listen-peer-urls", "http://example.com:2380"}, "expected IP in URL for binding (http://example.com:2380)", 1},
		{[]string{"--discovery-srv", "example.com", "--initial-cluster", "a=http://1.1.1.1:2380"}, ErrConflictBootstrapFlags.Error(), 1},
		{[]string{"--storage-engine", "bolt"}, `unknown --storage-engine "bolt" (supported: pebble, rocksdb)`, 1},
	} {
		_, _, err := Parse(tc.args, nil)
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.args, tc.msg)
			continue
		}
		if err.Error() != tc.msg || ExitCode(err) != tc.code {
			t.Errorf("%q: error %q (exit %d), want %q (exit %d)", tc.args, err, ExitCode(err), tc.msg, tc.code)
		}
	}
	if _, _, err := Parse([]string{"--help"}, nil); !errors.Is(err, ErrHelp) || ExitCode(err) != 0 {
		t.Errorf("--help: %v", err)
	}
	if _, _, err := Parse([]string{"-h"}, nil); !errors.Is(err, ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestCompactionRetention(t *testing.T) {
	for _, tc := range []struct {
		mode, ret string
		period    time.Duration
		revs      int64
	}{
		{"periodic", "1", time.Hour, 0},
		{"periodic", "30m", 30 * time.Minute, 0},
		{"revision", "1000", 0, 1000},
		{"periodic", "0", 0, 0},
	} {
		c, _ := mustParse(t, []string{"--auto-compaction-mode", tc.mode, "--auto-compaction-retention", tc.ret}, nil)
		if c.AutoCompactionPeriod != tc.period || c.AutoCompactionRevisions != tc.revs {
			t.Errorf("%s %s: period %v revisions %d", tc.mode, tc.ret, c.AutoCompactionPeriod, c.AutoCompactionRevisions)
		}
	}
}

func TestEveryUnimplementedFlagWarnsOnce(t *testing.T) {
	for _, f := range unimplementedFlags {
		val := map[flagKind]string{kindString: "x", kindBool: "true", kindUint: "1", kindUint32: "1", kindInt: "1",
			kindDuration: "1s", kindURLs: "http://127.0.0.1:1", kindStrings: "a,b"}[f.kind]
		if f.kind == kindChoice || f.kind == kindChoices {
			val = f.choices[0]
		}
		args := []string{"--" + f.name + "=" + val}
		if f.name == "discovery-srv" || f.name == "discovery-endpoints" {
			args = append(args, "--initial-cluster=default=http://localhost:2380")
		}
		c, ws, err := Parse(args, nil)
		if integrityFlags[f.name] { // read by Integrity: no warning
			if err != nil || c.Ignored[f.name] != val || len(ws) != 0 {
				t.Errorf("--%s=%s: ignored=%v warnings=%q err=%v", f.name, val, c.Ignored, ws, err)
			}
			continue
		}
		if f.name == "discovery-srv" || f.name == "discovery-endpoints" {
			if !errors.Is(err, ErrConflictBootstrapFlags) {
				t.Errorf("--%s with --initial-cluster: %v", f.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("--%s=%s: %v", f.name, val, err)
			continue
		}
		if c.Ignored[f.name] != val || len(ws) != 1 || !strings.HasPrefix(ws[0], "flag --"+f.name+" is not implemented by metastore yet; ignored") {
			t.Errorf("--%s=%s: ignored=%v warnings=%q", f.name, val, c.Ignored, ws)
		}
	}
	_, ws := mustParse(t, []string{"--v", "--max-snapshots=3"}, nil)
	want := []string{
		"flag --max-snapshots is not implemented by metastore yet; ignored (--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.)",
		"flag --v is no longer supported by etcd; ignored",
	}
	if strings.Join(ws, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings = %q, want %q", ws, want)
	}
}

func TestQuota(t *testing.T) {
	c, ws := mustParse(t, []string{"--quota-backend-bytes=-1"}, nil)
	if c.QuotaBytes() != 0 || len(ws) != 0 {
		t.Errorf("negative quota: %d %q (want disabled)", c.QuotaBytes(), ws)
	}
	c, ws = mustParse(t, []string{"--quota-backend-bytes=10737418240"}, nil)
	if c.QuotaBytes() != 10737418240 || len(ws) != 1 || !strings.HasPrefix(ws[0], "quota exceeds the maximum value") {
		t.Errorf("10GiB quota: %d %q", c.QuotaBytes(), ws)
	}
}
