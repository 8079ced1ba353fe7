package tenantprom_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenantprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDashboardNamesRealFamilies: every metric the Grafana dashboard in
// docs/ queries is one the collector exports, and every family the
// collector exports is on the dashboard.
func TestDashboardNamesRealFamilies(t *testing.T) {
	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &dash))

	m, err := mongotenant.New("mongodb://127.0.0.1:1/", mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(0))
	require.NoError(t, err)
	defer m.Close(context.Background())
	l, err := m.Acquire(context.Background(), "acme")
	require.NoError(t, err)
	l.Release()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(tenantprom.NewCollector(m, tenantprom.WithTiers(true))))
	fams, err := reg.Gather()
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}

	used := map[string]bool{}
	name := regexp.MustCompile(`mongotenant_[a-z_]+`)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				assert.True(t, exported[n], "panel %q queries %s, which the collector does not export", p.Title, n)
				used[n] = true
			}
		}
	}
	for n := range exported {
		assert.True(t, used[n], "%s is on no panel", n)
	}
}
