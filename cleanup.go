package mongotenant

import (
	"context"
	"time"
)

// The housekeeper is the Manager's one long-lived goroutine. Like
// database/sql's connection cleaner it runs only while needed: while the
// Manager holds a tenant or an orphaned client. Every clockResolution it
// advances the coarse clock that Release stamps, forgets tenants idle for
// the idle timeout, retires orphaned clients, and lets fair gates forget
// the tenants they kept slots for too long, when callers wait on those.
// It takes no lock the hot path takes, and it works in batches, so reaping
// a million idle tenants never stalls an Acquire.

// Reaping is done in batches of reapBatch tenants, at most
// reapBatchesPerTick per tick.
const (
	reapBatch          = 256
	reapBatchesPerTick = 64
)

// startHousekeeper starts the housekeeper unless it runs.
func (m *Manager) startHousekeeper() {
	if m.housekeeping.Load() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed.Load() && m.housekeeping.CompareAndSwap(false, true) {
		m.advanceClock(m.clock.now()) // the coarse clock stood still while nobody kept it
		m.housekeeper.Add(1)
		go m.housekeep()
	}
}

func (m *Manager) housekeep() {
	defer m.housekeeper.Done()
	tick := m.clock.newTimer(clockResolution)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-tick.C():
		}
		now := m.clock.now()
		m.advanceClock(now)
		m.reapIdle(now)
		m.reapOrphans(now)
		m.pokeGates()
		if m.stopHousekeeperIfIdle() {
			return
		}
		tick.Reset(clockResolution)
	}
}

// stopHousekeeperIfIdle reports whether the housekeeper should stop
// because the Manager holds nothing for it to look after.
func (m *Manager) stopHousekeeperIfIdle() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nTenants.Load() > 0 || len(m.orphans) > 0 {
		return false
	}
	m.housekeeping.Store(false)
	if m.nTenants.Load() == 0 {
		return true
	}
	// A tenant arrived between the two loads; addTenant saw the housekeeper
	// running, or started another.
	return !m.housekeeping.CompareAndSwap(false, true)
}

// advanceClock moves the coarse clock forward to now.
func (m *Manager) advanceClock(now int64) {
	for {
		c := m.coarse.Load()
		if now <= c || m.coarse.CompareAndSwap(c, now) {
			return
		}
	}
}

// reapIdle forgets tenants idle for the idle timeout, taking those whose
// time has come from the expiry index.
func (m *Manager) reapIdle(now int64) {
	if m.expiry == nil {
		return
	}
	timeout := int64(m.cfg.idleTimeout)
	var buf [reapBatch]*tenant
	for range reapBatchesPerTick {
		batch := m.expiry.due(now, reapBatch, buf[:0])
		if len(batch) == 0 {
			return
		}
		var gone []*client
		for _, t := range batch {
			gone = append(gone, m.reapTenant(t, now, timeout))
		}
		m.disconnectAll(context.Background(), gone)
	}
}

// reapTenant forgets t if it has been idle for timeout at now, and files
// it again otherwise. It returns a client to disconnect.
func (m *Manager) reapTenant(t *tenant, now, timeout int64) (disconnect *client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase == phaseDropped {
		return nil
	}
	busy := t.refs > 0 || t.work != workNone || t.queue != nil ||
		t.carried.Load() > 0 || leasesOf(t.word.Load()) > 0
	lastUsed := t.lastUsed.Load()
	expire, next := idleDecision(busy, lastUsed, now, timeout)
	if expire && t.phase == phaseBound {
		b, ok := t.detachIfIdleLocked(lastUsed)
		if !ok { // a lease slipped in
			expire, next = false, now+timeout
		} else {
			m.mu.Lock()
			disconnect = m.unbindLocked(t, b.c, 0, EvictionIdle)
			m.mu.Unlock()
		}
	}
	if !expire {
		m.expiry.add(t, next)
		return nil
	}
	m.expired.Add(1)
	m.dropIfUnusedLocked(t)
	return disconnect
}

// idleDecision is the reaper's decision for one tenant, a pure function of
// its state and the clock: expire it now, or look at it again at next.
// lastUsed comes from the coarse clock, so it may be up to one
// clockResolution early; the decision allows for that, and never expires a
// tenant sooner than timeout after its last Release.
func idleDecision(busy bool, lastUsed, now, timeout int64) (expire bool, next int64) {
	if busy {
		return false, now + timeout // idle no sooner than timeout after its last lease ends
	}
	idleAt := lastUsed + timeout + int64(clockResolution)
	if now >= idleAt {
		return true, 0
	}
	return false, idleAt
}

// orphanLocked marks cached c as having no tenant: a client published for a
// tenant whose route changed meanwhile. Unless a tenant binds to it by the
// next tick, the housekeeper retires it. The caller holds m.mu.
func (m *Manager) orphanLocked(c *client) {
	c.orphaned = true
	m.orphans[c] = struct{}{}
}

// reapOrphans retires clients that stayed orphaned for a tick.
func (m *Manager) reapOrphans(now int64) {
	m.mu.Lock()
	var gone []*client
	for c := range m.orphans {
		if time.Duration(now-c.created) >= clockResolution {
			gone = append(gone, m.retireLocked(c, EvictionIdle))
		}
	}
	m.mu.Unlock()
	m.disconnectAll(context.Background(), gone)
}
