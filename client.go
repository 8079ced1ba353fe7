package mongotenant

import (
	"context"
	"math/bits"
	"runtime"
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
	m         *Manager
	key       clientKey
	dedicated bool   // made for one tenant: its group is the tenant's ID, or it has the tenant's credentials
	cells     []cell // lease counters; len is a power of two
	mask      uint32 // len(cells) - 1

	// slowGrants counts leases granted by the slow path, which the cells'
	// hits leave out: a client's live leases are its hits and slowGrants
	// less its releases.
	slowGrants atomic.Uint64
	handles    handleCache

	// Set while the client is being created, read-only once it is cached.
	mc      *mongo.Client
	pool    *poolCounters // fed by the driver; moves with mc if the client is recycled
	base    poolSnapshot  // pool counters when this client took mc over, so that its figures start at 0
	cost    int           // sockets charged to the budget
	created int64         // clock

	reserved bool // cost is charged to the budget; guarded by Manager.mu

	// Guarded by Manager.mu.
	state    clientState
	cause    cause   // why it left the cache
	pins     int     // what keeps it connected: being cached, each bound tenant, each left binding with live leases
	members  *tenant // bound tenants, linked through tenant.next; taken by whoever retires the client
	nMembers int     // bound tenants, those still to be detached after retirement included
	idx      int     // position in Manager.cached while cached
	flight   *flight // callers waiting for its creation
	orphaned bool    // cached with no tenant: see Manager.orphans
}

func newClient(m *Manager, key clientKey, dedicated bool) *client {
	n := 1
	if !dedicated {
		n = sharedCells()
	}
	c := &client{m: m, key: key, dedicated: dedicated, cells: make([]cell, n), mask: uint32(n - 1)}
	c.handles.max = handlesPerClient
	if dedicated {
		c.handles.max = 1
	}
	return c
}

// sharedCells is the number of counter cells of a client that tenants
// share: enough that tenants busy on different cores seldom share one.
func sharedCells() int {
	n := 8 * runtime.GOMAXPROCS(0)
	return min(max(1<<bits.Len(uint(n-1)), 8), 256)
}

// A cell counts the leases of some of a client's tenants. A dedicated
// client has one; a shared client has several, and each tenant writes the
// one its tenant.cell names, so that tenants busy on different cores seldom
// write the same cache line. Stats sums cells: O(clients), not O(tenants).
type cell struct {
	hits     atomic.Uint64 // leases granted by the hot path
	releases atomic.Uint64
	lastUsed atomic.Int64 // coarse clock at the last Release
	_        [40]byte     // a cache line of its own
}

func (c *client) cell(i uint32) *cell { return &c.cells[i&c.mask] }

// leases counts the client's live leases. Releases are read first, so that
// every release counted has its grant counted too.
func (c *client) leases() int64 {
	var released, granted uint64
	for i := range c.cells {
		released += c.cells[i].releases.Load()
	}
	granted = c.slowGrants.Load()
	for i := range c.cells {
		granted += c.cells[i].hits.Load()
	}
	return int64(granted - released)
}

// hits counts the leases the hot path granted on the client.
func (c *client) hits() uint64 {
	var n uint64
	for i := range c.cells {
		n += c.cells[i].hits.Load()
	}
	return n
}

// lastUsed is the client's last Release, or its creation.
func (c *client) lastUsed() int64 {
	last := c.created
	for i := range c.cells {
		last = max(last, c.cells[i].lastUsed.Load())
	}
	return last
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

// forgetClientLocked lets go of a closed client whose last lease is gone,
// keeping its counts in the Manager's totals. The caller holds m.mu.
func (m *Manager) forgetClientLocked(c *client) {
	delete(m.retiring, c)
	m.foldedHits += c.hits()
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
	err := disconnectClient(ctx, m.cut, c.mc, m.cfg.disconnectTimeout)
	m.mu.Lock()
	c.state = clientClosed
	m.freeing -= c.cost
	if c.reserved {
		c.reserved = false
		m.unreserveLocked(c.cost)
	}
	if c.pins == 0 {
		m.forgetClientLocked(c)
	}
	if err != nil && c.cause == causeClose {
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
	m.pending.Done()
	return err
}

// dropUnpublished disconnects the *mongo.Client of c, which never reached
// the cache, if it has one, and returns its budget.
func (m *Manager) dropUnpublished(c *client) {
	if c.mc != nil {
		if err := disconnectClient(context.Background(), m.cut, c.mc, m.cfg.disconnectTimeout); err != nil {
			m.disconnectErrors.Add(1)
		}
		m.disconnects.Add(1)
	}
	m.mu.Lock()
	if c.reserved {
		c.reserved = false
		m.unreserveLocked(c.cost)
	}
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

// poolMonitor feeds the counters and then the user's monitor, if any.
func (p *poolCounters) poolMonitor(user *event.PoolMonitor) *event.PoolMonitor {
	if user == nil || user.Event == nil {
		return &event.PoolMonitor{Event: p.observe}
	}
	return &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		p.observe(e)
		user.Event(e)
	}}
}
