package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Output is the document printed by --json: the workload, the settings it ran with, and one
// Summary per series (for example txn-mixed has "txn-mixed-read" and "txn-mixed-write").
type Output struct {
	Workload string            `json:"workload"`
	Settings map[string]string `json:"settings"`
	Results  []Summary         `json:"results"`
}

// WriteJSON writes o as indented JSON followed by a newline.
func WriteJSON(w io.Writer, o Output) error {
	if o.Settings == nil {
		o.Settings = map[string]string{}
	}
	if o.Results == nil {
		o.Results = []Summary{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(o)
}

// WriteText writes o for a person: per series the totals, latency figures, a histogram drawn
// with bars, and the percentile list.
func WriteText(w io.Writer, o Output) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Workload: %s\n", o.Workload)
	if len(o.Settings) > 0 {
		keys := make([]string, 0, len(o.Settings))
		for k := range o.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+o.Settings[k])
		}
		fmt.Fprintf(&b, "Settings: %s\n", strings.Join(parts, " "))
	}
	for _, s := range o.Results {
		b.WriteString("\n")
		writeSummary(&b, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSummary(b *strings.Builder, s Summary) {
	fmt.Fprintf(b, "Summary of %s:\n", s.Name)
	fmt.Fprintf(b, "  Requests:\t%d (%d errors)\n", s.Requests, s.Errors)
	fmt.Fprintf(b, "  Total:\t%.4f secs.\n", s.DurationSeconds)
	fmt.Fprintf(b, "  Throughput:\t%.1f per second\n", s.Throughput)
	fmt.Fprintf(b, "  Average:\t%.3f ms\n", s.AvgMs)
	fmt.Fprintf(b, "  Fastest:\t%.3f ms\n", s.MinMs)
	fmt.Fprintf(b, "  Slowest:\t%.3f ms\n", s.MaxMs)
	fmt.Fprintf(b, "  Stddev:\t%.3f ms\n", s.StddevMs)
	fmt.Fprintf(b, "  p50 / p90 / p99 / p99.9:\t%.3f / %.3f / %.3f / %.3f ms\n", s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms)
	if len(s.Histogram) > 0 {
		b.WriteString("\nLatency histogram (ms):\n")
		var most int64
		for _, h := range s.Histogram {
			most = max(most, h.Count)
		}
		for _, h := range s.Histogram {
			bar := 0
			if most > 0 {
				bar = int(h.Count * 40 / most)
			}
			fmt.Fprintf(b, "  %10.3f [%d]\t|%s\n", h.UpToMs, h.Count, strings.Repeat("∎", bar))
		}
	}
	if len(s.Percentiles) > 0 {
		b.WriteString("\nLatency distribution:\n")
		for _, p := range s.Percentiles {
			fmt.Fprintf(b, "  %g%% in %.3f ms.\n", p.Percentile, p.Ms)
		}
	}
	if len(s.ErrorMessages) > 0 {
		b.WriteString("\nErrors:\n")
		msgs := make([]string, 0, len(s.ErrorMessages))
		for m := range s.ErrorMessages {
			msgs = append(msgs, m)
		}
		sort.Strings(msgs)
		for _, m := range msgs {
			fmt.Fprintf(b, "  [%d]\t%s\n", s.ErrorMessages[m], m)
		}
	}
}
