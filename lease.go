package mongotenant

import (
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// A Lease keeps one tenant's client connected, and holds one slot of the
// tenant's bulkhead, while the holder uses it. Obtain it from
// [Manager.Acquire] and call [Lease.Release] when done, usually with defer.
// The client and database must not be used after Release.
//
// A Lease is safe for concurrent use; Release may be called more than once.
type Lease struct {
	t        *tenant
	released atomic.Bool
}

// Database returns the tenant's database.
func (l *Lease) Database() *mongo.Database { return l.t.db }

// Client returns the tenant's client, for sessions and transactions. With a
// shared strategy other tenants use it too. Do not Disconnect it: the
// Manager owns it.
func (l *Lease) Client() *mongo.Client { return l.t.c.mc }

// TenantID returns the tenant the lease is for.
func (l *Lease) TenantID() string { return l.t.id }

// Release ends the lease. Only the first call has an effect.
func (l *Lease) Release() {
	if l.t == nil || !l.released.CompareAndSwap(false, true) {
		return
	}
	t := l.t
	m := t.c.m
	now := m.now()
	t.lastUsed.Store(now)
	t.exit()
	if t.state.Add(-1) == retiredBit {
		m.drained(t) // the last lease of a retired record
	}
	if m.refreshes {
		m.refreshLater(t, now)
	}
}
