package mongotenant

import (
	"context"
	"time"
)

// minReapInterval keeps the reaper from spinning when many tenants expire
// close together; reaping is late by at most this much.
const minReapInterval = time.Second

// startReaperLocked starts the idle reaper if idle reaping is on, there is a
// tenant to watch and the reaper is not running. Like database/sql's
// connection cleaner, it runs only while needed. The caller holds m.mu.
func (m *Manager) startReaperLocked() {
	if m.cfg.idleTimeout <= 0 || m.reaping || m.closed || len(m.tenants) == 0 {
		return
	}
	m.reaping = true
	m.background.Add(1)
	go m.reap()
}

// reap removes idle tenants until none is left or Close is called. A client
// goes when its last tenant does, so a dedicated client is disconnected when
// its tenant has been idle for IdleTimeout, and a shared one when all its
// tenants have.
func (m *Manager) reap() {
	defer m.background.Done()
	timeout := int64(m.cfg.idleTimeout)
	timer := time.NewTimer(m.cfg.idleTimeout)
	defer timer.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-timer.C:
		}
		m.mu.Lock()
		victims, next := idleVictims(m.tenants, m.now(), timeout)
		var idle []*client
		for _, t := range victims {
			if c := m.retireRecordLocked(t, causeIdle); c != nil {
				idle = append(idle, c)
			}
		}
		stop := m.closed || len(m.tenants) == 0
		if stop {
			m.reaping = false
		}
		m.mu.Unlock()
		for _, c := range idle {
			// In parallel: against a dead server each Disconnect can take the
			// server selection timeout.
			go m.disconnect(context.Background(), c)
		}
		if stop {
			return
		}
		timer.Reset(max(next, min(minReapInterval, m.cfg.idleTimeout)))
	}
}

// idleVictims is the reaper's decision, a pure function of the tenant
// records and the clock: the tenants without leases for at least timeout at
// now, and how long until the next one can expire. The caller holds m.mu,
// so no lease can begin; a caller holding only a bulkhead slot finds the
// record gone and starts again.
func idleVictims(tenants map[string]*tenant, now, timeout int64) (victims []*tenant, next time.Duration) {
	soonest := timeout // a leased tenant expires no sooner than timeout after its Release
	for _, t := range tenants {
		if t.state.Load() != 0 {
			continue
		}
		idle := now - t.lastUsed.Load()
		if idle >= timeout {
			victims = append(victims, t)
		} else {
			soonest = min(soonest, timeout-idle)
		}
	}
	return victims, time.Duration(soonest)
}
