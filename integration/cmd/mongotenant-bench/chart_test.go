package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteCharts: a chart per scenario with latency percentiles or
// ratios, none for the others, each a well-formed SVG naming its variants.
func TestWriteCharts(t *testing.T) {
	dir := t.TempDir()
	r := &Report{Results: []Result{
		{Scenario: "strategies", Variant: "dedicated", Metrics: []Metric{{"p50", 1.5, "ms"}, {"p99", 4, "ms"}, {"clients", 10, ""}}},
		{Scenario: "strategies", Variant: "shared", Metrics: []Metric{{"p50", 1.2, "ms"}, {"p99", 9, "ms"}, {"clients", 1, ""}}},
		{Scenario: "churn-throughput", Variant: "dedicated+recycling", Metrics: []Metric{{"throughput", 900, "ops/s"}, {"vs plain client", 0.85, "×"}}},
		{Scenario: "churn-throughput", Variant: "grouped", Metrics: []Metric{{"throughput", 1000, "ops/s"}, {"vs plain client", 0.91, "×"}}},
		{Scenario: "churn", Variant: "10k tenants", Metrics: []Metric{{"failed", 0, ""}}},
	}}
	files, err := writeCharts(r, filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "bench-strategies.svg"), filepath.Join(dir, "bench-churn-throughput.svg")}
	if strings.Join(files, ",") != strings.Join(want, ",") {
		t.Fatalf("files %v, want %v", files, want)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		svg := string(b)
		if !strings.HasPrefix(svg, "<?xml") || !strings.Contains(svg, "</svg>") {
			t.Errorf("%s is not an SVG", f)
		}
	}
	b, _ := os.ReadFile(want[0])
	for _, s := range []string{"dedicated", "shared", "p99", "latency percentiles"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("the strategies chart lacks %q", s)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bench-churn.svg")); !os.IsNotExist(err) {
		t.Error("a chart for a scenario with nothing to draw")
	}
}
