package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/mongotenant/mongotenant/tenantotel"
	"github.com/mongotenant/mongotenant/tenantprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestObservabilityUnderLoad runs concurrent writes over 30 tenants with
// a cap of 8 clients (evictions, recycling, init runs) against the
// embedded server, with the OpenTelemetry instrumentation, the Prometheus
// collector behind a real /metrics endpoint scraped while traffic runs,
// command stats, and a user's command monitor of its own. Once traffic
// stops, every figure must match Stats and the other sources, and no
// tenant ID may appear in metrics or spans.
func TestObservabilityUnderLoad(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		assert.NoError(t, tp.Shutdown(context.Background()))
		assert.NoError(t, mp.Shutdown(context.Background()))
	})
	inst, err := tenantotel.New(tenantotel.WithTracerProvider(tp), tenantotel.WithMeterProvider(mp))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, inst.Close()) })

	var userCommands atomic.Int64 // the user's own monitor still sees every command
	userMonitor := &event.CommandMonitor{
		Succeeded: func(context.Context, *event.CommandSucceededEvent) { userCommands.Add(1) },
		Failed:    func(context.Context, *event.CommandFailedEvent) { userCommands.Add(1) },
	}
	var inits atomic.Int64
	m, _ := setup(t, patient, inst.Option(), mongotenant.WithMaxClients(8), mongotenant.WithCommandStats(time.Hour),
		mongotenant.WithClientOptions(options.Client().SetMonitor(userMonitor)),
		mongotenant.WithInit(func(ctx context.Context, _ string, db *mongo.Database) error {
			inits.Add(1)
			_, err := db.Collection("posts").InsertOne(ctx, bson.D{{Key: "kind", Value: "init"}})
			return err
		}))
	require.NoError(t, inst.Observe(m))

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(tenantprom.NewCollector(m)))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.PanicOnError}))
	t.Cleanup(srv.Close)

	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				id := fmt.Sprintf("obs-t%02d", (i*7+w*3)%30)
				err := m.Do(context.Background(), id, func(ctx context.Context, db *mongo.Database) error {
					_, err := db.Collection("posts").InsertOne(ctx, bson.D{{Key: "n", Value: i}})
					return err
				})
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	scrapes := 0
	for done := waitChan(&wg); ; scrapes++ {
		fams := scrape(t, srv.URL)
		assert.Contains(t, fams, "mongotenant_acquisitions_total")
		assert.Contains(t, fams, "mongotenant_connections")
		select {
		case <-done:
		default:
			continue
		}
		break
	}
	require.Zero(t, failed.Load(), "writes failed")
	t.Logf("%d scrapes during the load", scrapes)

	// Evicted clients are disconnected in the background, and a Disconnect
	// sends endSessions, a command: wait until none is left, then compare
	// each export with Stats taken before and after it, once they agree.
	waitFor(t, "evicted clients to be disconnected", func() bool { return m.Stats().Retiring == 0 })
	settled := func(export func()) mongotenant.Stats {
		for i := 0; ; i++ {
			before := m.Stats()
			export()
			if after := m.Stats(); after == before {
				return after
			}
			require.Less(t, i, 1000, "Stats never settled")
			time.Sleep(time.Millisecond)
		}
	}
	var ms map[string]metricdata.Metrics
	s := settled(func() { ms = collect(t, reader) })
	require.Equal(t, 0, s.Leases)
	assert.Positive(t, s.EvictedLRU)
	assert.Positive(t, s.Recycled)

	// OpenTelemetry metrics against Stats.
	otelCheck := func(want any, name string, match ...string) {
		t.Helper()
		assert.EqualValues(t, want, otelValue(t, ms, name, match...), "otel %s %v", name, match)
	}
	otelCheck(s.Hits, "mongotenant.acquisitions", "mongotenant.outcome", "hit")
	otelCheck(s.Misses, "mongotenant.acquisitions", "mongotenant.outcome", "miss")
	otelCheck(s.Refused, "mongotenant.acquisitions", "mongotenant.outcome", "refused")
	otelCheck(s.Evicted, "mongotenant.evictions")
	otelCheck(s.EvictedLRU, "mongotenant.evictions", "mongotenant.cause", "lru")
	otelCheck(s.Created, "mongotenant.clients.created")
	otelCheck(s.Recycled, "mongotenant.clients.recycled")
	otelCheck(s.Disconnects, "mongotenant.clients.disconnects")
	otelCheck(s.Clients, "mongotenant.clients", "mongotenant.state", "cached")
	otelCheck(s.Tenants, "mongotenant.tenants")
	otelCheck(s.OpenConnections, "db.client.connection.count")
	otelCheck(s.InUseConnections, "db.client.connection.count", "db.client.connection.state", "used")
	otelCheck(s.Clients*int(mongotenant.DefaultPoolSize), "db.client.connection.max", "db.client.connection.pool.name", mongotenant.DedicatedGroup)
	otelCheck(0, "db.client.connection.pending_requests")
	otelCheck(s.Misses, "mongotenant.acquire.duration", "mongotenant.outcome", "miss")
	assert.Positive(t, otelValue(t, ms, "db.client.connection.wait_time"), "check-outs recorded")
	assert.Positive(t, otelValue(t, ms, "db.client.connection.create_time"), "connections recorded")

	// Command stats against the user's own monitor.
	var commands uint64
	for _, g := range m.GroupStats() {
		commands += g.Commands
	}
	assert.EqualValues(t, userCommands.Load(), commands, "command stats count what the user's monitor sees")
	assert.GreaterOrEqual(t, commands, uint64(8*60), "one insert per write at least")
	otelCheck(commands, "mongotenant.commands")

	// Prometheus against Stats.
	var fams map[string]*dto.MetricFamily
	s = settled(func() { fams = scrape(t, srv.URL) })
	promCheck := func(want any, name string, match ...string) {
		t.Helper()
		assert.EqualValues(t, want, promValue(t, fams, name, match...), "prometheus %s %v", name, match)
	}
	promCheck(s.Hits, "mongotenant_acquisitions_total", "outcome", "hit")
	promCheck(s.Misses, "mongotenant_acquisitions_total", "outcome", "miss")
	promCheck(s.Evicted, "mongotenant_evictions_total")
	promCheck(s.Created, "mongotenant_clients_created_total")
	promCheck(s.Recycled, "mongotenant_clients_recycled_total")
	promCheck(s.Clients, "mongotenant_clients", "state", "cached")
	promCheck(s.OpenConnections, "mongotenant_connections")
	promCheck(commands, "mongotenant_commands_total")

	// Spans: one per slow-path acquisition, with children for each step.
	count := map[string]int{}
	var text strings.Builder
	for _, sp := range spans.GetSpans() {
		count[sp.Name]++
		fmt.Fprintln(&text, sp.Name, sp.Attributes, sp.Events, sp.Status)
	}
	assert.EqualValues(t, otelValue(t, ms, "mongotenant.acquire.duration"), count[tenantotel.SpanAcquire])
	assert.EqualValues(t, s.Created, count[tenantotel.SpanCreateClient])
	assert.EqualValues(t, inits.Load(), count[tenantotel.SpanInit])
	assert.Positive(t, count[tenantotel.SpanRoute])
	assert.NotContains(t, text.String(), "obs-t", "no tenant ID in spans")
	for name, m := range ms {
		assert.NotContains(t, fmt.Sprint(m.Data), "obs-t", "%s has a tenant ID", name)
	}
	for name, f := range fams {
		assert.NotContains(t, f.String(), "obs-t", "%s has a tenant ID", name)
	}
}

// TestPingAndReady: against a live server, Ping and PingDeployment succeed,
// with or without a cached client, and the readiness handler says ready;
// the transient client of PingDeployment is not a tenant client.
func TestPingAndReady(t *testing.T) {
	m, _ := setup(t)
	ctx := context.Background()
	require.NoError(t, m.PingDeployment(ctx), "through a client of its own")
	assert.Equal(t, 0, m.Stats().Clients)
	require.NoError(t, m.Ping(ctx, "pinged"))
	require.NoError(t, m.PingDeployment(ctx), "through the cached client")
	s := m.Stats()
	assert.Equal(t, 1, s.Clients)
	assert.Equal(t, 0, s.Leases)

	h := tenanthttp.Ready(m, 5*time.Second, "pinged", "another")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"status":"ready"}`, rec.Body.String())
}

// TestReadyAfterTheServerStops: a server that stops answering makes the
// readiness check fail within its timeout, for the deployment and the
// tenants alike.
func TestReadyAfterTheServerStops(t *testing.T) {
	dead := mongotest.New(t)
	if dead.Backend() != mongotest.BackendEmbedded {
		t.Skip("needs the embedded server, which can be stopped")
	}
	ctx := context.Background()
	md := newManager(t, dead.URI(), mongotenant.WithClientOptions(options.Client().SetServerSelectionTimeout(time.Second)))
	require.NoError(t, md.Ping(ctx, "pinged"))
	require.NoError(t, dead.Stop())
	rec := httptest.NewRecorder()
	tenanthttp.Ready(md, 300*time.Millisecond, "pinged").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.JSONEq(t, `{"status":"unavailable","failed":["deployment","tenant 0"]}`, rec.Body.String())
}

// waitChan returns a channel closed when wg is done.
func waitChan(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

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

func promValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, match ...string) float64 {
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
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// otelValue sums a sum's values, or a histogram's counts, over the data
// points whose attributes include every key=value of match.
func otelValue(t *testing.T, ms map[string]metricdata.Metrics, name string, match ...string) float64 {
	t.Helper()
	m, ok := ms[name]
	require.True(t, ok, "metric %s", name)
	var total float64
	add := func(attrs attribute.Set, v float64) {
		for i := 0; i < len(match); i += 2 {
			if got, ok := attrs.Value(attribute.Key(match[i])); !ok || got.Emit() != match[i+1] {
				return
			}
		}
		total += v
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, float64(p.Value))
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, p.Value)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			add(p.Attributes, float64(p.Count))
		}
	default:
		t.Fatalf("%s: unexpected %T", name, m.Data)
	}
	return total
}
