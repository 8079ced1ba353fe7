package tenantprom_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenantprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape GETs url and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the value of the sample of family name whose labels
// include every label=value of match, summed over the matching samples.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, match ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "family %s", name)
	var total float64
next:
	for _, m := range f.Metric {
		for i := 0; i < len(match); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == match[i] && l.GetValue() == match[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		}
	}
	return total
}

// TestScrape serves /metrics from a real HTTP server, scrapes it while
// traffic runs, then checks every family against Stats once it stops.
func TestScrape(t *testing.T) {
	m, err := mongotenant.New("mongodb://127.0.0.1:1/", mongotenant.WithMaxClients(4), mongotenant.WithMaxLeases(1),
		mongotenant.WithStrategy(mongotenant.Grouped(3)),
		mongotenant.WithTiers(func(context.Context, string) (string, error) { return "premium", nil }, nil),
		mongotenant.WithClientOptions(options.Client().SetServerSelectionTimeout(100*time.Millisecond)))
	require.NoError(t, err)
	defer m.Close(context.Background())
	reg := prometheus.NewPedanticRegistry()
	c := tenantprom.NewCollector(m, tenantprom.WithTiers(true), tenantprom.WithConstLabels(prometheus.Labels{"manager": "test"}))
	require.NoError(t, reg.Register(c))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.PanicOnError}))
	defer srv.Close()

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("tenant-%d", (i*5+w)%20)
				if i%40 == 0 {
					id = "bad id"
				}
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				l, err := m.Acquire(ctx, id)
				cancel()
				if err == nil {
					l.Release()
				}
			}
		})
	}
	for range 5 {
		fams := scrape(t, srv.URL)
		for _, name := range []string{"mongotenant_acquisitions_total", "mongotenant_clients", "mongotenant_connections", "mongotenant_tier_tenants"} {
			assert.Contains(t, fams, name, "scraped while traffic runs")
		}
	}
	stop.Store(true)
	wg.Wait()

	// Evicted clients are disconnected in the background: compare a scrape
	// with Stats taken before and after it, once they agree.
	var s mongotenant.Stats
	var fams map[string]*dto.MetricFamily
	for i := 0; ; i++ {
		before := m.Stats()
		fams = scrape(t, srv.URL)
		if s = m.Stats(); s == before {
			break
		}
		require.Less(t, i, 1000, "Stats never settled")
		time.Sleep(time.Millisecond)
	}
	check := func(want any, name string, match ...string) {
		t.Helper()
		assert.EqualValues(t, want, sample(t, fams, name, match...), "%s %v", name, match)
	}
	check(s.Hits, "mongotenant_acquisitions_total", "outcome", "hit")
	check(s.Misses, "mongotenant_acquisitions_total", "outcome", "miss")
	check(s.Refused, "mongotenant_acquisitions_total", "outcome", "refused")
	check(s.Refused, "mongotenant_acquire_refusals_total")
	check(s.RefusedInvalid, "mongotenant_acquire_refusals_total", "reason", "invalid")
	check(s.Waits, "mongotenant_acquire_waits_total")
	check(s.WaitDuration.Seconds(), "mongotenant_acquire_wait_seconds_total")
	check(s.Evicted, "mongotenant_evictions_total")
	check(s.EvictedLRU, "mongotenant_evictions_total", "cause", "lru")
	check(s.Created, "mongotenant_clients_created_total")
	check(s.Recycled, "mongotenant_clients_recycled_total")
	check(s.Disconnects, "mongotenant_clients_disconnects_total")
	check(s.Clients, "mongotenant_clients", "state", "cached")
	check(s.Tenants, "mongotenant_tenants", "manager", "test")
	check(s.Leases, "mongotenant_leases")
	check(s.MaxClients, "mongotenant_max_clients")
	check(s.Tenants, "mongotenant_tier_tenants", "tier", "premium")
	check(s.Clients*int(mongotenant.DefaultTiers()["premium"].PoolSize), "mongotenant_connections_max")
	assert.NotZero(t, s.RefusedInvalid)
	for name, f := range fams {
		assert.NotContains(t, f.String(), "tenant-", "%s has a tenant ID", name)
	}

	// The collector is consistent: Describe matches Collect.
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestFairSharingFamilies: with fair sharing, each shared group reports
// its turns used and free and its waiting acquisitions, as GroupStats does.
func TestFairSharingFamilies(t *testing.T) {
	m, err := mongotenant.New("mongodb://127.0.0.1:1/", mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithFairSharing(2), mongotenant.WithFairReserve(1, time.Hour))
	require.NoError(t, err)
	defer m.Close(context.Background())
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(tenantprom.NewCollector(m)))
	gather := func() map[string]*dto.MetricFamily {
		fams, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			out[f.GetName()] = f
		}
		return out
	}

	l1, err := m.Acquire(context.Background(), "a")
	require.NoError(t, err)
	l2, err := m.Acquire(context.Background(), "b")
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		l, err := m.Acquire(context.Background(), "b")
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	for m.GroupStats()[0].FairWaiting != 1 {
		time.Sleep(time.Millisecond)
	}
	fams := gather()
	assert.EqualValues(t, 2, sample(t, fams, "mongotenant_fair_turns", "group", "shared", "state", "used"))
	assert.EqualValues(t, 0, sample(t, fams, "mongotenant_fair_turns", "group", "shared", "state", "kept"))
	assert.EqualValues(t, 0, sample(t, fams, "mongotenant_fair_turns", "group", "shared", "state", "free"))
	assert.EqualValues(t, 1, sample(t, fams, "mongotenant_fair_waiting", "group", "shared"))

	// a leaves: its slot is kept for it, and b, holding a lease, waits on.
	l1.Release()
	fams = gather()
	assert.EqualValues(t, 1, sample(t, fams, "mongotenant_fair_turns", "state", "used"))
	assert.EqualValues(t, 1, sample(t, fams, "mongotenant_fair_turns", "state", "kept"))
	assert.EqualValues(t, 0, sample(t, fams, "mongotenant_fair_turns", "state", "free"))
	assert.EqualValues(t, 1, sample(t, fams, "mongotenant_fair_waiting"))

	// b's lease ends: two free, one kept, and b's caller is served. No
	// caller waits then, so nothing is kept.
	l2.Release()
	require.NoError(t, <-got)
	fams = gather()
	assert.EqualValues(t, 0, sample(t, fams, "mongotenant_fair_turns", "state", "used"))
	assert.EqualValues(t, 0, sample(t, fams, "mongotenant_fair_turns", "state", "kept"))
	assert.EqualValues(t, 2, sample(t, fams, "mongotenant_fair_turns", "state", "free"))
	assert.EqualValues(t, 0, sample(t, fams, "mongotenant_fair_waiting"))
}
