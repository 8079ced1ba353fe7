package mongotenant

import (
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// retiredBit marks a tenant that has left the cache. The low bits of
// tenant.state count its leases, so one atomic add tells Release whether it
// ended the last lease of a retired client.
const retiredBit int64 = 1 << 62

// tenant is one cached client and its accounting. Fields without a comment
// are set once, before the tenant is published in the Manager's map.
type tenant struct {
	m       *Manager
	id      string
	client  *mongo.Client
	db      *mongo.Database
	created int64 // Manager clock, ns

	state    atomic.Int64  // lease count | retiredBit
	closing  atomic.Bool   // set by whoever disconnects the client, exactly once
	lastUsed atomic.Int64  // Manager clock, ns: creation, then each Release
	acquires atomic.Uint64 // leases granted; incremented under Manager.mu.RLock
	pool     poolCounters
	cause    cause // why it left the cache; written under Manager.mu before retiredBit is set
}

func (t *tenant) leases() int { return int(t.state.Load() &^ retiredBit) }

// poolCounters is fed by the driver's PoolMonitor. The callbacks run
// synchronously on driver goroutines, so they only touch atomics.
type poolCounters struct {
	open        atomic.Int64
	inUse       atomic.Int64
	checkOuts   atomic.Uint64
	checkFails  atomic.Uint64
	waitTotal   atomic.Int64 // ns
	waitMax     atomic.Int64 // ns
	poolCleared atomic.Uint64
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

// poolMonitor feeds t's counters and then the user's monitor, if any.
func (t *tenant) poolMonitor(user *event.PoolMonitor) *event.PoolMonitor {
	if user == nil || user.Event == nil {
		return &event.PoolMonitor{Event: t.pool.observe}
	}
	return &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		t.pool.observe(e)
		user.Event(e)
	}}
}
