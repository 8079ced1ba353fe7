package mongotenant

import (
	"fmt"
	"time"
)

// BudgetPolicy says what Acquire does when a new client would exceed the
// connection budget even after idle clients are closed.
type BudgetPolicy int

const (
	// BudgetWait waits until enough sockets are freed or ctx ends.
	BudgetWait BudgetPolicy = iota
	// BudgetFailFast fails at once with ErrBudgetExceeded.
	BudgetFailFast
)

// WithConnectionBudget caps the sockets all clients may hold, counted per
// client as nodes × (monitoring sockets + pool size): what the client can
// open on the servers if every pool fills. Monitoring sockets are 1 per node
// in "poll" mode, 2 in "stream" or "auto", 0 behind a load balancer. When a
// new client would not fit, unleased clients are closed, least recently used
// first (or one of them is recycled for the new tenant, see
// [WithClientRecycling]); if that is not enough, policy decides. 0 means no
// budget (default).
func WithConnectionBudget(sockets int, policy BudgetPolicy) Option {
	return func(c *config) { c.budget, c.budgetPolicy = sockets, policy }
}

// WithNodes sets how many servers each client connects to, for the budget.
// Default: the number of hosts in the client's URI.
func WithNodes(n int) Option { return func(c *config) { c.nodes = n } }

// budgetRecheck is how often a caller waiting for budget looks for clients
// that became unleased, and so evictable. Release does not signal it: that
// would cost every lease.
const budgetRecheck = 5 * time.Millisecond

// reserve charges c.cost sockets to the budget for c, about to be created.
// To make room it retires unleased clients, least recently used first; it
// returns one of them instead if c can recycle it. Then it waits or fails
// as the policy says.
func (m *Manager) reserve(a *acquisition, c *client) (recycle *client, err error) {
	limit, cost := m.cfg.budget, c.cost
	if cost > limit {
		return nil, fmt.Errorf("%w: one client needs %d sockets, the budget is %d", ErrBudgetExceeded, cost, limit)
	}
	for {
		m.mu.Lock()
		if m.closed.Load() {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		if m.budgetUsed+cost <= limit {
			m.budgetUsed += cost
			c.reserved = true
			m.mu.Unlock()
			return nil, nil
		}
		var victims []*client
		held := 0 // sockets of victims being retired now: freed when they disconnect
		for m.budgetUsed-m.freeing-held+cost > limit {
			v := m.victimLocked(true, nil)
			if v == nil {
				break
			}
			v.pins++
			m.retireLocked(v, EvictionBudget)
			victims = append(victims, v)
			held += v.cost
		}
		fits := m.budgetUsed-m.freeing-held+cost <= limit
		used, freed := m.budgetUsed, m.budgetFreed
		m.mu.Unlock()

		if len(victims) > 0 {
			if v := m.settle(victims, c); v != nil {
				return v, nil // c takes over v's sockets
			}
			continue // they count as freeing now
		}
		if !fits && m.cfg.budgetPolicy == BudgetFailFast {
			return nil, fmt.Errorf("%w: %d of %d sockets held by leased clients", ErrBudgetExceeded, used, limit)
		}
		a.startWait()
		recheck := m.clock.newTimer(budgetRecheck)
		select {
		case <-freed:
		case <-recheck.C(): // a Release may have left a client unleased, and so evictable
		case <-m.done:
		case <-a.ctx.Done():
			recheck.Stop()
			a.endWait()
			return nil, fmt.Errorf("%w: waited for %d sockets: %w", ErrBudgetExceeded, cost, ctxError(a.ctx))
		}
		recheck.Stop()
		a.endWait()
	}
}

// unreserveLocked returns c's sockets to the budget, if they are charged
// to it, and wakes those waiting for them. The caller holds m.mu.
func (m *Manager) unreserveLocked(c *client) {
	if !c.reserved {
		return
	}
	c.reserved = false
	m.budgetUsed -= c.cost
	close(m.budgetFreed)
	m.budgetFreed = make(chan struct{})
}
