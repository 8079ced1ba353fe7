package integration_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// newCatalog returns a catalog in its own database on uri, and a counter
// of the find commands it sends.
func newCatalog(t *testing.T, uri string) (*catalog.Catalog, *atomic.Int64) {
	t.Helper()
	var finds atomic.Int64
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "find" {
			finds.Add(1)
		}
	}}
	mc, err := mongo.Connect(options.Client().ApplyURI(uri).SetMonitor(mon))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, mc.Disconnect(context.Background())) })
	cat, err := catalog.New(mc.Database("platform").Collection("tenants"))
	require.NoError(t, err)
	return cat, &finds
}

// TestCatalogRouter: the catalog serves only active tenants it knows, with
// their tier; unknown ones fail with ErrUnknownTenant (404) and are not
// looked up again while remembered; suspended ones with ErrTenantSuspended
// (403).
func TestCatalogRouter(t *testing.T) {
	uri := mongotest.URI(t)
	cat, finds := newCatalog(t, uri)
	ctx := context.Background()
	_, err := cat.Register(ctx, catalog.Tenant{ID: "acme", Tier: "premium"})
	require.NoError(t, err)
	_, err = cat.Register(ctx, catalog.Tenant{ID: "acme"})
	require.ErrorIs(t, err, catalog.ErrExists)
	_, err = cat.Register(ctx, catalog.Tenant{ID: "frozen", State: catalog.Suspended})
	require.NoError(t, err)

	m := newManager(t, uri, mongotenant.WithRouter(cat.Router(nil)))
	require.NoError(t, m.Do(ctx, "acme", func(context.Context, *mongo.Database) error { return nil }))
	ts, ok := m.TenantStats("acme")
	require.True(t, ok)
	assert.Equal(t, "premium", ts.Tier)
	assert.Equal(t, mongotenant.DefaultTiers()["premium"].PoolSize, ts.PoolSize)

	_, err = m.Acquire(ctx, "ghost")
	require.ErrorIs(t, err, mongotenant.ErrUnknownTenant)
	require.ErrorIs(t, err, mongotenant.ErrRoute)
	before := finds.Load()
	for range 5 {
		_, err = m.Acquire(ctx, "ghost")
		require.ErrorIs(t, err, mongotenant.ErrUnknownTenant)
	}
	assert.Equal(t, before, finds.Load(), "an unknown tenant is remembered: no more lookups")

	_, err = m.Acquire(ctx, "frozen")
	require.ErrorIs(t, err, mongotenant.ErrTenantSuspended)

	h := tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for tenant, want := range map[string]int{"acme": 200, "ghost": 404, "frozen": 403} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Tenant-ID", tenant)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, want, rec.Code, tenant)
	}

	_, err = cat.Register(ctx, catalog.Tenant{ID: "ghost"})
	require.NoError(t, err)
	require.NoError(t, m.Do(ctx, "ghost", func(context.Context, *mongo.Database) error { return nil }),
		"registering through the catalog forgets the negative entry")

	var ids []string
	var listErr error
	for id := range cat.IDs(ctx, &listErr, catalog.Active) {
		ids = append(ids, id)
	}
	require.NoError(t, listErr)
	assert.Equal(t, []string{"acme", "ghost"}, ids)
}

// TestCatalogSuspensionAcrossManagers: two app instances share a catalog.
// A suspension made through one is enforced by the other after its route
// TTL: the tenant's client is evicted and requests get 403; resuming
// serves it again.
func TestCatalogSuspensionAcrossManagers(t *testing.T) {
	uri := mongotest.URI(t)
	cat1, _ := newCatalog(t, uri)
	cat2, _ := newCatalog(t, uri)
	ctx := context.Background()
	_, err := cat1.Register(ctx, catalog.Tenant{ID: "acme"})
	require.NoError(t, err)
	const ttl = 200 * time.Millisecond
	m1 := newManager(t, uri, mongotenant.WithRouter(cat1.Router(nil)), mongotenant.WithRouteTTL(ttl))
	m2 := newManager(t, uri, mongotenant.WithRouter(cat2.Router(nil)), mongotenant.WithRouteTTL(ttl))
	do := func(m *mongotenant.Manager) error {
		return m.Do(ctx, "acme", func(ctx context.Context, db *mongo.Database) error { return db.Client().Ping(ctx, nil) })
	}
	require.NoError(t, do(m1))
	require.NoError(t, do(m2))

	require.NoError(t, cat1.SetState(ctx, "acme", catalog.Suspended))
	start := time.Now()
	waitFor(t, "the other instance to refuse the suspended tenant", func() bool {
		return errors.Is(do(m2), mongotenant.ErrTenantSuspended)
	})
	t.Logf("instance 2 refused the tenant %v after the suspension (route TTL %v)", time.Since(start).Round(time.Millisecond), ttl)
	_, ok := m2.TenantStats("acme")
	assert.False(t, ok, "the suspended tenant's client is gone")
	assert.GreaterOrEqual(t, m2.Stats().EvictedRoute, uint64(1))
	waitFor(t, "the first instance too", func() bool { return errors.Is(do(m1), mongotenant.ErrTenantSuspended) })

	require.NoError(t, cat2.SetState(ctx, "acme", catalog.Active))
	require.NoError(t, do(m1), "a suspended tenant is asked about at every Acquire, so resuming is seen at once")
	require.NoError(t, do(m2))
}

// TestCatalogOutageIs503: a catalog that cannot be reached fails the
// route with an error that is neither unknown nor suspended: 503, not 400
// or 404.
func TestCatalogOutageIs503(t *testing.T) {
	srv := mongotest.New(t)
	if srv.Backend() != mongotest.BackendEmbedded {
		t.Skip("needs the embedded server, which can be stopped")
	}
	data := mongotest.URI(t) // tenants' data lives elsewhere
	mc, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetServerSelectionTimeout(300 * time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, mc.Disconnect(context.Background())) })
	cat, err := catalog.New(mc.Database("platform").Collection("tenants"))
	require.NoError(t, err)
	require.NoError(t, srv.Stop())

	m := newManager(t, data, mongotenant.WithRouter(cat.Router(nil)))
	_, err = m.Acquire(context.Background(), "acme")
	require.ErrorIs(t, err, mongotenant.ErrRoute)
	assert.False(t, errors.Is(err, mongotenant.ErrUnknownTenant) || errors.Is(err, mongotenant.ErrTenantSuspended))

	h := tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Tenant-ID", "acme")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}
