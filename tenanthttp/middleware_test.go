package tenanthttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(target string) *http.Request { return httptest.NewRequest(http.MethodGet, target, nil) }

func TestMiddlewareServesTheTenantsDatabase(t *testing.T) {
	m := newManager(t)
	seen := make(chan served, 1)
	h := tenanthttp.Middleware(m, tenanthttp.Query("tenant"))(echo(seen))
	for _, id := range []string{"acme", "globex", "acme"} {
		rec := do(h, get("/?tenant="+id))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, served{id, "user_" + id + "_db"}, <-seen)
	}
	assert.Equal(t, uint64(2), m.Stats().Created)
}

func TestMiddlewareRefusesBadTenants(t *testing.T) {
	m := newManager(t)
	v := newVerifier()
	h := tenanthttp.Middleware(m, tenanthttp.Chain(
		tenanthttp.BearerClaim(v.verify, "tenant"),
		tenanthttp.Query("tenant"),
	))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("handler reached for %s", r.URL)
	}))
	for _, c := range []struct {
		name, target, token string
		status              int
		message             string
	}{
		{name: "missing", target: "/", status: 400, message: "missing tenant"},
		{name: "empty", target: "/?tenant=", status: 400, message: "missing tenant"},
		{name: "path traversal", target: "/?tenant=../admin", status: 400, message: "invalid tenant"},
		{name: "command namespace", target: "/?tenant=%24cmd", status: 400, message: "invalid tenant"},
		{name: "CR LF", target: "/?tenant=a%0d%0ab", status: 400, message: "invalid tenant"},
		{name: "NUL", target: "/?tenant=a%00b", status: 400, message: "invalid tenant"},
		{name: "Cyrillic a", target: "/?tenant=%D0%B0dmin", status: 400, message: "invalid tenant"},
		{name: "admin database", target: "/?tenant=admin", status: 200},
		{name: "64 bytes", target: "/?tenant=" + strings.Repeat("a", 64), status: 400, message: "invalid tenant"},
		{name: "over-long", target: "/?tenant=" + strings.Repeat("a", 300), status: 400, message: "invalid tenant"},
		{name: "duplicated", target: "/?tenant=a&tenant=b", status: 400, message: "invalid tenant"},
		{name: "forged token", target: "/?tenant=acme", token: unsignedJWT, status: 401, message: "unauthenticated"},
		{name: "token without claim", target: "/?tenant=acme", token: "noclaim", status: 401, message: "unauthenticated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.status == 200 {
				// "admin" is a valid ID: it maps to user_admin_db, not admin.
				seen := make(chan served, 1)
				rec := do(tenanthttp.Middleware(m, tenanthttp.Query("tenant"))(echo(seen)), get(c.target))
				require.Equal(t, 200, rec.Code)
				assert.Equal(t, served{"admin", "user_admin_db"}, <-seen)
				return
			}
			req := get(c.target)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := do(h, req)
			require.Equal(t, c.status, rec.Code)
			assert.Equal(t, c.message, errorBody(t, rec))
			assert.Empty(t, rec.Header().Get("Retry-After"))
		})
	}
	assert.Equal(t, 1, m.Stats().Tenants, "only the valid ID got a record")
}

func TestMiddlewareTenantBusy(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxLeases(1))
	seen := make(chan served, 1)
	h := tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"), tenanthttp.WithRetryAfter(1500*time.Millisecond))(echo(seen))
	held, err := m.Acquire(context.Background(), "acme")
	require.NoError(t, err)
	t.Cleanup(held.Release) // if the test stops early; Release is idempotent

	// The request waits for the held lease until its deadline, then is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req := get("/").WithContext(ctx)
	req.Header.Set("X-Tenant-ID", "acme")
	rec := do(h, req)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.Equal(t, "tenant busy", errorBody(t, rec))
	assert.Equal(t, "2", rec.Header().Get("Retry-After"))
	assert.Equal(t, uint64(1), m.Stats().RefusedBusy)

	held.Release()
	req = get("/")
	req.Header.Set("X-Tenant-ID", "acme")
	require.Equal(t, http.StatusOK, do(h, req).Code)
	assert.Equal(t, served{"acme", "user_acme_db"}, <-seen)
}

func TestMiddlewareUnavailable(t *testing.T) {
	routerErr := errors.New("tier lookup failed: billing-db.internal:5432 refused")
	closed := newManager(t)
	require.NoError(t, closed.Close(context.Background()))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, c := range []struct {
		name    string
		m       *mongotenant.Manager
		ctx     context.Context
		wantErr error
	}{
		{name: "closed", m: closed, ctx: context.Background(), wantErr: mongotenant.ErrClosed},
		{
			name:    "budget exceeded",
			m:       newManager(t, mongotenant.WithConnectionBudget(5, mongotenant.BudgetFailFast)),
			ctx:     context.Background(),
			wantErr: mongotenant.ErrBudgetExceeded,
		},
		{
			name: "router failed",
			m: newManager(t, mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error {
				return routerErr
			})),
			ctx:     context.Background(),
			wantErr: routerErr,
		},
		{
			// The client went away while the route was resolved: not a 500.
			name: "client gone",
			m: newManager(t, mongotenant.WithRouter(func(ctx context.Context, _ string, _ *mongotenant.Route) error {
				return ctx.Err()
			})),
			ctx:     canceled,
			wantErr: context.Canceled,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var handled error
			h := tenanthttp.Middleware(c.m, tenanthttp.Query("tenant"),
				tenanthttp.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, status int, err error) {
					handled = err
					tenanthttp.WriteError(w, r, status, err)
				}),
			)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Error("handler reached")
			}))
			rec := do(h, get("/?tenant=acme").WithContext(c.ctx))
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, "service unavailable", errorBody(t, rec), "nothing internal is echoed")
			assert.Equal(t, "1", rec.Header().Get("Retry-After"))
			assert.ErrorIs(t, handled, c.wantErr, "the error handler sees the cause")
		})
	}
}

func TestWithRetryAfter(t *testing.T) {
	m := newManager(t)
	require.NoError(t, m.Close(context.Background()))
	for d, want := range map[time.Duration]string{
		-time.Second:            "1",
		0:                       "1",
		time.Millisecond:        "1",
		time.Second:             "1",
		1001 * time.Millisecond: "2",
		30 * time.Second:        "30",
	} {
		h := tenanthttp.Middleware(m, tenanthttp.Query("tenant"), tenanthttp.WithRetryAfter(d))(http.NotFoundHandler())
		rec := do(h, get("/?tenant=acme"))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, want, rec.Header().Get("Retry-After"), "WithRetryAfter(%v)", d)
	}
}

func TestWithErrorHandler(t *testing.T) {
	m := newManager(t)
	require.NoError(t, m.Close(context.Background()))
	type call struct {
		status     int
		err        error
		retryAfter string
	}
	var calls []call
	h := tenanthttp.Middleware(m, tenanthttp.Query("tenant"),
		tenanthttp.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, status int, err error) {
			calls = append(calls, call{status, err, w.Header().Get("Retry-After")})
			w.WriteHeader(418)
		}),
	)(http.NotFoundHandler())

	assert.Equal(t, 418, do(h, get("/")).Code)
	assert.Equal(t, 418, do(h, get("/?tenant=acme")).Code)
	require.Len(t, calls, 2)
	assert.Equal(t, 400, calls[0].status)
	assert.ErrorIs(t, calls[0].err, tenanthttp.ErrNoTenant)
	assert.Empty(t, calls[0].retryAfter)
	assert.Equal(t, 503, calls[1].status)
	assert.ErrorIs(t, calls[1].err, mongotenant.ErrClosed)
	assert.Equal(t, "1", calls[1].retryAfter, "Retry-After is set before the handler runs")

	// A nil handler keeps the default.
	rec := do(tenanthttp.Middleware(m, tenanthttp.Query("tenant"), tenanthttp.WithErrorHandler(nil))(http.NotFoundHandler()), get("/"))
	assert.Equal(t, "missing tenant", errorBody(t, rec))
}

func TestLeaseLifetime(t *testing.T) {
	m := newManager(t)
	var inside mongotenant.Stats
	h := tenanthttp.Middleware(m, tenanthttp.Query("tenant"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside = m.Stats()
		l, ok := tenanthttp.LeaseFrom(r.Context())
		require.True(t, ok)
		assert.Equal(t, "acme", l.TenantID())
		assert.NotNil(t, l.Client())
		if r.URL.Query().Has("panic") {
			panic("boom")
		}
	}))

	require.Equal(t, http.StatusOK, do(h, get("/?tenant=acme")).Code)
	assert.Equal(t, 1, inside.Leases, "one lease while the handler runs")
	assert.Equal(t, 0, m.Stats().Leases, "released when the handler returns")

	var recovered any
	func() {
		defer func() { recovered = recover() }()
		do(h, get("/?tenant=acme&panic=1"))
	}()
	assert.Equal(t, "boom", recovered)
	assert.Equal(t, 1, inside.Leases)
	assert.Equal(t, 0, m.Stats().Leases, "released when the handler panics")
}

func TestFromOutsideMiddleware(t *testing.T) {
	ctx := context.Background()
	_, ok := tenanthttp.LeaseFrom(ctx)
	assert.False(t, ok)
	db, ok := tenanthttp.DatabaseFrom(ctx)
	assert.False(t, ok)
	assert.Nil(t, db)
	id, ok := tenanthttp.TenantFrom(ctx)
	assert.False(t, ok)
	assert.Empty(t, id)
}

func TestMiddlewarePanicsOnNil(t *testing.T) {
	m := newManager(t)
	assert.Panics(t, func() { tenanthttp.Middleware(nil, tenanthttp.Query("tenant")) })
	assert.Panics(t, func() { tenanthttp.Middleware(m, nil) })
}
