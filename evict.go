package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// An EvictionCause says why a client left the cache, or a tenant left its
// client. Each has a counter in [Stats].
type EvictionCause int

const (
	EvictionLRU    EvictionCause = iota // to stay within MaxClients (Stats.EvictedLRU)
	EvictionIdle                        // its tenants were idle (Stats.EvictedIdle)
	EvictionByApp                       // Manager.Evict or Manager.Forget (Stats.EvictedByApp)
	EvictionClose                       // Manager.Close (Stats.EvictedClose)
	EvictionBudget                      // to make room in the connection budget (Stats.EvictedBudget)
	EvictionRoute                       // its tenants moved to another client (Stats.EvictedRoute)
	numCauses
)

// String returns the cause's name, as used in logs and metric attributes:
// lru, idle, app, close, budget or route.
func (c EvictionCause) String() string {
	if c < 0 || c >= numCauses {
		return "unknown"
	}
	return [...]string{"lru", "idle", "app", "close", "budget", "route"}[c]
}

// Evict removes tenantID from the cache: its next Acquire resolves its
// route again and binds it to a client afresh (under the default strategy,
// a new one). Leases already granted stay good until released. A client left
// with no tenants is evicted too: if it has no leases it is disconnected
// before Evict returns; otherwise it is disconnected in the background after
// its last lease. With a shared or grouped strategy, the client stays while
// other tenants use it.
//
// Errors wrap [ErrTenantNotFound] (the Manager holds nothing for the
// tenant), [ErrInvalidTenant], [ErrClosed], or ctx's error if ctx ended
// while the client was disconnecting. A failed Disconnect is counted in
// Stats.DisconnectErrors and logged, not returned: the client is gone all
// the same.
func (m *Manager) Evict(ctx context.Context, tenantID string) error {
	return m.evict(ctx, tenantID, false)
}

// Forget is Evict that also forgets that the tenant was initialized, so
// that the init hook ([WithInit]) runs again before the tenant's next lease:
// call it after dropping or re-provisioning a tenant's database. Unlike
// Evict it returns nil for a tenant the Manager does not hold. Errors wrap
// [ErrInvalidTenant], [ErrClosed], or ctx's error.
func (m *Manager) Forget(ctx context.Context, tenantID string) error {
	return m.evict(ctx, tenantID, true)
}

func (m *Manager) evict(ctx context.Context, tenantID string, forget bool) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if _, err := m.validate(tenantID); err != nil {
		return err
	}
	t := m.tenants.load(tenantID)
	var gone *client
	found := false
	if t != nil {
		t.mu.Lock()
		if t.phase != phaseDropped {
			found = true
			if forget {
				t.initDone = false
			}
			gone = m.unrouteLocked(t, EvictionByApp)
		}
		t.mu.Unlock()
	}
	if !found && !forget {
		return ErrTenantNotFound
	}
	if gone == nil {
		return nil
	}
	_ = m.disconnect(ctx, gone) // counted and logged
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	return nil
}

// unrouteLocked forgets t's route, for cause why: t leaves its client if
// bound, and its next Acquire resolves it afresh. It returns a client to
// disconnect after the caller unlocks. The caller holds t.mu; t is not
// dropped.
func (m *Manager) unrouteLocked(t *tenant, why EvictionCause) (disconnect *client) {
	if t.phase == phaseBound {
		disconnect = m.leaveClientLocked(t, why)
	}
	t.phase = phaseUnrouted
	t.routeVer++ // a route or init under way is stale
	m.dropIfUnusedLocked(t)
	return disconnect
}

// leaveClientLocked detaches bound t from its client. Its leases there
// stay good and drain the old binding; the client is retired for cause why
// if t was its last tenant. It returns a client to disconnect after the
// caller unlocks. The caller holds t.mu.
func (m *Manager) leaveClientLocked(t *tenant, why EvictionCause) (disconnect *client) {
	b, live := t.detachLocked()
	t.wakeLocked() // a queued caller binds the tenant again
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unbindLocked(t, b.c, live, why)
}

// unbindLocked accounts for t leaving c with live leases on it. The caller
// holds m.mu.
func (m *Manager) unbindLocked(t *tenant, c *client, live int32, why EvictionCause) (disconnect *client) {
	if t.in == c {
		m.unlinkLocked(t)
	}
	c.nMembers--
	if live == 0 { // else its pin stays until the binding drains
		disconnect = m.unpinLocked(c)
	}
	if c.state == clientCached && c.nMembers == 0 {
		if d := m.retireLocked(c, why); d != nil {
			disconnect = d
		}
	}
	return disconnect
}

// dropIfUnusedLocked drops t if nothing refers to it any more. The caller
// holds t.mu.
func (m *Manager) dropIfUnusedLocked(t *tenant) {
	if !t.unusedLocked() {
		return
	}
	t.phase = phaseDropped
	m.tenants.remove(t)
	m.expiry.remove(t)
	m.nTenants.Add(-1)
}

// linkLocked adds t to c's members. The caller holds m.mu.
func (m *Manager) linkLocked(t *tenant, c *client) {
	t.in = c
	c.members.pushBack(t)
	c.nMembers++
	c.pins++
	if c.orphaned {
		c.orphaned = false
		delete(m.orphans, c)
	}
}

// unlinkLocked takes t out of its client's member list. The caller holds
// m.mu.
func (m *Manager) unlinkLocked(t *tenant) {
	t.in.members.remove(t)
	t.in = nil
}

// cacheLocked adds c to the cached clients. The caller holds m.mu.
func (m *Manager) cacheLocked(c *client) {
	c.idx = len(m.cached)
	m.cached = append(m.cached, c)
}

// retireLocked takes cached c out of the cache for cause why. Its tenants
// stay bound to it until detachMembers detaches them, after the caller
// unlocks m.mu; meanwhile they may still be granted leases on it, which
// count like any other. It returns c if nothing pins it any more, for the
// caller to disconnect. The caller holds m.mu.
func (m *Manager) retireLocked(c *client, why EvictionCause) (disconnect *client) {
	delete(m.clients, c.key)
	last := m.cached[len(m.cached)-1]
	m.cached[c.idx], last.idx = last, c.idx
	m.cached[len(m.cached)-1] = nil
	m.cached = m.cached[:len(m.cached)-1]
	if c.orphaned {
		c.orphaned = false
		delete(m.orphans, c)
	}
	c.state, c.cause = clientRetired, why
	m.retiring[c] = struct{}{}
	m.evicted[why].Add(1) // logged when it is disconnected or recycled: not under m.mu
	return m.unpinLocked(c)
}

// detachMembers detaches the tenants still bound to retired client c, one
// at a time so that no lock is held for all of them. It returns clients to
// disconnect.
func (m *Manager) detachMembers(c *client) (disconnect []*client) {
	for {
		m.mu.Lock()
		t := c.members.head
		if t != nil {
			m.unlinkLocked(t)
		}
		m.mu.Unlock()
		if t == nil {
			return disconnect
		}
		t.mu.Lock()
		if b := t.cur.Load(); b != nil && b.c == c {
			if d := m.leaveClientLocked(t, c.cause); d != nil {
				disconnect = append(disconnect, d)
			}
		}
		m.dropIfUnusedLocked(t)
		t.mu.Unlock()
	}
}

// letGo finishes the retirement of victims that the caller retired with an
// extra pin held: it detaches their tenants, drops the pin, and disconnects
// those left unpinned.
func (m *Manager) letGo(victims []*client) { m.settle(victims, nil) }

// victimSamples is how many cached clients are drawn at random to choose a
// victim. The victim is the least recently used of the draw: on average
// more recently used than only 1 in 17 clients, and chosen at a cap of
// 4,000 for what it costs at a cap of 16. Up to that many clients, all are
// compared, which is exact LRU.
const victimSamples = 16

// victimLocked picks the cached client to evict, other than except: the
// least recently used unleased client of the draw. If the draw has no
// unleased client, all clients are searched for one; failing that, it
// returns nil if unleasedOnly, else the least recently used leased client
// of the draw. The caller holds m.mu.
func (m *Manager) victimLocked(unleasedOnly bool, except *client) *client {
	var idle, leased *client
	var idleAt, leasedAt int64
	now := m.coarse.Load()
	consider := func(c *client) {
		if c == except {
			return
		}
		used := c.recentUseLocked()
		if c.busyLocked(now) {
			if leased == nil || used < leasedAt {
				leased, leasedAt = c, used
			}
		} else if idle == nil || used < idleAt {
			idle, idleAt = c, used
		}
	}
	n := len(m.cached)
	if n <= victimSamples {
		for _, c := range m.cached {
			consider(c)
		}
	} else {
		for range victimSamples {
			consider(m.cached[m.rng.IntN(n)])
		}
		if idle == nil {
			for _, c := range m.cached {
				if c != except && !c.busyLocked(now) {
					consider(c)
				}
			}
		}
	}
	if idle != nil || unleasedOnly {
		return idle
	}
	return leased
}

// Drain evicts tenantID, as [Manager.Evict] does, and waits until the
// leases it held are released, and the work [Manager.ForEach] or
// [Manager.DoIsolated] does on it by transient clients ends, or ctx ends.
// It does not keep new work out: have the Routers refuse the tenant first
// (a catalog that marks it suspended, say), or it is bound again. It
// covers this Manager only: other processes drain their own. Errors wrap
// [ErrInvalidTenant], [ErrClosed], or ctx's error.
func (m *Manager) Drain(ctx context.Context, tenantID string) error {
	if err := m.evict(ctx, tenantID, false); err != nil && !errors.Is(err, ErrTenantNotFound) {
		return err
	}
	wait := time.Millisecond
	for m.leasesOf(tenantID) > 0 || m.transientBusy(tenantID) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mongotenant: drain: leases outstanding: %w", ctxError(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
	return nil
}

// leasesOf returns the leases tenantID holds, on its client and any it
// left.
func (m *Manager) leasesOf(tenantID string) int {
	t := m.tenants.load(tenantID)
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase == phaseDropped {
		return 0
	}
	return int(leasesOf(t.word.Load()) + t.carried.Load())
}
