package mongotenant

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// tenant is a tenant's record: its route, and once bound, its client and
// database, which never change. When the client is evicted or the route
// changes, the record is retired and an unbound copy takes its place, sharing
// its bulkhead so that every lease of the tenant counts against one limit.
type tenant struct {
	id    string
	route Route
	key   clientKey
	sem   chan struct{} // bulkhead: one slot per lease; nil when MaxLeases is 0

	c     *client         // set once under Manager.mu by bindLocked; nil while unbound
	db    *mongo.Database // set with c
	ready bool            // the tenant's init hook has run; protected by Manager.mu

	// The counters below are written by every lease. Reading the fields
	// above from a line another core is writing would cost the hot path a
	// second cache transfer, so they live on lines of their own.
	_ [64]byte

	state      atomic.Int64  // lease count | retiredBit
	acquires   atomic.Uint64 // leases granted
	lastUsed   atomic.Int64  // Manager clock, ns: creation, then each Release
	routed     atomic.Int64  // Manager clock when the route was last confirmed
	refreshing atomic.Bool   // a background route refresh is under way
}

func newTenant(id string, r Route, key clientKey, now int64) *tenant {
	t := &tenant{id: id, route: r, key: key}
	if r.MaxLeases > 0 {
		t.sem = make(chan struct{}, r.MaxLeases)
	}
	t.lastUsed.Store(now)
	t.routed.Store(now)
	return t
}

// unbound returns a fresh record with t's route and bulkhead, to take t's
// place when its client goes.
func (t *tenant) unbound() *tenant {
	n := &tenant{id: t.id, route: t.route, key: t.key, sem: t.sem, ready: t.ready}
	n.lastUsed.Store(t.lastUsed.Load())
	n.routed.Store(t.routed.Load())
	return n
}

func (t *tenant) leases() int { return int(t.state.Load() &^ retiredBit) }

// tryEnter takes a bulkhead slot without waiting.
func (t *tenant) tryEnter() bool {
	if t.sem == nil {
		return true
	}
	select {
	case t.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// enter takes a bulkhead slot, waiting until ctx is done.
func (t *tenant) enter(ctx context.Context) error {
	if t.tryEnter() {
		return nil
	}
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %d leases in use: %w", ErrTenantBusy, cap(t.sem), context.Cause(ctx))
	}
}

// exit gives the slot back.
func (t *tenant) exit() {
	if t.sem != nil {
		<-t.sem
	}
}
