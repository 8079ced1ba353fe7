package tenanthttp

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mongotenant/mongotenant"
)

// Sentinel errors of the extractors. Test with [errors.Is]; the wrapping
// error says why.
var (
	// ErrNoTenant means the request names no tenant. [Middleware] answers
	// it with 400.
	ErrNoTenant = errors.New("tenanthttp: request names no tenant")

	// ErrUnauthenticated means the request's credentials were refused, or
	// cannot be checked because no verifier is configured. [Middleware]
	// answers it with 401.
	ErrUnauthenticated = errors.New("tenanthttp: unauthenticated")
)

// classify maps an error to its status and the fixed text the client sees.
// The text never comes from err: it may hold internal details or input the
// client sent.
func classify(err error) (status int, message string) {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated"
	case errors.Is(err, ErrNoTenant):
		return http.StatusBadRequest, "missing tenant"
	case errors.Is(err, mongotenant.ErrInvalidTenant):
		return http.StatusBadRequest, "invalid tenant"
	case errors.Is(err, mongotenant.ErrTenantBusy):
		return http.StatusTooManyRequests, "tenant busy"
	case errors.Is(err, mongotenant.ErrTenantNotFound):
		return http.StatusNotFound, "tenant not found"
	case errors.Is(err, mongotenant.ErrUnknownTenant):
		return http.StatusNotFound, "unknown tenant"
	case errors.Is(err, mongotenant.ErrTenantSuspended):
		return http.StatusForbidden, "tenant suspended"
	default:
		// ErrBudgetExceeded, ErrClosed, a failed Router or tier lookup, a
		// deadline, or a client that went away: none of them is the client's
		// mistake, and a retry may succeed.
		return http.StatusServiceUnavailable, "service unavailable"
	}
}

// WriteError is the default error handler of [Middleware]: it writes
// {"error":"<message>"} as application/json with the given status. The
// message is a fixed text chosen by status and by the sentinel err wraps,
// such as "missing tenant", "invalid tenant", "unauthenticated",
// "tenant busy" or "service unavailable"; err's own text is never sent.
// Call it from your own handler (see [WithErrorHandler]) after logging err.
// r is unused; it is there so that WriteError fits WithErrorHandler.
//
// WriteError is safe for concurrent use.
func WriteError(w http.ResponseWriter, r *http.Request, status int, err error) {
	msg := strings.ToLower(http.StatusText(status))
	if s, m := classify(err); s == status {
		msg = m
	}
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nobody is left to tell
}
