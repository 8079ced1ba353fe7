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
	causeLRU    cause = iota // to stay within MaxClients
	causeIdle                // its tenants were idle
	causeApp                 // Manager.Evict
	causeClose               // Manager.Close
	causeBudget              // to make room in the connection budget
	causeRoute               // its tenants moved to another client
	numCauses
)

// Evict removes tenantID from the cache: its next Acquire resolves its route
// again and, under the default strategy, creates a fresh client. A client
// left with no tenants is evicted too: if it has no leases it is
// disconnected before Evict returns, and the Disconnect error is returned;
// otherwise it is disconnected in the background after its last lease is
// released. With a shared or grouped strategy, the client stays while other
// tenants use it.
//
// Errors wrap [ErrTenantNotFound], [ErrInvalidTenant] or [ErrClosed].
func (m *Manager) Evict(ctx context.Context, tenantID string) error {
	m.mu.Lock()
	t := m.tenants[tenantID]
	closed := m.closed
	bound := t != nil && t.c != nil
	var idle *client
	if t != nil {
		if t.leases() > 0 {
			m.tenants[tenantID] = t.unbound() // keep the bulkhead counting the live leases
		}
		idle = m.retireRecordLocked(t, causeApp)
	}
	m.mu.Unlock()
	switch {
	case idle != nil:
		return m.disconnect(ctx, idle)
	case bound:
		return nil
	case closed:
		return ErrClosed
	}
	if err := m.cfg.validateTenant(tenantID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTenant, err)
	}
	return fmt.Errorf("%w: no cached client", ErrTenantNotFound)
}

// retireRecordLocked takes t out of the cache, unless the caller already put
// a successor in its place. A client left with no records is retired; the
// client is returned if the caller must disconnect it after unlocking m.mu.
// The caller holds m.mu.
func (m *Manager) retireRecordLocked(t *tenant, why cause) (disconnect *client) {
	if m.tenants[t.id] == t {
		delete(m.tenants, t.id)
	}
	m.retiredAcquires += t.acquires.Load()
	c := t.c
	if c == nil {
		t.state.Or(retiredBit)
		return nil
	}
	delete(c.members, t.id)
	if t.state.Or(retiredBit) == 0 {
		disconnect = m.drainedLocked(t)
	} else {
		m.draining[t] = struct{}{}
	}
	if len(c.members) == 0 && m.clients[c.key] == c {
		if d := m.retireClientLocked(c, why); d != nil {
			disconnect = d
		}
	}
	return disconnect
}

// retireClientLocked takes c out of the cache with its records; leased
// records give way to unbound copies that keep their bulkheads.
// It returns c if no lease holds it, for the caller to disconnect after
// unlocking m.mu; otherwise the last Release does. The caller holds m.mu.
func (m *Manager) retireClientLocked(c *client, why cause) (disconnect *client) {
	delete(m.clients, c.key)
	m.retiring[c] = struct{}{}
	m.pending.Add(1)
	m.evicted[why].Add(1)
	c.cause = why
	for _, t := range c.members {
		// A leased record gets an unbound successor, so its bulkhead keeps
		// counting the live leases; an unleased one just goes, so records
		// stay bounded by clients and leases, not by tenants seen.
		if m.tenants[t.id] == t && t.leases() > 0 && !m.closed {
			m.tenants[t.id] = t.unbound()
		}
		m.retireRecordLocked(t, why) // cannot retire c again: it left m.clients
	}
	if c.refs.Add(-1) == 0 {
		return c
	}
	return nil
}

// drainedLocked accounts for a retired record whose last lease ended,
// returning its client if that was the client's last reference. The caller
// holds m.mu.
func (m *Manager) drainedLocked(t *tenant) (disconnect *client) {
	delete(m.draining, t)
	if t.c.refs.Add(-1) == 0 {
		return t.c
	}
	return nil
}

// drained is drainedLocked for Release, which holds no lock. It runs only
// for records retired while leased.
func (m *Manager) drained(t *tenant) {
	m.mu.Lock()
	c := m.drainedLocked(t)
	m.mu.Unlock()
	if c != nil && c.closing.CompareAndSwap(false, true) {
		go m.disconnectClaimed(context.Background(), c) // do not block the caller
	}
}

// lruClientLocked picks the client to evict: the least recently used
// unleased client, or if all are leased and unleasedOnly is false, the least
// recently used. The scan is O(clients + tenants) and runs only when a
// client is created at the cap or the budget is short; it keeps recency a
// plain atomic store on the hot path instead of a list update under an
// exclusive lock. The caller holds m.mu.
func (m *Manager) lruClientLocked(unleasedOnly bool) *client {
	var idle, any *client
	var idleAt, anyAt int64
	for _, c := range m.clients {
		leased, used := c.usageLocked()
		if any == nil || used < anyAt {
			any, anyAt = c, used
		}
		if !leased && (idle == nil || used < idleAt) {
			idle, idleAt = c, used
		}
	}
	if idle != nil || unleasedOnly {
		return idle
	}
	return any
}

// disconnect claims c and disconnects it; it does nothing if c was claimed
// already.
func (m *Manager) disconnect(ctx context.Context, c *client) error {
	if !c.closing.CompareAndSwap(false, true) {
		return nil
	}
	return m.disconnectClaimed(ctx, c)
}

// disconnectClaimed disconnects c, which the caller claimed through c.closing.
func (m *Manager) disconnectClaimed(ctx context.Context, c *client) error {
	if c.pool.inUse.Load() > 0 {
		m.disconnectsBusy.Add(1) // a cursor outlived its lease, or Close cut leases short
	}
	err := disconnectClient(ctx, c.mc, m.cfg.disconnectTimeout)
	m.mu.Lock()
	delete(m.retiring, c)
	m.unreserveLocked(c.cost)
	m.mu.Unlock()
	m.disconnects.Add(1)
	if err != nil {
		m.disconnectErrors.Add(1)
		m.cfg.logger.Warn("mongotenant: disconnect failed", m.tenantAttr(c.key.group), "error", err)
		if c.cause == causeClose {
			m.closeErrsMu.Lock()
			m.closeErrs = append(m.closeErrs, err)
			m.closeErrsMu.Unlock()
		}
	} else {
		m.cfg.logger.Debug("mongotenant: client disconnected", "group", c.key.group)
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
