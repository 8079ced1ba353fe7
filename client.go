package mongotenant

import (
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// retiredBit marks a tenant record that has left the cache. The low bits of
// tenant.state count its leases, so one atomic add tells Release whether it
// ended the last lease of a retired record.
const retiredBit int64 = 1 << 62

// clientKey identifies a client. Tenants whose routes give the same key
// share the client.
type clientKey struct {
	cluster  string // deployment URI; "" is the Manager's
	group    string // from the strategy, or the tenant ID for per-tenant auth
	poolSize uint64
}

// client is one *mongo.Client and its accounting. Fields without a comment
// are set once, before the client is published.
type client struct {
	m       *Manager
	key     clientKey
	mc      *mongo.Client
	cost    int   // sockets charged to the connection budget
	created int64 // Manager clock, ns

	members map[string]*tenant // bound records still in the cache; protected by Manager.mu
	cause   cause              // why it left the cache; protected by Manager.mu

	// refs is 1 while the client is cached, plus one per bound record not
	// yet drained (in the cache, or retired with leases). Whoever takes it
	// to 0 disconnects the client. Leases are counted on the records, so
	// the hot path touches one contended cache line, not two.
	refs    atomic.Int64
	closing atomic.Bool // set by whoever disconnects the client, exactly once
	pool    poolCounters
}

// usageLocked reports whether any lease is live on cached client c, and
// when c was last used: its records' latest Release. Deriving these on the
// eviction path keeps them off the hot path. The caller holds Manager.mu.
func (c *client) usageLocked() (leased bool, lastUsed int64) {
	lastUsed = c.created
	leased = c.refs.Load() > int64(1+len(c.members)) // retired records still draining
	for _, t := range c.members {
		leased = leased || t.leases() > 0
		lastUsed = max(lastUsed, t.lastUsed.Load())
	}
	return leased, lastUsed
}

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
