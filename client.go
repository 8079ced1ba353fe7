package mongotenant

import (
	"context"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// clientKey identifies a client: tenants whose routes give the same key
// share it.
type clientKey struct {
	cluster  string              // deployment URI; "" is the Manager's
	group    string              // from the strategy; "\x00tenant:<id>" with per-tenant credentials
	poolSize uint64              // the client's maxPoolSize
	auth     *options.Credential // per-tenant credentials, or nil
	// dedicated is set for a client made for one tenant (its group is the
	// tenant's ID, or it has the tenant's credentials), so that a tenant
	// whose ID is a shared group's name ("shared") does not take that
	// group's client for its own.
	dedicated bool
}

// clientState is where a client is in its life. It only moves forward.
type clientState uint8

const (
	clientCreating clientState = iota // in Manager.clients, being connected; callers wait on its flight
	clientCached                      // serving; counted in Stats.Clients
	clientRetired                     // out of the cache; serves its last leases, disconnected when its last pin goes
	clientClosing                     // Disconnect under way
	clientClosed                      // disconnected, or handed to another client by recycling
)

// client is one *mongo.Client and its accounting.
type client struct {
	m       *Manager
	key     clientKey
	handles handleCache
	gate    *fairGate // shares the client between its tenants (WithFairSharing), or nil

	// lastUsed is, for a client several tenants may share, the coarse
	// clock at a recent Release: Release stores it only when the clock has
	// moved, so that its tenants seldom write its line, which it has to
	// itself. A dedicated client's recency is its tenant's lastUsed.
	_        [64]byte
	lastUsed atomic.Int64
	_        [56]byte

	// Set while the client is being created, read-only once it is cached.
	mc      *mongo.Client
	pool    *poolCounters // fed by the driver; moves with mc if the client is recycled
	base    poolSnapshot  // pool counters when this client took mc over, so that its figures start at 0
	cost    int           // sockets charged to the budget
	created int64         // clock

	reserved bool // cost is charged to the budget; guarded by Manager.mu

	// Guarded by Manager.mu.
	state    clientState
	cause    EvictionCause         // why it left the cache
	pins     int                   // what keeps it connected: being cached, each bound tenant, each left binding with live leases
	members  list[tenant, *tenant] // bound tenants; taken by whoever retires the client
	nMembers int                   // bound tenants, those still to be detached after retirement included
	idx      int                   // position in Manager.cached while cached
	flight   *flight               // callers waiting for its creation
	orphaned bool                  // cached with no tenant: see Manager.orphans
}

func newClient(m *Manager, key clientKey) *client {
	c := &client{m: m, key: key, gate: m.cfg.fairGateFor(key, m.clock, m.watchGate)}
	c.handles.max = handlesPerClient
	if key.dedicated {
		c.handles.max = 1
	}
	return c
}

// group is c's group for events, GroupStats and metrics: never a tenant ID.
func (c *client) group() string {
	if c.key.dedicated {
		return DedicatedGroup
	}
	return c.key.group
}

// recentUse is c's last use: a recent Release, or its creation. The caller
// holds m.mu, which keeps c's members from changing.
func (c *client) recentUseLocked() int64 {
	last := max(c.created, c.lastUsed.Load())
	if t := c.members.head; c.key.dedicated && t != nil {
		last = max(last, t.lastUsed.Load())
	}
	return last
}

// busyLocked reports whether c may have a live lease, for choosing LRU
// victims. It is exact for a client with one tenant, from the tenant's
// lease count. A client shared by several tenants counts as busy if one
// of them released a lease within the last clockResolution: exact would
// mean visiting its tenants. Either way a busy client may be evicted when
// no other will do, and is then disconnected only after its last lease.
// The caller holds m.mu.
func (c *client) busyLocked(now int64) bool {
	switch {
	case c.pins > 1+c.nMembers: // a binding a tenant left still has leases
		return true
	case c.nMembers == 1:
		return leasesOf(c.members.head.word.Load()) > 0
	case c.nMembers == 0:
		return false
	}
	return now-c.lastUsed.Load() < int64(clockResolution)
}

// unpinLocked drops one of c's pins. When the last goes from a retired
// client, c is claimed for disconnection and returned, for the caller to
// disconnect after unlocking m.mu. The caller holds m.mu.
func (m *Manager) unpinLocked(c *client) (disconnect *client) {
	c.pins--
	if c.pins > 0 {
		return nil
	}
	switch c.state {
	case clientRetired:
		m.claimLocked(c)
		return c
	case clientClosed: // Close disconnected it while leased; its last lease is gone
		m.forgetClientLocked(c)
	}
	return nil
}

// claimLocked marks retired c for disconnection by the caller. The caller
// holds m.mu.
func (m *Manager) claimLocked(c *client) {
	c.state = clientClosing
	m.freeing += c.cost
}

// forgetClientLocked lets go of a closed client whose last lease is gone.
// The caller holds m.mu.
func (m *Manager) forgetClientLocked(c *client) {
	delete(m.retiring, c)
}

// disconnectAll disconnects claimed clients in parallel: against a dead
// server each Disconnect can take the server selection timeout.
func (m *Manager) disconnectAll(ctx context.Context, cs []*client) {
	for _, c := range cs {
		if c != nil {
			go m.disconnect(ctx, c) // m.pending counts it until it ends
		}
	}
}

// disconnect disconnects c, which the caller claimed, within the
// disconnect timeout, or sooner if ctx ends or Close cuts it short.
func (m *Manager) disconnect(ctx context.Context, c *client) error {
	if c.pool.inUse.Load() > 0 {
		m.disconnectsBusy.Add(1) // a cursor outlived its lease, or Close cut leases short
	}
	start := m.clock.now()
	err := disconnectClient(ctx, m.cut, c.mc, m.cfg.disconnectTimeout)
	m.mu.Lock()
	c.state = clientClosed
	m.freeing -= c.cost
	m.unreserveLocked(c)
	if c.pins == 0 {
		m.forgetClientLocked(c)
	}
	if err != nil && c.cause == EvictionClose {
		m.closeErrs = append(m.closeErrs, err)
	}
	m.mu.Unlock()
	m.disconnects.Add(1)
	if err != nil {
		m.disconnectErrors.Add(1)
		m.cfg.logger.Warn("mongotenant: disconnect failed", m.tenantAttr(c.key.group), "error", err)
	} else {
		m.cfg.logger.Debug("mongotenant: client disconnected", "group", c.key.group, "cause", c.cause.String())
	}
	m.clientDisconnected(c, c.cause, start, err) // set before c was claimed for disconnection
	m.pending.Done()
	return err
}

// dropUnpublished disconnects the *mongo.Client of c, which never reached
// the cache, if it has one, and returns its budget. A client that was
// connected (or recycled) misses the cache only if Close began meanwhile:
// hooks see it disconnected for that cause.
func (m *Manager) dropUnpublished(c *client) {
	if c.mc != nil {
		start := m.clock.now()
		err := disconnectClient(context.Background(), m.cut, c.mc, m.cfg.disconnectTimeout)
		if err != nil {
			m.disconnectErrors.Add(1)
		}
		m.disconnects.Add(1)
		m.clientDisconnected(c, EvictionClose, start, err)
	}
	m.mu.Lock()
	m.unreserveLocked(c)
	m.mu.Unlock()
}

// disconnectClient disconnects mc within timeout, or until ctx or cut ends.
//
// The context it passes has no deadline on purpose: given a deadline, the
// driver waits for checked-out connections and busy-spins a core while it
// waits. The Manager disconnects only clients without leases, so whatever is
// still checked out outlived its lease (an unclosed cursor) and is closed at
// once. Cancellation still bounds the endSessions round trip.
func disconnectClient(ctx, cut context.Context, mc *mongo.Client, timeout time.Duration) error {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopCtx := context.AfterFunc(ctx, cancel)
	defer stopCtx()
	stopCut := context.AfterFunc(cut, cancel)
	defer stopCut()
	timer := time.AfterFunc(timeout, cancel)
	defer timer.Stop()
	return mc.Disconnect(dctx)
}

// poolCounters is fed by the driver's PoolMonitor. The callbacks run
// synchronously on driver goroutines, so they only touch atomics.
type poolCounters struct {
	group       atomic.Pointer[group] // the group of the client that owns the pool now: recycling moves it
	open        atomic.Int64
	inUse       atomic.Int64
	checkOuts   atomic.Uint64
	checkFails  atomic.Uint64
	waitTotal   atomic.Int64 // ns
	waitMax     atomic.Int64 // ns; not reset by recycling
	poolCleared atomic.Uint64
}

// poolSnapshot is what poolCounters have counted up to some moment.
type poolSnapshot struct {
	checkOuts, checkFails, poolCleared uint64
	waitTotal                          int64
}

func (p *poolCounters) snapshot() poolSnapshot {
	return poolSnapshot{
		checkOuts:   p.checkOuts.Load(),
		checkFails:  p.checkFails.Load(),
		poolCleared: p.poolCleared.Load(),
		waitTotal:   p.waitTotal.Load(),
	}
}

func (p *poolCounters) observe(e *event.PoolEvent) {
	switch e.Type {
	case event.ConnectionCreated:
		p.open.Add(1)
	case event.ConnectionClosed:
		p.open.Add(-1)
	case event.ConnectionCheckedOut:
		p.inUse.Add(1)
		p.checkOuts.Add(1)
		p.wait(e)
	case event.ConnectionCheckedIn:
		p.inUse.Add(-1)
	case event.ConnectionCheckOutFailed:
		p.checkFails.Add(1)
		p.wait(e)
	case event.ConnectionPoolCleared:
		p.poolCleared.Add(1)
	}
}

func (p *poolCounters) wait(e *event.PoolEvent) {
	d := int64(e.Duration)
	p.waitTotal.Add(d)
	for {
		m := p.waitMax.Load()
		if d <= m || p.waitMax.CompareAndSwap(m, d) {
			return
		}
	}
}

// poolMonitor feeds the counters, then the PoolEvent hooks, then the
// user's monitor, if any.
func (m *Manager) poolMonitor(p *poolCounters, user *event.PoolMonitor) *event.PoolMonitor {
	if user != nil && user.Event == nil {
		user = nil
	}
	if user == nil && len(m.hooks.pool) == 0 {
		return &event.PoolMonitor{Event: p.observe}
	}
	return &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		p.observe(e)
		if len(m.hooks.pool) > 0 {
			m.poolEvent(p.group.Load().name, e)
		}
		if user != nil {
			user.Event(e)
		}
	}}
}
