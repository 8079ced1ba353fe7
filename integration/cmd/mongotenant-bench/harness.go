package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// A scenario is one measurement. Each lives in a file of its name and
// registers itself in init.
type scenario struct {
	name  string
	about string
	run   func(ctx context.Context, env *Env) ([]Result, error)
}

var scenarios []scenario

func register(s scenario) { scenarios = append(scenarios, s) }

// Env is what a scenario gets: the server and its time budget.
type Env struct {
	URI      string        // the server; scenarios may put a mongotest.Proxy in front of it
	Duration time.Duration // time budget of each timed phase
	Progress func(format string, args ...any)
}

// Report is the whole run, as written to JSON.
type Report struct {
	Started  time.Time `json:"started"`
	Backend  string    `json:"backend"`
	Machine  string    `json:"machine"`
	Duration string    `json:"phase_duration"`
	Results  []Result  `json:"results"`
}

// Result is one row: a scenario's variant and its figures, in order.
type Result struct {
	Scenario string   `json:"scenario"`
	Variant  string   `json:"variant"`
	Metrics  []Metric `json:"metrics"`
	Notes    []string `json:"notes,omitempty"`
}

// Metric is one figure.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Add appends a metric and returns r for chaining.
func (r *Result) Add(name string, value float64, unit string) *Result {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit})
	return r
}

// Latencies collects operation durations; not safe for concurrent use
// (give each goroutine its own and Merge them).
type Latencies []time.Duration

// Merge appends others.
func (l *Latencies) Merge(others ...Latencies) {
	for _, o := range others {
		*l = append(*l, o...)
	}
}

// Percentile returns the p-th percentile (0-100), nearest rank.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms converts a duration to float milliseconds for a Metric.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writeMarkdown prints one table per scenario (a new one when the columns
// change), each followed by its rows' notes.
func writeMarkdown(w io.Writer, r *Report) {
	fmt.Fprintf(w, "Backend: %s. Machine: %s. Phase: %s.\n", r.Backend, r.Machine, r.Duration)
	var lastScenario, lastHeader string
	var notes []string
	flush := func() {
		for _, n := range notes {
			fmt.Fprintf(w, "\n- %s\n", n)
		}
		notes = nil
	}
	for _, res := range r.Results {
		if res.Scenario != lastScenario {
			flush()
			lastScenario, lastHeader = res.Scenario, ""
			fmt.Fprintf(w, "\n### %s\n", res.Scenario)
		}
		var header strings.Builder
		header.WriteString("| variant |")
		for _, m := range res.Metrics {
			fmt.Fprintf(&header, " %s", m.Name)
			if m.Unit != "" {
				fmt.Fprintf(&header, " (%s)", m.Unit)
			}
			header.WriteString(" |")
		}
		if h := header.String(); h != lastHeader {
			flush()
			lastHeader = h
			fmt.Fprintf(w, "\n%s\n|---|%s\n", h, strings.Repeat("---|", len(res.Metrics)))
		}
		fmt.Fprintf(w, "| %s |", res.Variant)
		for _, m := range res.Metrics {
			fmt.Fprintf(w, " %s |", format(m.Value))
		}
		fmt.Fprintln(w)
		notes = append(notes, res.Notes...)
	}
	flush()
}

func format(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
