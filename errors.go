package mongotenant

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them or a
// context's error, so test with [errors.Is]; the wrapping error says why.
// No error repeats a value from the URI or the client options.
var (
	// ErrClosed is returned by [Manager.Acquire] and friends after
	// [Manager.Close] has begun.
	ErrClosed = errors.New("mongotenant: manager closed")

	// ErrInvalidTenant is returned for a tenant ID that is empty, too long,
	// has characters outside the allowed set, or would name a database outside
	// the tenant namespace. Tenant IDs are untrusted input: they are checked
	// before anything is sent to the server, and before any lock is taken.
	ErrInvalidTenant = errors.New("mongotenant: invalid tenant ID")

	// ErrTenantNotFound is returned by [Manager.Evict] when the Manager
	// holds nothing for the tenant.
	ErrTenantNotFound = errors.New("mongotenant: tenant not cached")

	// ErrTenantBusy is returned by [Manager.Acquire] when the tenant holds
	// as many leases as its bulkhead allows ([Route.MaxLeases]), or its
	// turn at a fairly shared client ([WithFairSharing]) has not come, until
	// ctx ends.
	ErrTenantBusy = errors.New("mongotenant: tenant at its lease limit")

	// ErrBudgetExceeded is returned by [Manager.Acquire] when a new client
	// does not fit the connection budget ([WithConnectionBudget]).
	ErrBudgetExceeded = errors.New("mongotenant: connection budget exceeded")

	// ErrRoute is returned by [Manager.Acquire] and [Manager.Refresh] when
	// a tenant's route cannot be resolved: a [Router] (a tier lookup,
	// placement, credentials) failed, or set an impossible route, or a
	// placement URI does not parse.
	ErrRoute = errors.New("mongotenant: cannot route tenant")

	// ErrCreateClient is returned by [Manager.Acquire] when the driver
	// refuses to create a tenant's client.
	ErrCreateClient = errors.New("mongotenant: cannot create client")

	// ErrInit is returned by [Manager.Acquire] when the init hook
	// ([WithInit]) fails for the tenant; the next Acquire runs it again.
	ErrInit = errors.New("mongotenant: tenant init failed")

	// ErrUnknownTenant is for a Router (a tenant catalog) to wrap when it
	// does not know the tenant: Acquire fails with ErrRoute wrapping it.
	// If a route refresh finds it, the tenant leaves its client, as after a
	// route change (Stats.EvictedRoute): leases already granted finish, new
	// ones are refused.
	ErrUnknownTenant = errors.New("mongotenant: unknown tenant")

	// ErrTenantSuspended is for a Router to wrap when the tenant exists
	// but may not be served. Acquire fails with ErrRoute wrapping it, and
	// a route refresh that finds it evicts the tenant, as for
	// ErrUnknownTenant.
	ErrTenantSuspended = errors.New("mongotenant: tenant suspended")

	// ErrInvalidOption is returned by [New] (and by [PlanCapacity]) for
	// impossible settings, and by [Manager.Database] for a ctx that never
	// ends.
	ErrInvalidOption = errors.New("mongotenant: invalid option")
)

// refusal is why an acquisition failed, for Stats.
type refusal int

const (
	refusedBusy refusal = iota
	refusedBudget
	refusedInvalid
	refusedRoute
	refusedCreate
	refusedInit
	refusedClosed
	refusedContext
	numRefusals
)

// String returns the refusal's name, as in Stats and metric attributes.
func (r refusal) String() string {
	return [...]string{"busy", "budget", "invalid", "route", "create", "init", "closed", "context"}[r]
}

// refusalOf classifies an error returned by Acquire; gaveUp says whether
// the caller's ctx had ended.
func refusalOf(err error, gaveUp bool) refusal {
	switch {
	case errors.Is(err, ErrTenantBusy):
		return refusedBusy
	case errors.Is(err, ErrBudgetExceeded):
		return refusedBudget
	case errors.Is(err, ErrInvalidTenant):
		return refusedInvalid
	case errors.Is(err, ErrClosed):
		return refusedClosed
	case gaveUp && isContextError(err):
		return refusedContext // whatever it was waiting for
	case errors.Is(err, ErrRoute):
		return refusedRoute
	case errors.Is(err, ErrInit):
		return refusedInit
	default: // ErrCreateClient
		return refusedCreate
	}
}
