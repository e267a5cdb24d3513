package main

import (
	"strings"
	"testing"
)

func TestTablePairsRoundsAndReportsSpread(t *testing.T) {
	r := newResults("etcd", "metastore")
	for i, v := range []struct{ a, b float64 }{{100, 110}, {200, 180}, {150, 150}} {
		r.add(1, "etcd", i, []figure{{"put | ops/s", v.a}})
		r.add(1, "metastore", i, []figure{{"put | ops/s", v.b}})
	}
	r.add(3, "etcd", 0, []figure{{"put | ops/s", 50}})
	r.add(3, "metastore", 0, []figure{{"put | ops/s", 25}})
	// B failed watch in round 0: its later rounds pair with A's same rounds only.
	r.add(3, "etcd", 0, []figure{{"watch | ops/s", 10}})
	r.add(3, "etcd", 1, []figure{{"watch | ops/s", 20}})
	r.add(3, "metastore", 1, []figure{{"watch | ops/s", 30}})
	r.fail("metastore: watch: Unimplemented")
	got := r.table()
	for _, want := range []string{
		"#### 1 member\n",
		"| workload | figure | etcd | metastore | metastore/etcd |",
		"| put | ops/s | 150.0 (100.0–200.0) | 150.0 (110.0–180.0) | 1.00 (0.90–1.10) |",
		"#### 3 members\n",
		"| put | ops/s | 50.00 | 25.00 | 0.50 (0.50–0.50) |",
		"| watch | ops/s | 15.00 (10.00–20.00) | 30.00 | 1.50 (1.50–1.50) |",
		"- metastore: watch: Unimplemented",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--etcd-bin", "e", "--bench-bin", "b", "--members", "1, 3", "--workloads", "put,k8s", "--keys", "100000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.members) != 2 || o.members[1] != 3 || len(o.workloads) != 2 || o.rounds != 3 || o.keys != 100000 {
		t.Errorf("options = %+v", o)
	}
	for _, bad := range [][]string{
		{"--bench-bin", "b"},
		{"--etcd-bin", "e", "--bench-bin", "b", "--workloads", "nope"},
		{"--etcd-bin", "e", "--bench-bin", "b", "--members", "0"},
		{"--etcd-bin", "e", "--bench-bin", "b", "--keys", "10"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
