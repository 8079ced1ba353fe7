package mongotenant

import "time"

// Stats is a snapshot of a [Manager], like [database/sql.DBStats]. Gauges
// describe the moment of the call; counters run from [New].
type Stats struct {
	MaxClients  int // the configured cap; 0 means none
	BudgetLimit int // the connection budget in sockets; 0 means none

	// Gauges.
	Clients          int // cached clients, at most MaxClients
	Retiring         int // evicted clients not yet disconnected: serving their last leases, or disconnecting
	Tenants          int // tenants with a cached route
	Leases           int // outstanding leases
	BudgetUsed       int // sockets charged to the budget by open clients (see WithConnectionBudget)
	OpenConnections  int // pooled connections open across all clients, monitoring sockets excluded
	InUseConnections int // pooled connections checked out

	// Counters.
	Created       uint64 // clients created
	Hits          uint64 // acquisitions served from the cache
	Misses        uint64 // acquisitions that resolved a route, created a client or waited
	Busy          uint64 // acquisitions refused with ErrTenantBusy
	Evicted       uint64 // clients removed from the cache: the sum of the six below
	EvictedLRU    uint64 // removed to stay within MaxClients
	EvictedIdle   uint64 // removed because their tenants were idle
	EvictedByApp  uint64 // removed by Manager.Evict
	EvictedClose  uint64 // removed by Manager.Close
	EvictedBudget uint64 // removed to make room in the connection budget
	EvictedRoute  uint64 // left without tenants by a route change (a new tier, say)

	Disconnects      uint64 // clients disconnected
	DisconnectsBusy  uint64 // disconnects that found pooled connections checked out: cursors that outlived their lease, or Close cutting leases short
	DisconnectErrors uint64 // disconnects that returned an error (the client is dropped all the same)
}

// TenantStats is a snapshot of one tenant and its client. The pool figures
// come from the driver's pool events and cover the whole client, which
// other tenants share under a grouped or shared strategy.
type TenantStats struct {
	Database  string    // the tenant's database name
	Group     string    // the client group, from the strategy
	Tier      string    // the tenant's tier, if tiers are in use
	MaxLeases int       // the tenant's bulkhead; 0 means none
	Created   time.Time // when the client was created
	LastUsed  time.Time // the tenant's last Release, or when its route was resolved
	Leases    int       // the tenant's outstanding leases
	Acquires  uint64    // leases granted to the tenant since its route was resolved
	Sharing   int       // tenants on the same client, this one included

	PoolSize         uint64        // the client's maxPoolSize
	OpenConnections  int           // pooled connections open
	InUseConnections int           // pooled connections checked out
	CheckOuts        uint64        // successful connection check-outs
	CheckOutFailures uint64        // failed check-outs (timeout, connection error, pool closed)
	CheckOutWait     time.Duration // total time spent checking out, queue wait and dial included
	CheckOutWaitMax  time.Duration // the longest single check-out
	PoolClears       uint64        // pool clears after network errors
}

// Stats returns a snapshot of the Manager. It takes the read lock and visits
// every client and tenant, so it costs O(clients + tenants); do not call it
// per request.
func (m *Manager) Stats() Stats {
	s := Stats{
		MaxClients:       m.cfg.maxClients,
		BudgetLimit:      m.cfg.budget,
		Created:          m.created.Load(),
		Misses:           m.misses.Load(),
		Busy:             m.busy.Load(),
		EvictedLRU:       m.evicted[causeLRU].Load(),
		EvictedIdle:      m.evicted[causeIdle].Load(),
		EvictedByApp:     m.evicted[causeApp].Load(),
		EvictedClose:     m.evicted[causeClose].Load(),
		EvictedBudget:    m.evicted[causeBudget].Load(),
		EvictedRoute:     m.evicted[causeRoute].Load(),
		Disconnects:      m.disconnects.Load(),
		DisconnectsBusy:  m.disconnectsBusy.Load(),
		DisconnectErrors: m.disconnectErrors.Load(),
	}
	s.Evicted = s.EvictedLRU + s.EvictedIdle + s.EvictedByApp + s.EvictedClose + s.EvictedBudget + s.EvictedRoute

	m.mu.RLock()
	defer m.mu.RUnlock()
	s.Clients = len(m.clients)
	s.Retiring = len(m.retiring)
	s.Tenants = len(m.tenants)
	s.BudgetUsed = m.budgetUsed
	add := func(c *client) {
		s.OpenConnections += int(c.pool.open.Load())
		s.InUseConnections += int(c.pool.inUse.Load())
	}
	for _, c := range m.clients {
		add(c)
	}
	for c := range m.retiring {
		add(c)
	}
	acquires := m.retiredAcquires
	for _, t := range m.tenants {
		acquires += t.acquires.Load()
		s.Leases += t.leases()
	}
	for t := range m.draining {
		s.Leases += t.leases()
	}
	// Every granted lease is a hit or a miss; counting hits this way keeps a
	// shared counter off the hot path.
	s.Hits = acquires - min(acquires, s.Misses)
	return s
}

// TenantStats returns a snapshot of tenantID and its client, and false if
// the Manager holds no client for it.
func (m *Manager) TenantStats(tenantID string) (TenantStats, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tenants[tenantID]
	if t == nil || t.c == nil {
		return TenantStats{}, false
	}
	c, p := t.c, &t.c.pool
	return TenantStats{
		Database:         t.route.Database,
		Group:            t.route.Group,
		Tier:             t.route.Tier,
		MaxLeases:        t.route.MaxLeases,
		Created:          m.wallTime(c.created),
		LastUsed:         m.wallTime(t.lastUsed.Load()),
		Leases:           t.leases(),
		Acquires:         t.acquires.Load(),
		Sharing:          len(c.members),
		PoolSize:         c.key.poolSize,
		OpenConnections:  int(p.open.Load()),
		InUseConnections: int(p.inUse.Load()),
		CheckOuts:        p.checkOuts.Load(),
		CheckOutFailures: p.checkFails.Load(),
		CheckOutWait:     time.Duration(p.waitTotal.Load()),
		CheckOutWaitMax:  time.Duration(p.waitMax.Load()),
		PoolClears:       p.poolCleared.Load(),
	}, true
}
