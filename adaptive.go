package mongotenant

import (
	"math"
	"sync/atomic"
	"time"
)

// WithAdaptiveLimit gives each tenant a limit on its concurrent leases
// that follows the tenant's own latency, additive increase and
// multiplicative decrease (AIMD), as TCP sizes its window: a lease held
// longer than target cuts the tenant's limit by a tenth, and a lease held
// within it raises the limit by one over the limit (about one lease more
// for each limit's worth of fast leases). One round of slow leases cuts
// once: a lease granted before the last cut does not cut again. The limit
// stays between 1 and the tenant's bulkhead ([WithMaxLeases],
// [Route.MaxLeases]) or, without one, its client's pool size, and starts
// at the top. An Acquire beyond it waits as at a bulkhead (first come,
// first served among the tenant's callers) until ctx ends, then fails with
// an error wrapping [ErrTenantBusy]. [TenantStats.Limit] shows it.
//
// The latency is the lease's, from Acquire's return to Release: use it
// with leases that span one database step ([Manager.Do] around each), not
// a whole request ([Manager.Database] and tenanthttp.Middleware hold
// theirs until the request ends), or the limit follows the handler's
// speed. A new route with a higher bulkhead or pool size (a tier upgrade)
// raises the ceiling, not the limit: the limit grows to it with fast
// leases; a lower one lowers the limit at once. A tenant the Manager drops
// (Evict, Forget, idle reaping) starts again at the top.
//
// Under overload, when the server slows every tenant down, every tenant's
// leases exceed target and every limit falls towards 1: each tenant keeps
// a lease or so in flight, its other callers wait in the library instead
// of in the server's queues, and those whose ctx ends first fail with
// ErrTenantBusy, so that the server works through a short queue and
// recovers. As latency comes back under target, the limits grow back, by
// about one lease per round of leases. A tenant whose own operations take
// longer than target on an idle server (scans, large aggregations) is held
// near one lease at a time: choose target above the latency the tenants'
// normal operations have.
//
// It costs a clock read at each Acquire and Release (about 30 ns each on
// the machine in the README) and an atomic update of the limit at each
// Release: a cached Acquire and Release takes about 120 ns instead of 46.
// And 24 bytes per tenant. Default off: 0.
func WithAdaptiveLimit(target time.Duration) Option {
	return func(c *config) { c.adaptiveTarget = target }
}

// adaptiveBackoff is the factor a slow lease cuts the limit by.
const adaptiveBackoff = 0.9

// An adaptiveLimit is a tenant's limit under WithAdaptiveLimit. Its
// fields are atomic: Release updates it without the tenant's lock, and
// takes the lock only to publish a new whole limit in tenant.maxLeases.
type adaptiveLimit struct {
	limit   atomic.Uint64 // float64 bits of the limit; 0 until the tenant has a route
	ceiling atomic.Int32  // its top, from the route; written under tenant.mu
	cutAt   atomic.Int64  // clock at the last cut
}

func newAdaptiveLimit() *adaptiveLimit {
	a := new(adaptiveLimit)
	a.cutAt.Store(math.MinInt64)
	return a
}

// whole returns the limit as a bulkhead: its whole part, at least 1 and
// at most the ceiling.
func (a *adaptiveLimit) whole() int32 {
	return max(min(int32(math.Float64frombits(a.limit.Load())), a.ceiling.Load()), 1)
}

// adaptiveWhole returns a's whole limit, or 0 if a is nil.
func adaptiveWhole(a *adaptiveLimit) int {
	if a == nil {
		return 0
	}
	return int(a.whole())
}

// setCeilingLocked sets the top of the limit from route s, starting the
// limit there if it had none. The caller holds the tenant's mu.
func (a *adaptiveLimit) setCeilingLocked(s routeShape) {
	ceiling := s.maxLeases
	if ceiling == 0 {
		ceiling = int32(min(s.key.poolSize, leaseMask))
	}
	a.ceiling.Store(ceiling)
	for {
		old := a.limit.Load()
		lim := math.Float64frombits(old)
		if old != 0 && lim <= float64(ceiling) {
			return
		}
		if a.limit.CompareAndSwap(old, math.Float64bits(float64(ceiling))) {
			return
		}
	}
}

// adapt feeds t's adaptive limit a lease granted at start and released
// now, and publishes a new whole limit in t.maxLeases, waking a caller
// waiting at the bulkhead if it rose.
func (m *Manager) adapt(t *tenant, start int64) {
	a := t.adapt
	now := m.clock.now()
	slow := now-start > int64(m.cfg.adaptiveTarget)
	for slow { // claim the round's cut, or find it claimed
		cut := a.cutAt.Load()
		if start < cut {
			return // granted before the last cut, which answered its round
		}
		if a.cutAt.CompareAndSwap(cut, now) {
			break
		}
	}
	for {
		old := a.limit.Load()
		if old == 0 {
			return // no route yet
		}
		lim := math.Float64frombits(old)
		next := lim + 1/lim
		if slow {
			next = lim * adaptiveBackoff
		}
		next = min(max(next, 1), float64(a.ceiling.Load()))
		if !a.limit.CompareAndSwap(old, math.Float64bits(next)) {
			continue
		}
		if int32(next) != int32(lim) {
			t.mu.Lock()
			t.maxLeases.Store(a.whole()) // the latest, whichever update got here last
			t.wakeLocked()
			t.mu.Unlock()
		}
		return
	}
}
