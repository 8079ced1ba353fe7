package tenanthttp

import (
	"errors"
	"net/http"
	"time"

	"github.com/mongotenant/mongotenant"
)

// Admin returns the admin API of m. authorize is required: a nil authorize
// is an error, because there is no open default. A request for which
// authorize returns false gets 403 before routing, so unauthorized callers
// cannot even tell which routes exist.
//
// Routes are relative; mount the handler under a prefix with
// [http.StripPrefix]:
//
//	GET    /stats         200, mongotenant.Stats as JSON
//	GET    /tenants/{id}  200, mongotenant.TenantStats as JSON; 404 if m holds no client for id
//	DELETE /tenants/{id}  204 after Manager.Evict; 404 if m holds no client for id,
//	                      400 for an invalid ID, 503 if m is closed
//
// Other paths get 404 and other methods 405, from [http.ServeMux]. Errors
// are JSON, as written by [WriteError].
//
// The JSON keys are the snake_case names of the Go fields, and are stable.
// /stats: max_clients, budget_limit, clients, retiring, tenants, leases,
// waiting, budget_used, open_connections, in_use_connections, created, recycled,
// hits, misses, waits, wait_ms (milliseconds, a floating-point number),
// refused, refused_busy, refused_budget, refused_invalid, refused_route,
// refused_create, refused_init, refused_closed, refused_context, evicted,
// evicted_lru, evicted_idle, evicted_by_app, evicted_close, evicted_budget,
// evicted_route, expired_tenants, route_refreshes, route_refresh_errors,
// disconnects, disconnects_busy, disconnect_errors.
// /tenants/{id}: tenant, database, group, tier ("" without tiers),
// max_leases, created and last_used (RFC 3339 times), leases,
// sharing, pool_size, open_connections, in_use_connections, check_outs,
// check_out_failures, check_out_wait_ms and check_out_wait_max_ms
// (milliseconds, as floating-point numbers), pool_clears.
//
// The handler is safe for concurrent use; authorize is called concurrently.
func Admin(m *mongotenant.Manager, authorize func(*http.Request) bool) (http.Handler, error) {
	if m == nil {
		return nil, errors.New("tenanthttp: Admin: nil Manager")
	}
	if authorize == nil {
		return nil, errors.New("tenanthttp: Admin: nil authorize; there is no open default")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statsJSON(m.Stats()))
	})
	mux.HandleFunc("GET /tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ts, ok := m.TenantStats(id)
		if !ok {
			WriteError(w, r, http.StatusNotFound, mongotenant.ErrTenantNotFound)
			return
		}
		writeJSON(w, http.StatusOK, tenantJSON(id, ts))
	})
	mux.HandleFunc("DELETE /tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Evict(r.Context(), r.PathValue("id")); err != nil {
			status, _ := classify(err)
			WriteError(w, r, status, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorize(r) {
			WriteError(w, r, http.StatusForbidden, nil)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// adminStats is the JSON of mongotenant.Stats. The tags live here, not on
// the library's type, so that the wire format changes only on purpose.
type adminStats struct {
	MaxClients         int     `json:"max_clients"`
	BudgetLimit        int     `json:"budget_limit"`
	Clients            int     `json:"clients"`
	Retiring           int     `json:"retiring"`
	Tenants            int     `json:"tenants"`
	Leases             int     `json:"leases"`
	Waiting            int     `json:"waiting"`
	BudgetUsed         int     `json:"budget_used"`
	OpenConnections    int     `json:"open_connections"`
	InUseConnections   int     `json:"in_use_connections"`
	Created            uint64  `json:"created"`
	Recycled           uint64  `json:"recycled"`
	Hits               uint64  `json:"hits"`
	Misses             uint64  `json:"misses"`
	Waits              uint64  `json:"waits"`
	WaitMS             float64 `json:"wait_ms"`
	Refused            uint64  `json:"refused"`
	RefusedBusy        uint64  `json:"refused_busy"`
	RefusedBudget      uint64  `json:"refused_budget"`
	RefusedInvalid     uint64  `json:"refused_invalid"`
	RefusedRoute       uint64  `json:"refused_route"`
	RefusedCreate      uint64  `json:"refused_create"`
	RefusedInit        uint64  `json:"refused_init"`
	RefusedClosed      uint64  `json:"refused_closed"`
	RefusedContext     uint64  `json:"refused_context"`
	Evicted            uint64  `json:"evicted"`
	EvictedLRU         uint64  `json:"evicted_lru"`
	EvictedIdle        uint64  `json:"evicted_idle"`
	EvictedByApp       uint64  `json:"evicted_by_app"`
	EvictedClose       uint64  `json:"evicted_close"`
	EvictedBudget      uint64  `json:"evicted_budget"`
	EvictedRoute       uint64  `json:"evicted_route"`
	ExpiredTenants     uint64  `json:"expired_tenants"`
	RouteRefreshes     uint64  `json:"route_refreshes"`
	RouteRefreshErrors uint64  `json:"route_refresh_errors"`
	Disconnects        uint64  `json:"disconnects"`
	DisconnectsBusy    uint64  `json:"disconnects_busy"`
	DisconnectErrors   uint64  `json:"disconnect_errors"`
}

func statsJSON(s mongotenant.Stats) adminStats {
	return adminStats{
		MaxClients:         s.MaxClients,
		BudgetLimit:        s.BudgetLimit,
		Clients:            s.Clients,
		Retiring:           s.Retiring,
		Tenants:            s.Tenants,
		Leases:             s.Leases,
		Waiting:            s.Waiting,
		BudgetUsed:         s.BudgetUsed,
		OpenConnections:    s.OpenConnections,
		InUseConnections:   s.InUseConnections,
		Created:            s.Created,
		Recycled:           s.Recycled,
		Hits:               s.Hits,
		Misses:             s.Misses,
		Waits:              s.Waits,
		WaitMS:             millis(s.WaitDuration),
		Refused:            s.Refused,
		RefusedBusy:        s.RefusedBusy,
		RefusedBudget:      s.RefusedBudget,
		RefusedInvalid:     s.RefusedInvalid,
		RefusedRoute:       s.RefusedRoute,
		RefusedCreate:      s.RefusedCreate,
		RefusedInit:        s.RefusedInit,
		RefusedClosed:      s.RefusedClosed,
		RefusedContext:     s.RefusedContext,
		Evicted:            s.Evicted,
		EvictedLRU:         s.EvictedLRU,
		EvictedIdle:        s.EvictedIdle,
		EvictedByApp:       s.EvictedByApp,
		EvictedClose:       s.EvictedClose,
		EvictedBudget:      s.EvictedBudget,
		EvictedRoute:       s.EvictedRoute,
		ExpiredTenants:     s.ExpiredTenants,
		RouteRefreshes:     s.RouteRefreshes,
		RouteRefreshErrors: s.RouteRefreshErrors,
		Disconnects:        s.Disconnects,
		DisconnectsBusy:    s.DisconnectsBusy,
		DisconnectErrors:   s.DisconnectErrors,
	}
}

// adminTenant is the JSON of mongotenant.TenantStats.
type adminTenant struct {
	Tenant            string    `json:"tenant"`
	Database          string    `json:"database"`
	Group             string    `json:"group"`
	Tier              string    `json:"tier"`
	MaxLeases         int       `json:"max_leases"`
	Created           time.Time `json:"created"`
	LastUsed          time.Time `json:"last_used"`
	Leases            int       `json:"leases"`
	Sharing           int       `json:"sharing"`
	PoolSize          uint64    `json:"pool_size"`
	OpenConnections   int       `json:"open_connections"`
	InUseConnections  int       `json:"in_use_connections"`
	CheckOuts         uint64    `json:"check_outs"`
	CheckOutFailures  uint64    `json:"check_out_failures"`
	CheckOutWaitMS    float64   `json:"check_out_wait_ms"`
	CheckOutWaitMaxMS float64   `json:"check_out_wait_max_ms"`
	PoolClears        uint64    `json:"pool_clears"`
}

func tenantJSON(id string, t mongotenant.TenantStats) adminTenant {
	return adminTenant{
		Tenant:            id,
		Database:          t.Database,
		Group:             t.Group,
		Tier:              t.Tier,
		MaxLeases:         t.MaxLeases,
		Created:           t.Created,
		LastUsed:          t.LastUsed,
		Leases:            t.Leases,
		Sharing:           t.Sharing,
		PoolSize:          t.PoolSize,
		OpenConnections:   t.OpenConnections,
		InUseConnections:  t.InUseConnections,
		CheckOuts:         t.CheckOuts,
		CheckOutFailures:  t.CheckOutFailures,
		CheckOutWaitMS:    millis(t.CheckOutWait),
		CheckOutWaitMaxMS: millis(t.CheckOutWaitMax),
		PoolClears:        t.PoolClears,
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
