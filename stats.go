package mongotenant

import "time"

// Stats is a snapshot of a [Manager], like [database/sql.DBStats]. Gauges
// describe the moment of the call; counters run from [New].
type Stats struct {
	MaxClients  int // the configured cap; 0 means none
	BudgetLimit int // the connection budget in sockets; 0 means none

	// Gauges.
	Clients          int // cached clients, at most MaxClients
	Retiring         int // clients out of the cache not yet done: serving their last leases, or disconnecting
	Tenants          int // tenants the Manager holds: bound to a client, leased, or being acquired
	Leases           int // outstanding leases, those waiting for a fair turn included
	Waiting          int // acquisitions waiting now: for the bulkhead, a fair turn, the budget, or another caller's route, client or init
	BudgetUsed       int // sockets charged to the budget by open clients (see WithConnectionBudget)
	OpenConnections  int // pooled connections open across all clients, monitoring sockets excluded
	InUseConnections int // pooled connections checked out

	// Counters of clients.
	Created   uint64 // clients connected
	Recycled  uint64 // evicted clients handed to a new tenant instead of being disconnected (see WithClientRecycling)
	Transient uint64 // clients ForEach connected for tenants without a cached client, never cached

	// Counters of acquisitions. Every Acquire is a hit, a miss or a refusal.
	Hits         uint64        // leases served from the cache: no route resolved, no client bound or created, no init run, no wait
	Misses       uint64        // leases served after resolving a route, binding or creating a client, running init, or waiting
	Waits        uint64        // acquisitions that waited: for the bulkhead, a fair turn, the budget, or another caller's route, client or init
	WaitDuration time.Duration // the time those acquisitions spent, from their first wait to their end

	Refused        uint64 // failed acquisitions: the sum of the eight below
	RefusedBusy    uint64 // ErrTenantBusy: the tenant's bulkhead stayed full, or its fair turn did not come, until ctx ended
	RefusedBudget  uint64 // ErrBudgetExceeded
	RefusedInvalid uint64 // ErrInvalidTenant
	RefusedRoute   uint64 // ErrRoute
	RefusedCreate  uint64 // ErrCreateClient
	RefusedInit    uint64 // ErrInit
	RefusedClosed  uint64 // ErrClosed
	RefusedContext uint64 // ctx ended while waiting for another caller's route, client or init

	// Counters of evictions.
	Evicted        uint64 // clients removed from the cache: the sum of the six below
	EvictedLRU     uint64 // removed to stay within MaxClients
	EvictedIdle    uint64 // removed because their tenants were idle
	EvictedByApp   uint64 // left without tenants by Manager.Evict or Manager.Forget
	EvictedClose   uint64 // removed by Manager.Close
	EvictedBudget  uint64 // removed to make room in the connection budget
	EvictedRoute   uint64 // left without tenants by a route change (a new tier, say)
	ExpiredTenants uint64 // tenants forgotten after IdleTimeout without a lease

	// Counters of routes and disconnects.
	RouteRefreshes     uint64 // routes resolved again, after the route TTL or by Manager.Refresh
	RouteRefreshErrors uint64 // background refreshes that failed or panicked; the old route was kept
	Disconnects        uint64 // clients disconnected
	DisconnectsBusy    uint64 // disconnects that found pooled connections checked out: cursors that outlived their lease, or Close cutting leases short
	DisconnectErrors   uint64 // disconnects that returned an error (the client is dropped all the same)
}

// TenantStats is a snapshot of one tenant and its client. The pool figures
// come from the driver's pool events and cover the whole client, which
// other tenants share under a grouped or shared strategy; for a recycled
// client they start when this tenant's client took it over.
type TenantStats struct {
	Database  string    // the tenant's database name
	Group     string    // the client group, from the strategy
	Tier      string    // the tenant's tier, if tiers are in use
	MaxLeases int       // the tenant's bulkhead; 0 means none
	Limit     int       // with WithAdaptiveLimit, the tenant's limit now; 0 without
	Created   time.Time // when the client was created or took a recycled one over
	LastUsed  time.Time // the tenant's last Release, or when it was first acquired, to within 10 ms
	Leases    int       // the tenant's outstanding leases, on its current client and any it left
	Sharing   int       // tenants on the same client, this one included

	PoolSize         uint64        // the client's maxPoolSize
	OpenConnections  int           // pooled connections open
	InUseConnections int           // pooled connections checked out
	CheckOuts        uint64        // successful connection check-outs
	CheckOutFailures uint64        // failed check-outs (timeout, connection error, pool closed)
	CheckOutWait     time.Duration // total time spent checking out, queue wait and dial included
	CheckOutWaitMax  time.Duration // the longest single check-out in the client's life
	PoolClears       uint64        // pool clears after network errors
}

// Stats returns a snapshot of the Manager. It costs O(clients), whatever
// the number of tenants: well under a microsecond for a hundred clients
// (BenchmarkStats).
func (m *Manager) Stats() Stats {
	s := Stats{
		MaxClients:         m.cfg.maxClients,
		BudgetLimit:        m.cfg.budget,
		Tenants:            int(m.nTenants.Load()),
		Waiting:            int(m.waiting.Load()),
		Created:            m.created.Load(),
		Recycled:           m.recycled.Load(),
		Transient:          m.transients.Load(),
		Waits:              m.waits.Load(),
		WaitDuration:       time.Duration(m.waitTime.Load()),
		RefusedBusy:        m.refused[refusedBusy].Load(),
		RefusedBudget:      m.refused[refusedBudget].Load(),
		RefusedInvalid:     m.refused[refusedInvalid].Load(),
		RefusedRoute:       m.refused[refusedRoute].Load(),
		RefusedCreate:      m.refused[refusedCreate].Load(),
		RefusedInit:        m.refused[refusedInit].Load(),
		RefusedClosed:      m.refused[refusedClosed].Load(),
		RefusedContext:     m.refused[refusedContext].Load(),
		EvictedLRU:         m.evicted[EvictionLRU].Load(),
		EvictedIdle:        m.evicted[EvictionIdle].Load(),
		EvictedByApp:       m.evicted[EvictionByApp].Load(),
		EvictedClose:       m.evicted[EvictionClose].Load(),
		EvictedBudget:      m.evicted[EvictionBudget].Load(),
		EvictedRoute:       m.evicted[EvictionRoute].Load(),
		ExpiredTenants:     m.expired.Load(),
		RouteRefreshes:     m.refreshes.Load(),
		RouteRefreshErrors: m.refreshErrors.Load(),
		Disconnects:        m.disconnects.Load(),
		DisconnectsBusy:    m.disconnectsBusy.Load(),
		DisconnectErrors:   m.disconnectErrors.Load(),
	}
	s.Refused = s.RefusedBusy + s.RefusedBudget + s.RefusedInvalid + s.RefusedRoute +
		s.RefusedCreate + s.RefusedInit + s.RefusedClosed + s.RefusedContext
	s.Evicted = s.EvictedLRU + s.EvictedIdle + s.EvictedByApp + s.EvictedClose + s.EvictedBudget + s.EvictedRoute

	hits, releases := m.counters.sum()
	s.Hits = hits
	s.Leases = int(hits + m.slowGrants.Load() - releases)
	s.Misses = m.misses.Load()

	m.mu.Lock()
	defer m.mu.Unlock()
	s.Clients = len(m.cached)
	s.Retiring = len(m.retiring)
	s.BudgetUsed = m.budgetUsed
	for _, c := range m.cached {
		s.OpenConnections += int(c.pool.open.Load())
		s.InUseConnections += int(c.pool.inUse.Load())
	}
	for c := range m.retiring {
		s.OpenConnections += int(c.pool.open.Load())
		s.InUseConnections += int(c.pool.inUse.Load())
	}
	return s
}

// TenantStats returns a snapshot of tenantID and its client, and false if
// the tenant has no client.
func (m *Manager) TenantStats(tenantID string) (TenantStats, bool) {
	t := m.tenants.load(tenantID)
	if t == nil {
		return TenantStats{}, false
	}
	return m.tenantStats(t)
}

// tenantStats returns a snapshot of t, and false if t has no client.
func (m *Manager) tenantStats(t *tenant) (TenantStats, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.cur.Load()
	if t.phase != phaseBound || b == nil {
		return TenantStats{}, false
	}
	r, c, p := t.route.Value(), b.c, b.c.pool
	m.mu.Lock()
	sharing := c.nMembers
	m.mu.Unlock()
	return TenantStats{
		Database:         b.name,
		Group:            r.group,
		Tier:             r.tier,
		MaxLeases:        int(r.maxLeases),
		Limit:            adaptiveWhole(t.adapt),
		Created:          m.clock.wall(c.created),
		LastUsed:         m.clock.wall(t.lastUsed.Load()),
		Leases:           int(leasesOf(t.word.Load()) + t.carried.Load()),
		Sharing:          sharing,
		PoolSize:         c.key.poolSize,
		OpenConnections:  int(p.open.Load()),
		InUseConnections: int(p.inUse.Load()),
		CheckOuts:        p.checkOuts.Load() - c.base.checkOuts,
		CheckOutFailures: p.checkFails.Load() - c.base.checkFails,
		CheckOutWait:     time.Duration(p.waitTotal.Load() - c.base.waitTotal),
		CheckOutWaitMax:  time.Duration(p.waitMax.Load()),
		PoolClears:       p.poolCleared.Load() - c.base.poolCleared,
	}, true
}
