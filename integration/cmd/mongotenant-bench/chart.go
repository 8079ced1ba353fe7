package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writeCharts writes one SVG per scenario next to jsonPath
// (bench.json -> bench-<scenario>.svg): a panel of latency percentiles
// per variant, and a panel of throughput against a plain client where
// the scenario measures one. Scenarios with neither get no chart. It
// returns the files written.
func writeCharts(r *Report, jsonPath string) ([]string, error) {
	base := strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath))
	var order []string
	byScenario := map[string][]Result{}
	for _, res := range r.Results {
		if _, ok := byScenario[res.Scenario]; !ok {
			order = append(order, res.Scenario)
		}
		byScenario[res.Scenario] = append(byScenario[res.Scenario], res)
	}
	var files []string
	for _, name := range order {
		var panels []*plot.Plot
		for _, kind := range []chartKind{latencyChart, ratioChart} {
			p, err := barPanel(name, byScenario[name], kind)
			if err != nil {
				return files, fmt.Errorf("chart %s: %w", name, err)
			}
			if p != nil {
				panels = append(panels, p)
			}
		}
		if len(panels) == 0 {
			continue
		}
		file := base + "-" + name + ".svg"
		if err := savePanels(panels, file); err != nil {
			return files, err
		}
		files = append(files, file)
	}
	return files, nil
}

// chartKind picks the metrics of one panel.
type chartKind struct {
	title, axis string
	takes       func(Metric) bool
	reference   float64 // a horizontal line at this value, if > 0
}

var (
	latencyChart = chartKind{
		title: "latency percentiles", axis: "ms",
		takes: func(m Metric) bool {
			return m.Unit == "ms" && (strings.Contains(m.Name, "p50") || strings.Contains(m.Name, "p95") || strings.Contains(m.Name, "p99"))
		},
	}
	ratioChart = chartKind{
		title: "ratios (1 is parity: against a plain client, or a quiet baseline)", axis: "×",
		takes:     func(m Metric) bool { return m.Unit == "×" || m.Unit == "x" },
		reference: 1,
	}
)

// barPanel is a grouped bar chart: a group per variant, a bar per metric
// the kind takes. It returns nil if no result has such a metric.
func barPanel(scenario string, results []Result, kind chartKind) (*plot.Plot, error) {
	var names, variants []string
	for _, res := range results {
		took := false
		for _, m := range res.Metrics {
			if kind.takes(m) {
				took = true
				if !slices.Contains(names, m.Name) {
					names = append(names, m.Name)
				}
			}
		}
		if took {
			variants = append(variants, res.Variant)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = scenario + ": " + kind.title
	p.Y.Label.Text = kind.axis
	p.Y.Min = 0
	p.Legend.Top = true
	width := vg.Points(min(60, 300/float64(len(names)*len(variants))+4))
	top := kind.reference
	for i, name := range names {
		values := make(plotter.Values, 0, len(variants))
		for _, res := range results {
			if !slices.Contains(variants, res.Variant) {
				continue
			}
			v := 0.0
			for _, m := range res.Metrics {
				if m.Name == name {
					v = m.Value
				}
			}
			values = append(values, v)
			top = max(top, v)
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			return nil, err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = width * vg.Length(float64(i)-float64(len(names)-1)/2)
		p.Add(bars)
		p.Legend.Add(name, bars)
	}
	if kind.reference > 0 {
		line := plotter.NewFunction(func(float64) float64 { return kind.reference })
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(line)
	}
	p.NominalX(variants...)
	p.X.Tick.Label.Rotation = math.Pi / 9 // variant names are long
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Y.Max = top * (1.1 + 0.07*float64(len(names))) // room for the legend above the bars
	return p, nil
}

// savePanels draws panels one above the other into an SVG file.
func savePanels(panels []*plot.Plot, file string) error {
	const w, h = 10 * vg.Inch, 5 * vg.Inch
	c := vgsvg.New(w, h*vg.Length(len(panels)))
	dc := draw.New(c)
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadY: vg.Points(12)}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
