package mongotenant

import "time"

// Stats is a snapshot of a [Manager], like [database/sql.DBStats]. Gauges
// describe the moment of the call; counters run from [New].
type Stats struct {
	MaxClients int // the configured cap; 0 means none

	// Gauges.
	Clients          int // cached clients, at most MaxClients
	Retiring         int // evicted clients still serving leases; each disconnects after its last Release
	Leases           int // outstanding leases
	OpenConnections  int // pooled connections open across all clients, monitoring sockets excluded
	InUseConnections int // pooled connections checked out

	// Counters.
	Created      uint64 // clients created
	Hits         uint64 // acquisitions served by a cached client
	Misses       uint64 // acquisitions that created a client or waited for one being created
	Evicted      uint64 // clients removed from the cache: the sum of the four below
	EvictedLRU   uint64 // removed to stay within MaxClients
	EvictedIdle  uint64 // removed by the idle reaper
	EvictedByApp uint64 // removed by Manager.Evict
	EvictedClose uint64 // removed by Manager.Close

	Disconnects      uint64 // clients disconnected
	DisconnectErrors uint64 // disconnects that returned an error (the client is dropped all the same)
}

// TenantStats is a snapshot of one tenant's cached client. The pool figures
// come from the driver's pool events and cover this client only.
type TenantStats struct {
	Database string    // the tenant's database name
	Created  time.Time // when the client was created
	LastUsed time.Time // the last Release, or Created
	Leases   int       // outstanding leases
	Acquires uint64    // leases granted on this client

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
// every client, so it costs O(clients); do not call it per request.
func (m *Manager) Stats() Stats {
	s := Stats{
		MaxClients:       m.cfg.maxClients,
		Created:          m.created.Load(),
		Misses:           m.misses.Load(),
		EvictedLRU:       m.evicted[causeLRU].Load(),
		EvictedIdle:      m.evicted[causeIdle].Load(),
		EvictedByApp:     m.evicted[causeApp].Load(),
		EvictedClose:     m.evicted[causeClose].Load(),
		Disconnects:      m.disconnects.Load(),
		DisconnectErrors: m.disconnectErrors.Load(),
	}
	s.Evicted = s.EvictedLRU + s.EvictedIdle + s.EvictedByApp + s.EvictedClose

	m.mu.RLock()
	defer m.mu.RUnlock()
	s.Clients = len(m.tenants)
	s.Retiring = len(m.retiring)
	acquires := m.retiredAcquires
	add := func(t *tenant) {
		s.Leases += t.leases()
		s.OpenConnections += int(t.pool.open.Load())
		s.InUseConnections += int(t.pool.inUse.Load())
	}
	for _, t := range m.tenants {
		add(t)
		acquires += t.acquires.Load()
	}
	for t := range m.retiring {
		add(t)
	}
	// Every granted lease is a hit or a miss; counting hits this way keeps a
	// shared counter off the hot path.
	s.Hits = acquires - min(acquires, s.Misses)
	return s
}

// TenantStats returns a snapshot of tenantID's cached client, and false if
// the Manager holds none.
func (m *Manager) TenantStats(tenantID string) (TenantStats, bool) {
	m.mu.RLock()
	t, ok := m.tenants[tenantID]
	m.mu.RUnlock()
	if !ok {
		return TenantStats{}, false
	}
	p := &t.pool
	return TenantStats{
		Database:         t.db.Name(),
		Created:          m.wallTime(t.created),
		LastUsed:         m.wallTime(t.lastUsed.Load()),
		Leases:           t.leases(),
		Acquires:         t.acquires.Load(),
		PoolSize:         m.poolSize,
		OpenConnections:  int(p.open.Load()),
		InUseConnections: int(p.inUse.Load()),
		CheckOuts:        p.checkOuts.Load(),
		CheckOutFailures: p.checkFails.Load(),
		CheckOutWait:     time.Duration(p.waitTotal.Load()),
		CheckOutWaitMax:  time.Duration(p.waitMax.Load()),
		PoolClears:       p.poolCleared.Load(),
	}, true
}
