package tenanthttp_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdminNeedsAuthorize(t *testing.T) {
	m := newManager(t)
	h, err := tenanthttp.Admin(m, nil)
	require.Error(t, err)
	assert.Nil(t, h)
	h, err = tenanthttp.Admin(nil, func(*http.Request) bool { return true })
	require.Error(t, err)
	assert.Nil(t, h)
}

// adminRoutes are the admin routes and some that do not exist.
var adminRoutes = []struct{ method, path string }{
	{http.MethodGet, "/stats"},
	{http.MethodPost, "/stats"},
	{http.MethodGet, "/tenants/acme"},
	{http.MethodDelete, "/tenants/acme"},
	{http.MethodDelete, "/tenants/%24cmd"},
	{http.MethodGet, "/nope"},
}

func TestAdminUnauthorized(t *testing.T) {
	m := newManager(t)
	l, err := m.Acquire(context.Background(), "acme")
	require.NoError(t, err)
	l.Release()
	var asked int
	h, err := tenanthttp.Admin(m, func(*http.Request) bool { asked++; return false })
	require.NoError(t, err)
	for _, rt := range adminRoutes {
		rec := do(h, httptest.NewRequest(rt.method, rt.path, nil))
		assert.Equal(t, http.StatusForbidden, rec.Code, "%s %s", rt.method, rt.path)
		assert.Equal(t, "forbidden", errorBody(t, rec))
	}
	assert.Equal(t, len(adminRoutes), asked)
	_, ok := m.TenantStats("acme")
	assert.True(t, ok, "an unauthorized DELETE evicts nothing")
	assert.Zero(t, m.Stats().EvictedByApp)
}

// decode decodes a JSON object response.
func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var v map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v))
	return v
}

func keys(v map[string]any) []string { return slices.Sorted(maps.Keys(v)) }

func TestAdmin(t *testing.T) {
	m := newManager(t)
	admin, err := tenanthttp.Admin(m, func(r *http.Request) bool { return r.Header.Get("X-Admin-Token") == "s3cret" })
	require.NoError(t, err)
	h := http.StripPrefix("/admin", admin)
	call := func(method, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/admin"+path, nil)
		req.Header.Set("X-Admin-Token", "s3cret")
		return do(h, req)
	}
	for range 2 {
		l, err := m.Acquire(context.Background(), "acme")
		require.NoError(t, err)
		l.Release()
	}

	rec := call(http.MethodGet, "/stats")
	require.Equal(t, http.StatusOK, rec.Code)
	stats := decode(t, rec)
	assert.Equal(t, []string{
		"budget_limit", "budget_used", "clients", "created", "disconnect_errors", "disconnects",
		"disconnects_busy", "evicted", "evicted_budget", "evicted_by_app", "evicted_close", "evicted_idle",
		"evicted_lru", "evicted_route", "expired_tenants", "hits", "in_use_connections", "leases",
		"max_clients", "misses", "open_connections", "recycled", "refused", "refused_budget", "refused_busy",
		"refused_closed", "refused_context", "refused_create", "refused_init", "refused_invalid",
		"refused_route", "retiring", "route_refresh_errors", "route_refreshes", "tenants", "wait_ms",
		"waiting", "waits",
	}, keys(stats), "the documented keys")
	assert.EqualValues(t, 100, stats["max_clients"])
	assert.EqualValues(t, 1, stats["clients"])
	assert.EqualValues(t, 1, stats["created"])
	assert.EqualValues(t, 1, stats["hits"])
	assert.EqualValues(t, 1, stats["misses"])

	rec = call(http.MethodGet, "/tenants/acme")
	require.Equal(t, http.StatusOK, rec.Code)
	tenant := decode(t, rec)
	assert.Equal(t, []string{
		"check_out_failures", "check_out_wait_max_ms", "check_out_wait_ms", "check_outs",
		"created", "database", "group", "in_use_connections", "last_used", "leases", "max_leases",
		"open_connections", "pool_clears", "pool_size", "sharing", "tenant", "tier",
	}, keys(tenant), "the documented keys")
	assert.Equal(t, "acme", tenant["tenant"])
	assert.Equal(t, "user_acme_db", tenant["database"])
	assert.EqualValues(t, 0, tenant["leases"])
	assert.EqualValues(t, 10, tenant["pool_size"])
	assert.EqualValues(t, 1, tenant["sharing"])
	assert.Equal(t, "", tenant["tier"])

	rec = call(http.MethodGet, "/tenants/ghost")
	require.Equal(t, http.StatusNotFound, rec.Code)
	assert.Equal(t, "tenant not found", errorBody(t, rec))

	rec = call(http.MethodDelete, "/tenants/acme")
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Body.String())
	_, ok := m.TenantStats("acme")
	assert.False(t, ok)
	assert.Equal(t, uint64(1), m.Stats().EvictedByApp)

	rec = call(http.MethodDelete, "/tenants/acme")
	require.Equal(t, http.StatusNotFound, rec.Code)
	assert.Equal(t, "tenant not found", errorBody(t, rec))

	rec = call(http.MethodDelete, "/tenants/%24cmd")
	require.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "invalid tenant", errorBody(t, rec))

	assert.Equal(t, http.StatusMethodNotAllowed, call(http.MethodPost, "/stats").Code)
	assert.Equal(t, http.StatusNotFound, call(http.MethodGet, "/nope").Code)
	assert.Equal(t, http.StatusNotFound, call(http.MethodGet, "/tenants/").Code)

	require.NoError(t, m.Close(context.Background()))
	rec = call(http.MethodDelete, "/tenants/acme")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "service unavailable", errorBody(t, rec))
	rec = call(http.MethodGet, "/stats")
	require.Equal(t, http.StatusOK, rec.Code, "stats stay readable after Close")
	assert.EqualValues(t, 0, decode(t, rec)["clients"])
}
