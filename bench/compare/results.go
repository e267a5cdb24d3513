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

// results holds every per-round figure of both systems.
type results struct {
	a, b  string
	order []rowKey
	vals  map[rowKey]map[string][]float64 // system label -> one value per round
}

func newResults(a, b string) *results {
	return &results{a: a, b: b, vals: map[rowKey]map[string][]float64{}}
}

func (r *results) add(members int, sys string, figs []figure) {
	for _, f := range figs {
		k := rowKey{members, f.Metric}
		m, ok := r.vals[k]
		if !ok {
			m = map[string][]float64{}
			r.vals[k] = m
			r.order = append(r.order, k)
		}
		m[sys] = append(m[sys], f.Value)
	}
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

// ratios pairs the rounds of A and B (round i of A ran just before round i of B).
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if a[i] != 0 {
			out = append(out, b[i]/a[i])
		}
	}
	return out
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
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", what, unit, cell(va), cell(vb), ratioCell(ratios(va, vb)))
	}
	b.WriteString("\nCells: median over rounds (min–max). Ratio: median of per-round B/A (min–max); " +
		"for ops/s and keys/s above 1 favours B, for ms, MiB and s below 1 favours B.\n")
	return b.String()
}

// raw is every per-round value, for --raw.
func (r *results) raw() any {
	type row struct {
		Members int                  `json:"members"`
		Metric  string               `json:"metric"`
		Values  map[string][]float64 `json:"values"`
	}
	var out []row
	for _, k := range r.order {
		out = append(out, row{k.members, k.metric, r.vals[k]})
	}
	return out
}
