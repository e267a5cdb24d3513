package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

type rowKey struct {
	members int
	metric  string
}

// results holds every per-round figure of both systems, and what failed.
type results struct {
	a, b     string
	order    []rowKey
	vals     map[rowKey]map[string]map[int]float64 // system label -> round -> value
	failures []string
}

func newResults(a, b string) *results {
	return &results{a: a, b: b, vals: map[rowKey]map[string]map[int]float64{}}
}

// add records the figures that system sys produced in round rnd of the n-member runs.
func (r *results) add(members int, sys string, rnd int, figs []figure) {
	for _, f := range figs {
		k := rowKey{members, f.Metric}
		m, ok := r.vals[k]
		if !ok {
			m = map[string]map[int]float64{}
			r.vals[k] = m
			r.order = append(r.order, k)
		}
		if m[sys] == nil {
			m[sys] = map[int]float64{}
		}
		m[sys][rnd] = f.Value
	}
}

// fail records a measurement that could not be taken, once per distinct message.
func (r *results) fail(msg string) {
	for _, f := range r.failures {
		if f == msg {
			return
		}
	}
	r.failures = append(r.failures, msg)
}

func values(m map[int]float64) []float64 {
	out := make([]float64, 0, len(m))
	for _, rnd := range sortedRounds(m) {
		out = append(out, m[rnd])
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minMax(v []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// num prints a figure with three significant digits.
func num(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "n/a"
	case math.Abs(x) >= 1000:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.1f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3f", x)
	}
}

func cell(v []float64) string {
	if len(v) == 0 {
		return "n/a"
	}
	lo, hi := minMax(v)
	if len(v) == 1 {
		return num(v[0])
	}
	return fmt.Sprintf("%s (%s–%s)", num(median(v)), num(lo), num(hi))
}

// ratios pairs the rounds of A and B (both ran in the same round) that have both figures.
func ratios(a, b map[int]float64) []float64 {
	var out []float64
	for _, rnd := range sortedRounds(a) {
		if vb, ok := b[rnd]; ok && a[rnd] != 0 {
			out = append(out, vb/a[rnd])
		}
	}
	return out
}

func sortedRounds(m map[int]float64) []int {
	var rounds []int
	for rnd := range m {
		rounds = append(rounds, rnd)
	}
	sort.Ints(rounds)
	return rounds
}

func ratioCell(r []float64) string {
	if len(r) == 0 {
		return "n/a"
	}
	lo, hi := minMax(r)
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(r), lo, hi)
}

// table renders one markdown table per cluster size: each figure's median over the rounds
// with its min–max, for A and B, and the median of the per-round ratios B/A with its min–max.
func (r *results) table() string {
	var b strings.Builder
	last := 0
	for _, k := range r.order {
		if k.members != last {
			last = k.members
			word := "members"
			if k.members == 1 {
				word = "member"
			}
			fmt.Fprintf(&b, "\n#### %d %s\n\n", k.members, word)
			fmt.Fprintf(&b, "| workload | figure | %s | %s | %s/%s |\n|---|---|---|---|---|\n", r.a, r.b, r.b, r.a)
		}
		what, unit, _ := strings.Cut(k.metric, " | ")
		va, vb := r.vals[k][r.a], r.vals[k][r.b]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", what, unit, cell(values(va)), cell(values(vb)), ratioCell(ratios(va, vb)))
	}
	b.WriteString("\nCells: median over rounds (min–max). Ratio: median of per-round B/A (min–max); " +
		"for ops/s and keys/s above 1 favours B, for ms, MiB and s below 1 favours B.\n")
	if len(r.failures) > 0 {
		b.WriteString("\nNot measured (n/a above):\n\n")
		for _, f := range r.failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	return b.String()
}

// raw is every per-round value, for --raw.
func (r *results) raw() any {
	type row struct {
		Members int                        `json:"members"`
		Metric  string                     `json:"metric"`
		Values  map[string]map[int]float64 `json:"values_by_round"`
	}
	var out []row
	for _, k := range r.order {
		out = append(out, row{k.members, k.metric, r.vals[k]})
	}
	return out
}
