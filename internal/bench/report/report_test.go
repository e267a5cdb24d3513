package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// uniform records latencies 1ms, 2ms, ..., n ms, each once.
func uniform(t *testing.T, n int) *Recorder {
	t.Helper()
	r := NewRecorder("u")
	base := time.Unix(1000, 0)
	for i := 1; i <= n; i++ {
		if err := r.Record(base, base.Add(time.Duration(i)*time.Millisecond), nil); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	// HdrHistogram keeps three significant digits: allow 0.2% plus rounding of the input.
	if math.Abs(got-want) > want*0.002+0.001 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestPercentilesOfUniformDistribution(t *testing.T) {
	s := uniform(t, 1000).Summary()
	if s.Requests != 1000 || s.Successes != 1000 || s.Errors != 0 {
		t.Fatalf("counts = %d/%d/%d, want 1000/1000/0", s.Requests, s.Successes, s.Errors)
	}
	near(t, "p50", s.P50Ms, 500)
	near(t, "p90", s.P90Ms, 900)
	near(t, "p99", s.P99Ms, 990)
	near(t, "p99.9", s.P999Ms, 999)
	near(t, "avg", s.AvgMs, 500.5)
	near(t, "min", s.MinMs, 1)
	near(t, "max", s.MaxMs, 1000)
	near(t, "stddev", s.StddevMs, 288.67)
	if len(s.Percentiles) != len(ReportedPercentiles) {
		t.Fatalf("got %d percentiles, want %d", len(s.Percentiles), len(ReportedPercentiles))
	}
	for i, p := range s.Percentiles {
		near(t, "percentile", p.Ms, p.Percentile*10)
		if i > 0 && p.Ms < s.Percentiles[i-1].Ms {
			t.Errorf("percentiles not monotonic: %v", s.Percentiles)
		}
	}
}

func TestHistogramOfUniformDistributionIsFlat(t *testing.T) {
	s := uniform(t, 1000).Summary()
	if len(s.Histogram) != HistogramBuckets {
		t.Fatalf("got %d buckets, want %d", len(s.Histogram), HistogramBuckets)
	}
	var sum int64
	for i, b := range s.Histogram {
		sum += b.Count
		// 100 values per bucket; bucket edges fall within HdrHistogram's equivalence ranges.
		if b.Count < 95 || b.Count > 105 {
			t.Errorf("bucket %d (up to %.1f ms) has %d, want about 100", i, b.UpToMs, b.Count)
		}
	}
	if sum != 1000 {
		t.Errorf("buckets hold %d values, want 1000", sum)
	}
	if last := s.Histogram[HistogramBuckets-1].UpToMs; last != s.MaxMs {
		t.Errorf("last bucket ends at %v, want max %v", last, s.MaxMs)
	}
}

func TestThroughputAndErrors(t *testing.T) {
	r := NewRecorder("x")
	base := time.Unix(1000, 0)
	// 10 successes and 2 failures spread over exactly 2 seconds.
	for i := range 10 {
		st := base.Add(time.Duration(i) * 100 * time.Millisecond)
		_ = r.Record(st, st.Add(time.Millisecond), nil)
	}
	_ = r.Record(base.Add(time.Second), base.Add(2*time.Second), errors.New("boom"))
	_ = r.Record(base.Add(time.Second), base.Add(1500*time.Millisecond), errors.New("boom"))
	s := r.Summary()
	if s.Requests != 12 || s.Successes != 10 || s.Errors != 2 {
		t.Fatalf("counts = %d/%d/%d, want 12/10/2", s.Requests, s.Successes, s.Errors)
	}
	if s.DurationSeconds != 2 || s.Throughput != 5 {
		t.Errorf("duration %v throughput %v, want 2 and 5", s.DurationSeconds, s.Throughput)
	}
	if s.ErrorMessages["boom"] != 2 {
		t.Errorf("error messages = %v", s.ErrorMessages)
	}
	near(t, "p99 ignores failures", s.P99Ms, 1)
}

func TestOutOfRangeIsClampedAndReported(t *testing.T) {
	r := NewRecorder("x")
	if err := r.RecordLatency(MaxLatency + time.Hour); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("err = %v, want ErrOutOfRange", err)
	}
	if err := r.RecordLatency(100 * time.Nanosecond); err != nil {
		t.Errorf("sub-microsecond latency: %v", err)
	}
	if s := r.Summary(); s.Successes != 2 {
		t.Errorf("successes = %d, want 2", s.Successes)
	}
}

func TestEmptySummary(t *testing.T) {
	s := NewRecorder("none").Summary()
	if s.Requests != 0 || s.Throughput != 0 || s.Histogram == nil || s.Percentiles == nil {
		t.Errorf("empty summary = %+v", s)
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	out := Output{Workload: "put", Settings: map[string]string{"clients": "1"},
		Results: []Summary{uniform(t, 100).Summary()}}
	if err := WriteJSON(&buf, out); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	for _, k := range []string{"workload", "settings", "results"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("missing top-level %q", k)
		}
	}
	res := doc["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "requests", "successes", "errors", "duration_seconds",
		"throughput_per_second", "avg_ms", "min_ms", "max_ms", "stddev_ms", "p50_ms", "p90_ms",
		"p99_ms", "p99_9_ms", "percentiles", "histogram"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	b := res["histogram"].([]any)[0].(map[string]any)
	if _, ok := b["up_to_ms"]; !ok {
		t.Errorf("histogram bucket lacks up_to_ms: %v", b)
	}
	var back Output
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Results[0].Requests != 100 {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestTextOutput(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, Output{Workload: "put", Results: []Summary{uniform(t, 100).Summary()}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Workload: put", "Throughput:", "p50 / p90 / p99 / p99.9:", "Latency histogram", "99.9% in"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, buf.String())
		}
	}
}
