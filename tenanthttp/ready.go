package tenanthttp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mongotenant/mongotenant"
)

// DefaultReadyTimeout bounds the checks of [Ready] when its timeout is 0.
const DefaultReadyTimeout = 2 * time.Second

// Ready returns a readiness handler, for a load balancer or a Kubernetes
// readinessProbe: it pings the deployment at the Manager's URI
// ([mongotenant.Manager.PingDeployment]) and, through their leases, each
// of tenants ([mongotenant.Manager.Ping]), within timeout
// ([DefaultReadyTimeout] if 0) and the request's ctx. It answers 200
// {"status":"ready"}, or 503 {"status":"unavailable","failed":[...]} naming
// the failed checks as "deployment" or "tenant <i>" (the index in tenants,
// so that tenant IDs do not leak to an unauthenticated probe), or 503
// {"status":"closed"} once the Manager is closed, so that a draining
// instance leaves the load balancer. It needs no authorization and
// answers every method; it is safe for concurrent use.
//
// A named tenant is acquired like any other: its client is created at the
// first check, and kept cached by the following ones. When no tenant
// client of the deployment is cached, the deployment check connects a
// short-lived client of the Manager's; concurrent checks share it, so
// probes cannot multiply clients.
func Ready(m *mongotenant.Manager, timeout time.Duration, tenants ...string) http.Handler {
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	tenants = append([]string(nil), tenants...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		var failed []string
		closed := false
		check := func(name string, err error) {
			if err != nil {
				failed = append(failed, name)
				closed = closed || errors.Is(err, mongotenant.ErrClosed)
			}
		}
		check("deployment", m.PingDeployment(ctx))
		for i, id := range tenants {
			check("tenant "+strconv.Itoa(i), m.Ping(ctx, id))
		}
		switch {
		case closed:
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "closed"})
		case failed != nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
		}
	})
}
