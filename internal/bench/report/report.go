// Package report records request latencies of a benchmark run and summarises them as
// throughput, average and percentile latencies and a latency histogram, as text or JSON.
//
// It owns the latency bookkeeping of the bench tool (an HdrHistogram per series) and must not
// touch the network or any server: workloads time their requests and hand the figures here.
package report

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ErrOutOfRange is returned by Record for a latency outside the histogram's trackable range
// (1µs to MaxLatency); such a sample is counted as the nearest bound instead of being dropped.
var ErrOutOfRange = errors.New("report: latency outside the trackable range")

const (
	// MinLatency and MaxLatency bound what a Recorder can tell apart; latencies are kept
	// in microseconds with three significant digits (0.1% relative error).
	MinLatency = time.Microsecond
	MaxLatency = 10 * time.Minute
	sigFigs    = 3
	// maxErrorKinds caps how many distinct error messages a Recorder keeps.
	maxErrorKinds = 20
)

// Recorder collects the outcomes of one series of requests (for example "put", or the
// "read" half of txn-mixed). It is safe for concurrent use.
type Recorder struct {
	name string

	mu     sync.Mutex
	hist   *hdrhistogram.Histogram
	errs   int64
	errMsg map[string]int64
	first  time.Time // earliest request start
	last   time.Time // latest request end
}

// NewRecorder returns an empty Recorder for the named series.
func NewRecorder(name string) *Recorder {
	return &Recorder{
		name:   name,
		hist:   hdrhistogram.New(int64(MinLatency/time.Microsecond), int64(MaxLatency/time.Microsecond), sigFigs),
		errMsg: map[string]int64{},
	}
}

// Name is the series name given to NewRecorder.
func (r *Recorder) Name() string { return r.name }

// Record adds one request that started at start and ended at end. A failed request (err != nil)
// counts toward Errors and the wall-clock window but not toward the latency figures, as in
// etcd's benchmark tool.
func (r *Recorder) Record(start, end time.Time, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first.IsZero() || start.Before(r.first) {
		r.first = start
	}
	if end.After(r.last) {
		r.last = end
	}
	if err != nil {
		r.errs++
		msg := err.Error()
		if _, ok := r.errMsg[msg]; ok || len(r.errMsg) < maxErrorKinds {
			r.errMsg[msg]++
		}
		return nil
	}
	return r.recordLocked(end.Sub(start))
}

// AddErrors counts n failed requests with the message msg and no timing (for example
// watch events that never arrived).
func (r *Recorder) AddErrors(n int64, msg string) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs += n
	if _, ok := r.errMsg[msg]; ok || len(r.errMsg) < maxErrorKinds {
		r.errMsg[msg] += n
	}
}

// RecordLatency adds one successful request of latency d without a wall-clock window of its
// own; use it for derived latencies such as watch delivery, with SetWindow for throughput.
func (r *Recorder) RecordLatency(d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recordLocked(d)
}

// RecordLatencies is RecordLatency for each of ds, under one lock; the first error is
// returned (every latency is recorded).
func (r *Recorder) RecordLatencies(ds []time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, d := range ds {
		if err := r.recordLocked(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// SetWindow sets the wall-clock window that throughput is computed over.
func (r *Recorder) SetWindow(first, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first, r.last = first, last
}

func (r *Recorder) recordLocked(d time.Duration) error {
	us := int64(d / time.Microsecond)
	var err error
	switch {
	case us < 1:
		us = 1
		if d < 0 {
			err = ErrOutOfRange
		}
	case d > MaxLatency:
		us = int64(MaxLatency / time.Microsecond)
		err = ErrOutOfRange
	}
	if rerr := r.hist.RecordValue(us); rerr != nil {
		return fmt.Errorf("%w: %v", ErrOutOfRange, rerr)
	}
	return err
}

// Percentile is one point of the latency distribution.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// Bucket is one bar of the latency histogram: Count successful requests whose latency was
// at most UpToMs and above the previous bucket's bound.
type Bucket struct {
	UpToMs float64 `json:"up_to_ms"`
	Count  int64   `json:"count"`
}

// Summary is the outcome of one series, in the shape printed by --json.
type Summary struct {
	Name            string           `json:"name"`
	Requests        int64            `json:"requests"`
	Successes       int64            `json:"successes"`
	Errors          int64            `json:"errors"`
	DurationSeconds float64          `json:"duration_seconds"`
	Throughput      float64          `json:"throughput_per_second"`
	AvgMs           float64          `json:"avg_ms"`
	MinMs           float64          `json:"min_ms"`
	MaxMs           float64          `json:"max_ms"`
	StddevMs        float64          `json:"stddev_ms"`
	P50Ms           float64          `json:"p50_ms"`
	P90Ms           float64          `json:"p90_ms"`
	P99Ms           float64          `json:"p99_ms"`
	P999Ms          float64          `json:"p99_9_ms"`
	Percentiles     []Percentile     `json:"percentiles"`
	Histogram       []Bucket         `json:"histogram"`
	ErrorMessages   map[string]int64 `json:"error_messages,omitempty"`
}

// ReportedPercentiles are the percentiles listed in a Summary, as etcd's tool lists them
// plus 99.9.
var ReportedPercentiles = []float64{10, 25, 50, 75, 90, 95, 99, 99.9}

// HistogramBuckets is the number of bars in a Summary's histogram.
const HistogramBuckets = 10

func usToMs(us int64) float64    { return float64(us) / 1000 }
func usToMsF(us float64) float64 { return us / 1000 }

// Summary computes the figures of everything recorded so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hist
	s := Summary{
		Name:      r.name,
		Successes: h.TotalCount(),
		Errors:    r.errs,
	}
	s.Requests = s.Successes + s.Errors
	if !r.first.IsZero() && r.last.After(r.first) {
		s.DurationSeconds = r.last.Sub(r.first).Seconds()
		s.Throughput = float64(s.Successes) / s.DurationSeconds
	}
	if len(r.errMsg) > 0 {
		s.ErrorMessages = make(map[string]int64, len(r.errMsg))
		for k, v := range r.errMsg {
			s.ErrorMessages[k] = v
		}
	}
	if s.Successes == 0 {
		s.Percentiles = []Percentile{}
		s.Histogram = []Bucket{}
		return s
	}
	s.AvgMs = usToMsF(h.Mean())
	s.MinMs = usToMs(h.Min())
	s.MaxMs = usToMs(h.Max())
	s.StddevMs = usToMsF(h.StdDev())
	s.P50Ms = usToMs(h.ValueAtQuantile(50))
	s.P90Ms = usToMs(h.ValueAtQuantile(90))
	s.P99Ms = usToMs(h.ValueAtQuantile(99))
	s.P999Ms = usToMs(h.ValueAtQuantile(99.9))
	for _, p := range ReportedPercentiles {
		s.Percentiles = append(s.Percentiles, Percentile{Percentile: p, Ms: usToMs(h.ValueAtQuantile(p))})
	}
	s.Histogram = buckets(h, HistogramBuckets)
	return s
}

// buckets folds the HdrHistogram's fine-grained distribution into n equal-width bars
// between the smallest and the largest recorded value, like etcd's tool prints.
func buckets(h *hdrhistogram.Histogram, n int) []Bucket {
	lo, hi := h.Min(), h.Max()
	width := float64(hi-lo) / float64(n)
	out := make([]Bucket, n)
	for i := range out {
		out[i].UpToMs = usToMsF(float64(lo) + width*float64(i+1))
	}
	out[n-1].UpToMs = usToMs(hi)
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		// A bar covers equivalent values [From, To]; place it by its lowest value,
		// clamped to the recorded range.
		x := min(max(bar.From, lo), hi)
		i := n - 1
		if width > 0 {
			i = int(math.Ceil(float64(x-lo)/width)) - 1
			if i < 0 {
				i = 0
			}
			if i >= n {
				i = n - 1
			}
		}
		out[i].Count += bar.Count
	}
	return out
}

// SortSummaries orders summaries by name, for stable output.
func SortSummaries(s []Summary) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}
