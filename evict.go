package mongotenant

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// cause says why a client left the cache.
type cause int

const (
	causeLRU cause = iota
	causeIdle
	causeApp
	causeClose
	numCauses
)

// Evict removes tenantID's client from the cache; the next Acquire creates a
// fresh one. If the client has no leases it is disconnected before Evict
// returns, and the Disconnect error is returned. Otherwise Evict returns nil
// at once and the client is disconnected in the background after its last
// lease is released. A tenant whose client is being created may miss the
// eviction.
//
// Errors wrap [ErrTenantNotFound], [ErrInvalidTenant] or [ErrClosed].
func (m *Manager) Evict(ctx context.Context, tenantID string) error {
	m.mu.Lock()
	t, ok := m.tenants[tenantID]
	closed := m.closed
	idle := ok && m.retireLocked(t, causeApp)
	m.mu.Unlock()
	switch {
	case ok && idle:
		return m.disconnect(ctx, t)
	case ok:
		return nil
	case closed:
		return ErrClosed
	}
	if _, err := m.databaseName(tenantID); err != nil {
		return err
	}
	return fmt.Errorf("%w: no cached client", ErrTenantNotFound)
}

// lruVictimLocked picks the client to evict for a new one: the least recently
// used unleased client, or if all are leased, the least recently used. The
// scan is O(clients) and runs only when a client is created at the cap; it
// keeps recency a plain atomic store on the hot path instead of a list update
// under an exclusive lock. The caller holds m.mu and the cache is not empty.
func (m *Manager) lruVictimLocked() *tenant {
	var idle, any *tenant
	var idleAt, anyAt int64
	for _, t := range m.tenants {
		used := t.lastUsed.Load()
		if any == nil || used < anyAt {
			any, anyAt = t, used
		}
		if t.state.Load() == 0 && (idle == nil || used < idleAt) {
			idle, idleAt = t, used
		}
	}
	if idle != nil {
		return idle
	}
	return any
}

// retireLocked removes t from the cache. It reports whether t had no leases,
// in which case the caller must disconnect it after unlocking m.mu; otherwise
// t's last Release does. The caller holds m.mu.
func (m *Manager) retireLocked(t *tenant, why cause) (unleased bool) {
	delete(m.tenants, t.id)
	m.retiring[t] = struct{}{}
	m.retiredAcquires += t.acquires.Load()
	m.pending.Add(1)
	m.evicted[why].Add(1)
	t.cause = why
	return t.state.Or(retiredBit) == 0
}

// disconnect claims t and disconnects it; it does nothing if t was claimed
// already.
func (m *Manager) disconnect(ctx context.Context, t *tenant) error {
	if !t.closing.CompareAndSwap(false, true) {
		return nil
	}
	return m.disconnectClaimed(ctx, t)
}

// disconnectClaimed disconnects t, which the caller claimed through t.closing.
func (m *Manager) disconnectClaimed(ctx context.Context, t *tenant) error {
	err := disconnectClient(ctx, t.client, m.cfg.disconnectTimeout)
	m.mu.Lock()
	delete(m.retiring, t)
	m.mu.Unlock()
	m.disconnects.Add(1)
	if err != nil {
		m.disconnectErrors.Add(1)
		m.cfg.logger.Warn("mongotenant: disconnect failed", m.tenantAttr(t.id), "error", err)
		if t.cause == causeClose {
			m.closeErrsMu.Lock()
			m.closeErrs = append(m.closeErrs, err)
			m.closeErrsMu.Unlock()
		}
	} else {
		m.cfg.logger.Debug("mongotenant: client disconnected", "tenant", t.id)
	}
	m.pending.Done()
	return err
}

// disconnectClient disconnects c within timeout or until ctx is done.
//
// The context it passes has no deadline on purpose: given a deadline, the
// driver waits for checked-out connections and busy-spins a core while it
// waits. The Manager disconnects only clients without leases, so whatever is
// still checked out outlived its lease (an unclosed cursor) and is closed at
// once. Cancellation still bounds the endSessions round trip.
func disconnectClient(ctx context.Context, c *mongo.Client, timeout time.Duration) error {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	timer := time.AfterFunc(timeout, cancel)
	defer timer.Stop()
	return c.Disconnect(dctx)
}

// tenantAttr is the tenant attribute for log lines at Info and above: present
// only if the user opted in.
func (m *Manager) tenantAttr(id string) slog.Attr {
	if m.cfg.logTenantIDs {
		return slog.String("tenant", id)
	}
	return slog.Attr{}
}
