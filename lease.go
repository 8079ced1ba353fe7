package mongotenant

import (
	"context"
	"math"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// A Lease keeps one tenant's client connected, and holds one slot of the
// tenant's bulkhead and, with [WithFairSharing], one turn of its client's
// capacity, while the holder uses it. Obtain it from
// [Manager.Acquire] and call [Lease.Release] when done, usually with defer.
// The client and database must not be used after Release.
//
// A Lease is safe for concurrent use; Release may be called more than once.
type Lease struct {
	t    *tenant
	b    *binding   // the tenant's binding when the lease was granted
	cell *leaseCell // the cell that counted the grant: Release counts there too

	// stamp is the clock when the lease was granted, with
	// WithAdaptiveLimit (0 without), until Release swaps in leaseReleased:
	// one word for both keeps a Lease at 32 bytes.
	stamp atomic.Int64
}

// leaseReleased is a released Lease's stamp: clock times are never
// negative.
const leaseReleased = math.MinInt64

// Database returns the tenant's database. Calls on one lease return
// equivalent handles, usually the same one.
func (l *Lease) Database() *mongo.Database { return l.b.database() }

// Client returns the tenant's client, for sessions and transactions. With a
// shared strategy other tenants use it too. Do not Disconnect it: the
// Manager owns it.
func (l *Lease) Client() *mongo.Client { return l.b.c.mc }

// TenantID returns the tenant the lease is for.
func (l *Lease) TenantID() string { return l.t.id }

// Release ends the lease. Only the first call has an effect.
func (l *Lease) Release() {
	if l.b == nil {
		return
	}
	start := l.stamp.Swap(leaseReleased)
	if start == leaseReleased {
		return
	}
	m := l.b.c.m
	m.release(l.t, l.b, l.cell)
	if m.adaptive {
		m.adapt(l.t, start)
	}
}

// grant fills l with what an acquisition returned, and stamps the grant
// for the tenant's adaptive limit if there are adaptive limits and err is
// nil. It returns err.
func (l *Lease) grant(m *Manager, t *tenant, b *binding, cl *leaseCell, err error) error {
	l.t, l.b, l.cell = t, b, cl
	if m.adaptive && err == nil {
		l.stamp.Store(m.clock.now())
	}
	return err
}

// release ends a lease of t on binding b, and gives its turn at b's fair
// gate to the next in line.
func (m *Manager) release(t *tenant, b *binding, cl *leaseCell) {
	if b.gate != nil {
		b.gate.release(t, b.gen) // first: the lease still pins b's client
	}
	m.unlease(t, b, cl)
}

// unlease ends a lease of t on binding b, without its turn at b's fair
// gate: it had none, or gave it back. It stamps the coarse clock, not the
// real one: see clockResolution.
func (m *Manager) unlease(t *tenant, b *binding, cl *leaseCell) {
	now := m.coarse.Load()
	cl.releases.Add(1)
	if c := b.c; !c.key.dedicated && c.lastUsed.Load() < now {
		c.lastUsed.Store(now) // a dedicated client's recency is its tenant's
	}
	if t.lastUsed.Load() != now { // a Store is a locked instruction; the clock moves every 10 ms
		t.lastUsed.Store(now) // before the lease count drops: the reaper reads them in the other order
	}
	for {
		w := t.word.Load()
		if genOf(w) != b.gen {
			m.releaseDrained(t, b)
			break
		}
		if t.word.CompareAndSwap(w, w-1) {
			if w&waitersBit != 0 {
				t.mu.Lock()
				t.wakeLocked()
				t.mu.Unlock()
			}
			break
		}
	}
	if m.refreshRoutes && now-t.routedAt.Load() >= int64(m.cfg.routeTTL) {
		m.refreshLater(t)
	}
}

// releaseDrained ends a lease on a binding t has left. The last such lease
// unpins the binding's client, which may then be disconnected.
func (m *Manager) releaseDrained(t *tenant, b *binding) {
	var gone *client
	t.mu.Lock()
	b.draining--
	t.carried.Add(-1)
	if b.draining == 0 {
		m.mu.Lock()
		gone = m.unpinLocked(b.c)
		m.mu.Unlock()
	}
	t.wakeLocked()
	m.dropIfUnusedLocked(t)
	t.mu.Unlock()
	if gone != nil {
		go m.disconnect(context.Background(), gone) // do not make Release wait; m.pending counts it
	}
}
