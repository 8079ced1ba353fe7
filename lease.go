package mongotenant

import (
	"context"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// A Lease keeps one tenant's client connected while the holder uses it.
// Obtain it from [Manager.Acquire] and call [Lease.Release] when done, usually
// with defer. The client and database must not be used after Release.
//
// A Lease is safe for concurrent use; Release may be called more than once.
type Lease struct {
	t        *tenant
	released atomic.Bool
}

// Database returns the tenant's database.
func (l *Lease) Database() *mongo.Database { return l.t.db }

// Client returns the tenant's client, for sessions and transactions. Do not
// Disconnect it: the Manager owns it.
func (l *Lease) Client() *mongo.Client { return l.t.client }

// TenantID returns the tenant the lease is for.
func (l *Lease) TenantID() string { return l.t.id }

// Release ends the lease. Only the first call has an effect.
func (l *Lease) Release() {
	if l.t == nil || !l.released.CompareAndSwap(false, true) {
		return
	}
	t := l.t
	t.lastUsed.Store(t.m.now())
	if t.state.Add(-1) == retiredBit && t.closing.CompareAndSwap(false, true) {
		go t.m.disconnectClaimed(context.Background(), t) // last lease of an evicted client; do not block the caller
	}
}
