package mongotenant

import "errors"

// Sentinel errors. Errors returned by this package wrap them, so test with
// [errors.Is]; the wrapping error says why.
var (
	// ErrClosed is returned by [Manager.Acquire] and friends after
	// [Manager.Close] has begun.
	ErrClosed = errors.New("mongotenant: manager closed")

	// ErrInvalidTenant is returned for a tenant ID that is empty, too long,
	// has characters outside the allowed set, or would name a database outside
	// the tenant namespace. Tenant IDs are untrusted input: they are checked
	// before anything is sent to the server.
	ErrInvalidTenant = errors.New("mongotenant: invalid tenant ID")

	// ErrTenantNotFound is returned by [Manager.Evict] when the Manager holds
	// no client for the tenant.
	ErrTenantNotFound = errors.New("mongotenant: tenant has no client")

	// ErrTenantBusy is returned by [Manager.Acquire] when the tenant holds
	// as many leases as its bulkhead allows ([Route.MaxLeases]) until ctx
	// ends.
	ErrTenantBusy = errors.New("mongotenant: tenant at its lease limit")

	// ErrBudgetExceeded is returned by [Manager.Acquire] when a new client
	// does not fit the connection budget ([WithConnectionBudget]).
	ErrBudgetExceeded = errors.New("mongotenant: connection budget exceeded")

	// ErrInvalidOption is returned by [New] for an option value that cannot work.
	ErrInvalidOption = errors.New("mongotenant: invalid option")
)
