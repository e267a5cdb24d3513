package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/version"
)

func TestEnvironmentMapsOntoFlags(t *testing.T) {
	c, ws := mustParse(t, []string{"--name", "n1"}, []string{
		"ETCD_DATA_DIR=/tmp/d", "ETCD_SNAPSHOT_COUNT=7", "ETCD_HEARTBEAT_INTERVAL=50",
		"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:0", "ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379",
		"ETCD_MEMORY_MLOCK=true", "PATH=/bin",
	})
	if c.Name != "n1" || c.DataDir != "/tmp/d" || c.SnapshotCount != 7 || c.HeartbeatInterval != 50*time.Millisecond {
		t.Errorf("env not applied: %+v", c)
	}
	if got := strings.Join(URLStrings(c.ListenClientURLs), ","); got != "http://127.0.0.1:0" {
		t.Errorf("listen-client-urls = %q", got)
	}
	if !c.ExplicitlySet["data-dir"] || c.Ignored["memory-mlock"] != "true" {
		t.Errorf("explicit=%v ignored=%v", c.ExplicitlySet, c.Ignored)
	}
	if len(ws) != 1 || !strings.Contains(ws[0], "--memory-mlock") {
		t.Errorf("warnings = %q", ws)
	}
}

func TestEnvironmentConflictsAndUnknownsAsEtcd(t *testing.T) {
	// etcd exits (fatal) when a variable is shadowed by a flag given on the command line.
	_, _, err := Parse([]string{"--name", "y"}, []string{"ETCD_NAME=x"})
	if err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag`) {
		t.Errorf("conflict: %v", err)
	}
	_, _, err = Parse(nil, []string{"ETCD_SNAPSHOT_COUNT=abc"})
	if err == nil || err.Error() != `invalid value "abc" for ETCD_SNAPSHOT_COUNT: parse error` || ExitCode(err) != 1 {
		t.Errorf("bad env value: %v", err)
	}
	c, ws := mustParse(t, nil, []string{"ETCD_FOO_BAR=1", "ETCD_VERSION=1", "ETCD_NAME="})
	if c.PrintVersion || c.Name != "default" {
		t.Errorf("ETCD_VERSION / empty ETCD_NAME applied: %+v", c)
	}
	want := []string{
		"cannot set special environment variable ETCD_VERSION=1; ignored",
		"unrecognized environment variable ETCD_FOO_BAR=1; ignored",
		"unrecognized environment variable ETCD_NAME=; ignored", // etcd warns for an empty one too
	}
	if strings.Join(ws, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings = %q, want %q", ws, want)
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFileIsTheOnlySource(t *testing.T) {
	p := writeFile(t, "etcd.yaml", `
name: infra1
data-dir: /var/lib/m
snapshot-count: 500
heartbeat-interval: 50
election-timeout: 500
initial-election-tick-advance: false
listen-client-urls: http://127.0.0.1:12379,http://127.0.0.1:12378
advertise-client-urls: http://127.0.0.1:12379
listen-peer-urls: http://127.0.0.1:12380
initial-advertise-peer-urls: http://127.0.0.1:12380
initial-cluster-token: tok
log-level: debug
log-outputs: [stdout]
memory-mlock: true
client-transport-security:
  cert-file: ""
frobnicate: 3
`)
	// Flags other than --config-file and the environment are ignored, as etcd does.
	c, ws, err := Parse([]string{"--config-file", p, "--name", "cmdline"}, []string{"ETCD_DATA_DIR=/env", "ETCD_BOGUS=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "infra1" || c.DataDir != "/var/lib/m" || c.SnapshotCount != 500 ||
		c.HeartbeatInterval != 50*time.Millisecond || c.ElectionTimeout != 500*time.Millisecond || c.InitialElectionTickAdvance ||
		c.InitialClusterToken != "tok" || c.LogLevel != "debug" || strings.Join(c.LogOutputs, ",") != "stdout" {
		t.Errorf("file not applied: %+v", c)
	}
	if got := strings.Join(URLStrings(c.ListenClientURLs), ","); got != "http://127.0.0.1:12378,http://127.0.0.1:12379" {
		t.Errorf("listen-client-urls = %q", got)
	}
	if c.InitialCluster != "infra1=http://127.0.0.1:12380" {
		t.Errorf("initial-cluster = %q", c.InitialCluster)
	}
	want := []string{
		`config file key "frobnicate" is unknown to etcd; ignored`,
		`config file key "memory-mlock" is not implemented by metastore yet; ignored`,
		"flags --name are ignored because --config-file " + p + " is given (as in etcd)",
		"environment variables ETCD_BOGUS ETCD_DATA_DIR are ignored because --config-file " + p + " is given (as in etcd)",
	}
	if strings.Join(ws, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings =\n%s\nwant\n%s", strings.Join(ws, "\n"), strings.Join(want, "\n"))
	}

	// ETCD_CONFIG_FILE selects the file too.
	c, _, err = Parse(nil, []string{"ETCD_CONFIG_FILE=" + p})
	if err != nil || c.Name != "infra1" {
		t.Errorf("ETCD_CONFIG_FILE: %v %+v", err, c)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"election-timeout: 1\n", "--election-timeout[1ms] should be at least as 5 times as --heartbeat-interval[100ms]"},
		{"listen-client-urls: foo://x\n", "unexpected error setting up listen-client-urls: URL scheme must be http, https, unix, or unixs: foo://x"},
		{"snapshot-count: abc\n", "cannot unmarshal string"},
		{"initial-cluster-state: bogus\n", `unexpected clusterState "bogus"`},
	} {
		_, _, err := Parse([]string{"--config-file", writeFile(t, "c.yaml", tc.body)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != 1 {
			t.Errorf("%q: %v, want %q", tc.body, err, tc.want)
		}
	}
	_, _, err := Parse([]string{"--config-file", filepath.Join(t.TempDir(), "none.yaml")}, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestVersionText(t *testing.T) {
	if EtcdVersion != version.Version {
		t.Fatalf("EtcdVersion %q != etcd api version %q", EtcdVersion, version.Version)
	}
	want := "etcd Version: 3.7.3\nMetaStore Version: " + Version + "\nGit SHA: abc123\nGo Version: " +
		runtime.Version() + "\nGo OS/Arch: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := VersionText("abc123"); got != want {
		t.Errorf("VersionText = %q, want %q", got, want)
	}
}

func TestLoggerWritesEtcdJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	c, _ := mustParse(t, []string{"--log-outputs", path, "--log-level", "warn"}, nil)
	lg, err := c.NewLogger()
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("hidden")
	lg.Warn("shown")
	_ = lg.Sync()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("log = %q, want one warn line", b)
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "warn" || rec["msg"] != "shown" || rec["caller"] == nil {
		t.Errorf("record = %v", rec)
	}
	ts, _ := rec["ts"].(string)
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z0700", ts); err != nil {
		t.Errorf("ts %q is not etcd's format: %v", ts, err)
	}
	zc, err := NewConfig().ZapConfig()
	if err != nil || strings.Join(zc.OutputPaths, ",") != "stderr" || zc.Encoding != "json" {
		t.Errorf("default zap config: %v %v %v", err, zc.OutputPaths, zc.Encoding)
	}
}

func TestCheckDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDataDir(filepath.Join(dir, "absent")); err != nil {
		t.Errorf("absent dir: %v", err)
	}
	if err := CheckDataDir(dir); err != nil {
		t.Errorf("empty dir: %v", err)
	}
	for _, p := range []string{"member/snap/db", "member/wal"} {
		d := t.TempDir()
		full := filepath.Join(d, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CheckDataDir(d); !errors.Is(err, ErrEtcdDataDir) {
			t.Errorf("etcd layout with %s: %v", p, err)
		}
	}
}

func TestConfigFileNullsAndUnknownKeysAsEtcd(t *testing.T) {
	p := writeFile(t, "etcd.yaml", `
name: n1
data-dir:
initial-cluster:
discovery-srv:
discovery-fallback: proxy
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
`)
	c, ws, err := Parse([]string{"--config-file", p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// null keeps the default, so initial-cluster is derived from the name as etcd does,
	// and a null discovery-srv does not disable it.
	if c.InitialCluster != "n1=http://localhost:2380" || c.DataDir != "n1.metastore" {
		t.Errorf("initial-cluster %q data-dir %q", c.InitialCluster, c.DataDir)
	}
	if c.Ignored["discovery-srv"] != "" {
		t.Errorf("ignored = %v", c.Ignored)
	}
	if strings.Join(c.CipherSuites, ",") != "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" {
		t.Errorf("cipher-suites = %q (a YAML list, order kept)", c.CipherSuites)
	}
	want := []string{
		// etcd reads discovery-fallback from the command line only.
		`config file key "discovery-fallback" is unknown to etcd; ignored`,
		`config file key "discovery-srv" is not implemented by metastore yet; ignored`,
	}
	if strings.Join(ws, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings =\n%s\nwant\n%s", strings.Join(ws, "\n"), strings.Join(want, "\n"))
	}
}
