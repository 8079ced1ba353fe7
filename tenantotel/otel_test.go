package tenantotel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenantotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// unreachable is a URI nothing listens on: leases work against it, since
// mongo.Connect does no network I/O.
const unreachable = "mongodb://127.0.0.1:1/"

type setup struct {
	m       *mongotenant.Manager
	inst    *tenantotel.Instrumentation
	spans   *tracetest.InMemoryExporter
	reader  *sdkmetric.ManualReader
	cleanup func()
}

func newSetup(t *testing.T, instOpts []tenantotel.Option, opts ...mongotenant.Option) *setup {
	t.Helper()
	s := &setup{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	inst, err := tenantotel.New(append([]tenantotel.Option{tenantotel.WithTracerProvider(tp), tenantotel.WithMeterProvider(mp)}, instOpts...)...)
	require.NoError(t, err)
	opts = append([]mongotenant.Option{inst.Option(), mongotenant.WithClientOptions(
		options.Client().SetServerSelectionTimeout(100 * time.Millisecond))}, opts...)
	m, err := mongotenant.New(unreachable, opts...)
	require.NoError(t, err)
	require.NoError(t, inst.Observe(m))
	require.Error(t, inst.Observe(m), "Observe twice")
	s.m, s.inst = m, inst
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
		require.NoError(t, inst.Close())
		require.NoError(t, tp.Shutdown(ctx))
		require.NoError(t, mp.Shutdown(ctx))
	})
	return s
}

func acquire(t testing.TB, m *mongotenant.Manager, id string) *mongotenant.Lease {
	t.Helper()
	l, err := m.Acquire(context.Background(), id)
	require.NoError(t, err)
	return l
}

func attrsOf(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

// TestSpans: an acquisition that leaves the hot path has a span, with
// children for its route, client creation and init; a hit has none; the
// pool name is the group, and the tenant ID appears only if opted in.
func TestSpans(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tenantIDs=%t", optIn), func(t *testing.T) {
			s := newSetup(t, []tenantotel.Option{tenantotel.WithTenantIDs(optIn)},
				mongotenant.WithTiers(func(_ context.Context, id string) (string, error) {
					if id == "nobody" {
						return "", errors.New("no tier for nobody")
					}
					return "free", nil
				}, nil),
				mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { return nil }))
			acquire(t, s.m, "acme").Release()
			acquire(t, s.m, "acme").Release() // a hit: no span
			_, err := s.m.Acquire(context.Background(), "nobody")
			require.ErrorIs(t, err, mongotenant.ErrRoute)

			spans := s.spans.GetSpans()
			names := map[string][]tracetest.SpanStub{}
			for _, sp := range spans {
				names[sp.Name] = append(names[sp.Name], sp)
			}
			require.Len(t, names[tenantotel.SpanAcquire], 2, "one per slow-path acquisition")
			require.Len(t, names[tenantotel.SpanRoute], 2)
			require.Len(t, names[tenantotel.SpanCreateClient], 1)
			require.Len(t, names[tenantotel.SpanInit], 1)

			served := names[tenantotel.SpanAcquire][0]
			for _, child := range []tracetest.SpanStub{names[tenantotel.SpanRoute][0], names[tenantotel.SpanCreateClient][0], names[tenantotel.SpanInit][0]} {
				assert.Equal(t, served.SpanContext.SpanID(), child.Parent.SpanID(), "%s is a child of the acquisition", child.Name)
				assert.Equal(t, mongotenant.DedicatedGroup, attrsOf(child.Attributes)[string(tenantotel.PoolNameKey)], child.Name)
			}
			assert.Equal(t, mongotenant.DedicatedGroup, attrsOf(served.Attributes)[string(tenantotel.PoolNameKey)])
			assert.Equal(t, codes.Unset, served.Status.Code)

			refused := names[tenantotel.SpanAcquire][1]
			assert.Equal(t, codes.Error, refused.Status.Code)
			assert.Equal(t, "route", refused.Status.Description)
			assert.Equal(t, "route", attrsOf(refused.Attributes)[string(tenantotel.ReasonKey)])

			var all strings.Builder
			for _, sp := range spans {
				fmt.Fprintln(&all, sp.Name, sp.Attributes, sp.Events, sp.Status)
			}
			if optIn {
				assert.Equal(t, "acme", attrsOf(served.Attributes)[string(tenantotel.TenantIDKey)])
				assert.Contains(t, all.String(), "no tier for nobody", "the error is recorded when opted in")
			} else {
				assert.NotContains(t, all.String(), "acme", "no tenant ID without the opt-in")
				assert.NotContains(t, all.String(), "nobody")
			}
		})
	}
}

// metrics collects and indexes the data points by metric name.
func metrics(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
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

// value sums the data points of a sum metric whose attributes include
// every key=value of match.
func value(t *testing.T, ms map[string]metricdata.Metrics, name string, match ...string) float64 {
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

// TestMetricsMatchStats: after concurrent traffic with evictions,
// refusals and waits, every metric equals its Stats figure, and no
// attribute is a tenant ID.
func TestMetricsMatchStats(t *testing.T) {
	s := newSetup(t, []tenantotel.Option{tenantotel.WithTierMetrics(true)},
		mongotenant.WithMaxClients(5), mongotenant.WithMaxLeases(1),
		mongotenant.WithTiers(func(context.Context, string) (string, error) { return "basic", nil }, nil))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("tenant-%d", (i*7+w)%12)
				if i%50 == 0 {
					id = "bad id"
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				l, err := s.m.Acquire(ctx, id)
				cancel()
				if err == nil {
					l.Release()
				}
			}
		})
	}
	wg.Wait()
	held := acquire(t, s.m, "tenant-0")
	defer held.Release()

	// Evicted clients are disconnected in the background: compare a
	// collection with Stats taken before and after it, once they agree.
	var st mongotenant.Stats
	var ms map[string]metricdata.Metrics
	for i := 0; ; i++ {
		before := s.m.Stats()
		ms = metrics(t, s.reader)
		if st = s.m.Stats(); st == before {
			break
		}
		require.Less(t, i, 1000, "Stats never settled")
		time.Sleep(time.Millisecond)
	}
	check := func(want any, name string, match ...string) {
		t.Helper()
		assert.EqualValues(t, want, value(t, ms, name, match...), "%s %v", name, match)
	}
	check(st.Hits, "mongotenant.acquisitions", "mongotenant.outcome", "hit")
	check(st.Misses, "mongotenant.acquisitions", "mongotenant.outcome", "miss")
	check(st.Refused, "mongotenant.acquisitions", "mongotenant.outcome", "refused")
	check(st.RefusedInvalid, "mongotenant.acquire.refusals", "mongotenant.reason", "invalid")
	check(st.RefusedBusy, "mongotenant.acquire.refusals", "mongotenant.reason", "busy")
	check(st.Refused, "mongotenant.acquire.refusals")
	check(st.Waits, "mongotenant.acquire.waits")
	check(st.WaitDuration.Seconds(), "mongotenant.acquire.wait_time.total")
	check(st.EvictedLRU, "mongotenant.evictions", "mongotenant.cause", "lru")
	check(st.Evicted, "mongotenant.evictions")
	check(st.Created, "mongotenant.clients.created")
	check(st.Recycled, "mongotenant.clients.recycled")
	check(st.Disconnects, "mongotenant.clients.disconnects")
	check(st.Clients, "mongotenant.clients", "mongotenant.state", "cached")
	check(st.Retiring, "mongotenant.clients", "mongotenant.state", "retiring")
	check(st.Tenants, "mongotenant.tenants")
	check(1, "mongotenant.leases")
	check(st.Clients*int(mongotenant.DefaultTiers()["basic"].PoolSize), "db.client.connection.max", "db.client.connection.pool.name", mongotenant.DedicatedGroup)
	check(st.Tenants, "mongotenant.tier.tenants", "mongotenant.tier", "basic")
	check(1, "mongotenant.tier.leases", "mongotenant.tier", "basic")
	check(st.Misses, "mongotenant.acquire.duration", "mongotenant.outcome", "miss")
	check(st.Refused, "mongotenant.acquire.duration", "mongotenant.outcome", "refused")
	check(st.Waits, "mongotenant.acquire.wait_time")
	assert.NotZero(t, st.EvictedLRU)
	assert.NotZero(t, st.RefusedInvalid)

	for name, m := range ms {
		assert.NotContains(t, fmt.Sprint(m.Data), "tenant-", "%s has a tenant ID", name)
	}
}

// BenchmarkAcquireRelease is the cached acquisition with the
// instrumentation on: the hot path runs no hook, so it costs what it costs
// without (BenchmarkAcquireRelease in the root package).
func BenchmarkAcquireRelease(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	defer mp.Shutdown(context.Background())
	defer tp.Shutdown(context.Background())
	inst, err := tenantotel.New(tenantotel.WithMeterProvider(mp), tenantotel.WithTracerProvider(tp))
	require.NoError(b, err)
	m, err := mongotenant.New(unreachable, inst.Option())
	require.NoError(b, err)
	defer m.Close(context.Background())
	require.NoError(b, inst.Observe(m))
	defer inst.Close()
	ctx := context.Background()
	l, err := m.Acquire(ctx, "acme")
	require.NoError(b, err)
	l.Release()
	b.ReportAllocs()
	for b.Loop() {
		l, err := m.Acquire(ctx, "acme")
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
}

// TestFairSharingInstruments: with fair sharing, each shared group reports
// its turns used, kept and free and its waiting acquisitions, as GroupStats does.
func TestFairSharingInstruments(t *testing.T) {
	s := newSetup(t, nil, mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithFairSharing(2), mongotenant.WithFairReserve(1, time.Hour))
	l1, l2 := acquire(t, s.m, "a"), acquire(t, s.m, "b")
	got := make(chan error, 1)
	go func() {
		l, err := s.m.Acquire(context.Background(), "b")
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	for s.m.GroupStats()[0].FairWaiting != 1 {
		time.Sleep(time.Millisecond)
	}
	ms := metrics(t, s.reader)
	pool := "db.client.connection.pool.name"
	state := "db.client.connection.state"
	assert.EqualValues(t, 2, value(t, ms, "mongotenant.fair.turns", pool, "shared", state, "used"))
	assert.EqualValues(t, 0, value(t, ms, "mongotenant.fair.turns", pool, "shared", state, "kept"))
	assert.EqualValues(t, 0, value(t, ms, "mongotenant.fair.turns", pool, "shared", state, "free"))
	assert.EqualValues(t, 1, value(t, ms, "mongotenant.fair.waiting", pool, "shared"))

	// a leaves: its slot is kept for it, and b, holding a lease, waits on.
	l1.Release()
	ms = metrics(t, s.reader)
	assert.EqualValues(t, 1, value(t, ms, "mongotenant.fair.turns", state, "used"))
	assert.EqualValues(t, 1, value(t, ms, "mongotenant.fair.turns", state, "kept"))
	assert.EqualValues(t, 0, value(t, ms, "mongotenant.fair.turns", state, "free"))
	assert.EqualValues(t, 1, value(t, ms, "mongotenant.fair.waiting"))

	// b's lease ends: two free, one kept, and b's caller is served. No
	// caller waits then, so nothing is kept.
	l2.Release()
	require.NoError(t, <-got)
	ms = metrics(t, s.reader)
	assert.EqualValues(t, 0, value(t, ms, "mongotenant.fair.turns", state, "used"))
	assert.EqualValues(t, 0, value(t, ms, "mongotenant.fair.turns", state, "kept"))
	assert.EqualValues(t, 2, value(t, ms, "mongotenant.fair.turns", state, "free"))
	assert.EqualValues(t, 0, value(t, ms, "mongotenant.fair.waiting"))
}
