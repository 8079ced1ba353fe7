package tenanthttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
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
		"refused_route", "retiring", "route_refresh_errors", "route_refreshes", "tenants", "transient", "wait_ms",
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
		"created", "database", "group", "in_use_connections", "last_used", "leases", "limit", "max_leases",
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

// TestAdminLists: /groups, /tiers and the pages of /tenants, sorted by ID,
// each tenant once, whatever the page size.
func TestAdminLists(t *testing.T) {
	tierOf := func(_ context.Context, id string) (string, error) { return "free", nil }
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Grouped(2)), mongotenant.WithTiers(tierOf, nil))
	admin, err := tenanthttp.Admin(m, func(*http.Request) bool { return true })
	require.NoError(t, err)
	var ids []string
	for i := range 25 {
		id := fmt.Sprintf("t%02d", i)
		ids = append(ids, id)
		l, err := m.Acquire(context.Background(), id)
		require.NoError(t, err)
		l.Release()
	}
	get := func(path string) *httptest.ResponseRecorder {
		return do(admin, httptest.NewRequest(http.MethodGet, path, nil))
	}

	rec := get("/groups")
	require.Equal(t, http.StatusOK, rec.Code)
	var groups []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &groups))
	require.Len(t, groups, 2)
	assert.Equal(t, "group-0", groups[0]["group"])
	assert.EqualValues(t, 25, groups[0]["tenants"].(float64)+groups[1]["tenants"].(float64))

	rec = get("/tiers")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `[{"tier":"free","tenants":25,"bound":25,"leases":0}]`, rec.Body.String())

	for _, limit := range []int{1, 7, 25, 100} {
		var seen []string
		after := ""
		for range 30 {
			rec := get(fmt.Sprintf("/tenants?limit=%d&after=%s", limit, after))
			require.Equal(t, http.StatusOK, rec.Code)
			var p struct {
				Tenants []map[string]any `json:"tenants"`
				Next    string           `json:"next"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
			require.LessOrEqual(t, len(p.Tenants), limit)
			for _, ten := range p.Tenants {
				seen = append(seen, ten["tenant"].(string))
				assert.Equal(t, "free", ten["tier"])
			}
			if p.Next == "" {
				break
			}
			after = p.Next
		}
		assert.Equal(t, ids, seen, "limit %d", limit)
	}
	rec = get("/tenants")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"next":""`, "the default page holds all 25")
	for _, bad := range []string{"0", "-1", "1001", "x", "1e3"} {
		rec := get("/tenants?limit=" + bad)
		assert.Equal(t, http.StatusBadRequest, rec.Code, bad)
	}
}

// TestReady: 503 naming the failed checks by kind and index, never by
// tenant ID, within the timeout; 503 closed after Close.
func TestReady(t *testing.T) {
	m := newManager(t)
	h := tenanthttp.Ready(m, 300*time.Millisecond, "acme-secret-customer")
	start := time.Now()
	rec := do(h, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Less(t, time.Since(start), 5*time.Second, "bounded by the timeout")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.JSONEq(t, `{"status":"unavailable","failed":["deployment","tenant 0"]}`, rec.Body.String())
	assert.NotContains(t, rec.Body.String(), "acme")
	assert.Equal(t, 0, m.Stats().Leases)

	require.NoError(t, m.Close(context.Background()))
	rec = do(h, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.JSONEq(t, `{"status":"closed"}`, rec.Body.String())
}
