package tenanthttp

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// leaseKey is the context key of the request's lease. An unexported type
// keeps other packages from reading or replacing it.
type leaseKey struct{}

// An Option configures [Middleware].
type Option func(*config)

type config struct {
	retryAfter string
	onError    func(w http.ResponseWriter, r *http.Request, status int, err error)
}

// WithRetryAfter sets the Retry-After header sent with 429 and 503
// responses. It is sent in whole seconds, rounded up, and at least 1.
// Default 1 s.
func WithRetryAfter(d time.Duration) Option {
	secs := d / time.Second
	if d%time.Second > 0 {
		secs++
	}
	v := strconv.FormatInt(int64(max(secs, 1)), 10)
	return func(c *config) { c.retryAfter = v }
}

// WithErrorHandler replaces [WriteError] as the writer of refusals, to log
// them or to change the body. handle gets the status Middleware chose and
// the error behind it; Retry-After is already set on 429 and 503. A request
// whose client went away (r.Context().Err() != nil) comes with status 503;
// there is no one to answer, so handle may skip it. handle is called
// concurrently. A nil handle keeps WriteError.
func WithErrorHandler(handle func(w http.ResponseWriter, r *http.Request, status int, err error)) Option {
	return func(c *config) {
		if handle != nil {
			c.onError = handle
		}
	}
}

// Middleware serves every request under a lease on its tenant's client. It
// finds the tenant with extract, acquires a lease with the request's
// context, and puts it in the context of the request passed to the next
// handler: read it with [DatabaseFrom], [LeaseFrom] or [TenantFrom]. The
// lease is released when the next handler returns, or panics; the database
// must not be used after that, for example by a goroutine the handler
// started.
//
// The lease is held for the whole request. Under
// [mongotenant.WithFairSharing] that is one of its client's turns: for
// handlers that spend long on other work (rendering, calling other
// services), do not use Middleware; extract the tenant and call
// [mongotenant.Manager.Do] around each database step, so that the turn is
// held only while the database is used.
//
// A request that cannot be served gets an error response, written by
// [WriteError] unless [WithErrorHandler] says otherwise:
//
//	no tenant (ErrNoTenant)                        400 missing tenant
//	mongotenant.ErrInvalidTenant                   400 invalid tenant
//	ErrUnauthenticated                             401 unauthenticated
//	mongotenant.ErrTenantSuspended (from a Router) 403 tenant suspended
//	mongotenant.ErrUnknownTenant (from a Router)   404 unknown tenant
//	mongotenant.ErrTenantBusy                      429 tenant busy, Retry-After
//	anything else: mongotenant.ErrBudgetExceeded,
//	ErrClosed, a Router's other errors (a catalog
//	that cannot be reached), the context's         503 service unavailable, Retry-After
//
// Middleware panics if m or extract is nil. The handler it returns is safe
// for concurrent use.
func Middleware(m *mongotenant.Manager, extract Extractor, opts ...Option) func(http.Handler) http.Handler {
	if m == nil || extract == nil {
		panic("tenanthttp: Middleware needs a Manager and an Extractor")
	}
	cfg := config{retryAfter: "1", onError: WriteError}
	for _, o := range opts {
		o(&cfg)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lease, err := acquire(m, extract, r)
			if err != nil {
				status, _ := classify(err)
				if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", cfg.retryAfter)
				}
				cfg.onError(w, r, status, err)
				return
			}
			defer lease.Release()
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), leaseKey{}, lease)))
		})
	}
}

func acquire(m *mongotenant.Manager, extract Extractor, r *http.Request) (*mongotenant.Lease, error) {
	id, err := extract(r)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, ErrNoTenant
	}
	return m.Acquire(r.Context(), id)
}

// LeaseFrom returns the lease [Middleware] took for the request, for
// [mongotenant.Lease.Client] (sessions, transactions). Do not release it:
// Middleware does. It returns false outside Middleware. LeaseFrom,
// [DatabaseFrom] and [TenantFrom] only read the context and are safe for
// concurrent use, as is the lease.
func LeaseFrom(ctx context.Context) (*mongotenant.Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(*mongotenant.Lease)
	return l, ok
}

// DatabaseFrom returns the tenant's database for a request served by
// [Middleware], and false outside it.
func DatabaseFrom(ctx context.Context) (*mongo.Database, bool) {
	l, ok := LeaseFrom(ctx)
	if !ok {
		return nil, false
	}
	return l.Database(), true
}

// TenantFrom returns the tenant ID of a request served by [Middleware], and
// false outside it.
func TenantFrom(ctx context.Context) (string, bool) {
	l, ok := LeaseFrom(ctx)
	if !ok {
		return "", false
	}
	return l.TenantID(), true
}
