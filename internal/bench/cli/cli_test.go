package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/metastore/metastore/internal/bench/report"
	"github.com/metastore/metastore/internal/bench/workload"
)

// parse runs the command line with a recording executor and returns the plan it was given.
func parse(t *testing.T, args ...string) (Plan, string, error) {
	t.Helper()
	var got Plan
	var out bytes.Buffer
	off := false
	cmd := NewCommand(Options{Out: &out, Err: &out, Progress: &off,
		Exec: func(_ context.Context, p Plan) (report.Output, error) {
			got = p
			r := report.NewRecorder(p.Workload)
			now := time.Now()
			_ = r.Record(now, now.Add(time.Millisecond), nil)
			return report.Output{Workload: p.Workload, Results: []report.Summary{r.Summary()}}, nil
		}})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return got, out.String(), err
}

func TestPutFlagsLikeEtcdBenchmark(t *testing.T) {
	p, _, err := parse(t, "--endpoints", "a:1, b:2", "--conns", "3", "--clients", "30",
		"put", "--total", "500", "--key-size", "16", "--val-size", "256", "--key-space-size", "1000",
		"--sequential-keys", "--rate", "200", "--prefix", "/p/")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	if !reflect.DeepEqual(c.Endpoints, []string{"a:1", "b:2"}) || c.Conns != 3 || c.Clients != 30 ||
		c.Total != 500 || c.KeySize != 16 || c.ValSize != 256 || c.KeySpaceSize != 1000 ||
		!c.SequentialKeys || c.Rate != 200 {
		t.Errorf("config = %+v", c)
	}
	if p.Options != (workload.PutOptions{Prefix: "/p/", Idle: workload.IdleOptions{WatchersPerStr: 100}}) {
		t.Errorf("options = %#v", p.Options)
	}
}

func TestEtcdDefaults(t *testing.T) {
	p, _, err := parse(t, "put")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	if !reflect.DeepEqual(c.Endpoints, []string{"127.0.0.1:2379"}) || c.Conns != 1 || c.Clients != 1 ||
		c.Total != 10000 || c.KeySize != 8 || c.ValSize != 8 || c.KeySpaceSize != 1 {
		t.Errorf("put defaults = %+v, want etcd benchmark's", c)
	}
	p, _, err = parse(t, "watch")
	if err != nil {
		t.Fatal(err)
	}
	wo := p.Options.(workload.WatchOptions)
	if wo.Streams != 10 || wo.WatchersPerStr != 100 || wo.WatchedKeyTotal != 1 || wo.PutTotal != 1000 ||
		p.Config.KeySize != 32 {
		t.Errorf("watch defaults = %+v key-size %d", wo, p.Config.KeySize)
	}
	p, _, err = parse(t, "watch-latency")
	if err != nil {
		t.Fatal(err)
	}
	wo = p.Options.(workload.WatchOptions)
	if wo.Streams != 10 || wo.WatchersPerStr != 10 || wo.PutRate != 100 || p.Config.ValSize != 32 {
		t.Errorf("watch-latency defaults = %+v val-size %d", wo, p.Config.ValSize)
	}
}

func TestRangeFlags(t *testing.T) {
	p, _, err := parse(t, "range", "a", "z", "--consistency", "s", "--limit", "7", "--keys-only")
	if err != nil {
		t.Fatal(err)
	}
	want := workload.RangeOptions{Key: "a", End: "z", Serializable: true, Limit: 7, KeysOnly: true}
	if p.Options != want {
		t.Errorf("options = %+v, want %+v", p.Options, want)
	}
	p, _, err = parse(t, "range", "--prefix", "/registry/")
	if err != nil || p.Options.(workload.RangeOptions).Prefix != true || p.Options.(workload.RangeOptions).Serializable {
		t.Errorf("prefix range: %+v %v", p.Options, err)
	}
}

func TestTxnFlags(t *testing.T) {
	p, _, err := parse(t, "txn-put", "--txn-ops", "3", "--key-space-size", "10")
	if err != nil || p.Options != (workload.TxnPutOptions{OpsPerTxn: 3}) {
		t.Errorf("txn-put: %#v %v", p.Options, err)
	}
	p, _, err = parse(t, "txn-mixed", "--rw-ratio", "4", "--limit", "50", "--end-key", "z", "--consistency", "s")
	want := workload.TxnMixedOptions{ReadWriteRatio: 4, Limit: 50, EndKey: "z", Serializable: true}
	if err != nil || p.Options != want {
		t.Errorf("txn-mixed: %#v %v, want %#v", p.Options, err, want)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"range"},
		{"range", "k", "--consistency", "x"},
		{"range", "k", "--count-only", "--keys-only"},
		{"txn-mixed", "--consistency", "q"},
		{"txn-put", "--txn-ops", "5", "--key-space-size", "2"},
		{"put", "--clients", "0"},
		{"put", "--total", "0"},
		{"put", "--key-space-size", "0"},
		{"put", "--user", "root"},
		{"k8s", "--mix", "update=1,bogus=2"},
	} {
		if _, _, err := parse(t, args...); !errors.Is(err, ErrUsage) && !errors.Is(err, workload.ErrBadConfig) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

func TestAuthAndTLSFlags(t *testing.T) {
	p, _, err := parse(t, "--user", "root:pw", "--cacert", "ca.pem", "--cert", "c.pem", "--key", "k.pem",
		"--insecure-skip-tls-verify", "lease-keepalive")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	if c.Username != "root" || c.Password != "pw" || c.TLS.TrustedCAFile != "ca.pem" ||
		c.TLS.CertFile != "c.pem" || c.TLS.KeyFile != "k.pem" || !c.TLS.InsecureSkipVerify {
		t.Errorf("auth/TLS = %+v", c)
	}
	p, _, err = parse(t, "--user", "u", "--password", "secret", "put")
	if err != nil || p.Config.Username != "u" || p.Config.Password != "secret" {
		t.Errorf("--password: %+v %v", p.Config, err)
	}
}

func TestDurationAndMix(t *testing.T) {
	p, _, err := parse(t, "k8s", "--total", "0", "--duration", "30s", "--mix", "update=3,list=1", "--objects", "50")
	if err != nil {
		t.Fatal(err)
	}
	o := p.Options.(workload.K8sOptions)
	if p.Config.Duration != 30*time.Second || p.Config.Total != 0 || o.Objects != 50 ||
		!reflect.DeepEqual(o.Mix, map[string]int{"update": 3, "list": 1}) || o.PageSize != 500 {
		t.Errorf("k8s plan = %+v %+v", p.Config, o)
	}
	p, _, err = parse(t, "list", "--keys", "10000", "--page-size", "500", "--consistency", "s")
	if err != nil {
		t.Fatal(err)
	}
	lo := p.Options.(workload.ListOptions)
	if lo.Keys != 10000 || lo.PageSize != 500 || !lo.Serializable || lo.Prefix != workload.DefaultListPrefix {
		t.Errorf("list plan = %+v", lo)
	}
}

func TestJSONFlag(t *testing.T) {
	_, out, err := parse(t, "--json", "txn-put", "--total", "3")
	if err != nil {
		t.Fatal(err)
	}
	var doc report.Output
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if doc.Workload != "txn-put" || len(doc.Results) != 1 || doc.Results[0].Requests != 1 {
		t.Errorf("doc = %+v", doc)
	}
	_, out, err = parse(t, "put", "--total", "3")
	if err != nil || json.Valid([]byte(out)) || !bytes.Contains([]byte(out), []byte("Summary of put")) {
		t.Errorf("text output expected without --json: %v\n%s", err, out)
	}
}
