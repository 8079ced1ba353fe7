// Command mongotenant-bench measures the Manager against a real server: its
// overhead over a plain client, the strategies under injected latency, a
// noisy neighbour, tenant churn and cold starts. Each scenario is bounded in
// time and sends traffic only to the server it is given.
//
//	go run ./integration/cmd/mongotenant-bench -scenario all -json bench.json
//
// With -json, each scenario that measures latency percentiles or
// throughput against a plain client also gets a chart, bench-<scenario>.svg.
//
// It uses MONGODB_URI if set, and otherwise starts an embedded server.
// Progress goes to stderr; a markdown table to stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/mongotenant/mongotenant/mongotest"
)

func main() {
	names := make([]string, 0, len(scenarios))
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	which := flag.String("scenario", "all", "comma-separated scenarios: all, or "+strings.Join(names, ", "))
	duration := flag.Duration("duration", 10*time.Second, "time budget of each timed phase")
	jsonPath := flag.String("json", "", "also write the results as JSON to this file, and an SVG chart per scenario next to it")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	replot := flag.String("replot", "", "run nothing: draw the charts of the JSON report in this file again, next to it")
	flag.Parse()

	if *replot != "" {
		if err := replotFile(*replot); err != nil {
			fmt.Fprintln(os.Stderr, "mongotenant-bench:", err)
			os.Exit(1)
		}
		return
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "mongotenant-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*which, *duration, *jsonPath); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "mongotenant-bench:", err)
		os.Exit(1)
	}
}

func run(which string, duration time.Duration, jsonPath string) error {
	selected, err := choose(which)
	if err != nil {
		return err
	}
	ctx := context.Background()
	report := Report{
		Started:  time.Now().UTC(),
		Machine:  fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Duration: duration.String(),
	}
	for _, s := range selected {
		results, backend, err := runScenario(ctx, s, duration)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		report.Backend = backend
		report.Results = append(report.Results, results...)
	}
	writeMarkdown(os.Stdout, &report)
	if jsonPath != "" {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
		files, err := writeCharts(&report, jsonPath)
		for _, f := range files {
			fmt.Fprintf(os.Stderr, "chart: %s\n", f)
		}
		return err
	}
	return nil
}

// runScenario runs s against a server of its own: an embedded one starts
// afresh for each scenario, so that what one scenario leaves on the server
// (2,000 seeded databases, say) does not weigh on the next.
func runScenario(ctx context.Context, s scenario, duration time.Duration) ([]Result, string, error) {
	srv, err := mongotest.Start(ctx)
	if err != nil {
		return nil, "", err
	}
	defer srv.Close()
	env := &Env{URI: srv.URI(), Duration: duration}
	env.Progress = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", s.name, fmt.Sprintf(format, args...))
	}
	env.Progress("start: %s", s.about)
	start := time.Now()
	results, err := s.run(ctx, env)
	if err == nil {
		env.Progress("done in %v", time.Since(start).Round(time.Millisecond))
	}
	return results, srv.Backend(), err
}

// replotFile draws the charts of a JSON report written by -json.
func replotFile(jsonPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var report Report
	if err := json.Unmarshal(b, &report); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	files, err := writeCharts(&report, jsonPath)
	for _, f := range files {
		fmt.Fprintf(os.Stderr, "chart: %s\n", f)
	}
	return err
}

func choose(which string) ([]scenario, error) {
	if which == "all" {
		return scenarios, nil
	}
	var out []scenario
	for _, name := range strings.Split(which, ",") {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
		out = append(out, scenarios[i])
	}
	return out, nil
}
