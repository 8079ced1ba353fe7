package mongotenant

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
// new client would not fit, idle clients are closed, least recently used
// first; if that is not enough, policy decides. 0 means no budget (default).
func WithConnectionBudget(sockets int, policy BudgetPolicy) Option {
	return func(c *config) { c.budget, c.budgetPolicy = sockets, policy }
}

// WithNodes sets how many servers each client connects to, for the budget.
// Default: the number of hosts in the client's URI.
func WithNodes(n int) Option { return func(c *config) { c.nodes = n } }

// cluster is the merged client options of one deployment.
type cluster struct {
	opts    *options.ClientOptions
	nodes   int
	monitor int // monitoring sockets per node per client
}

func newCluster(uri string, cfg *config) (*cluster, error) {
	opts, err := baseClientOptions(uri, cfg)
	if err != nil {
		return nil, err
	}
	cl := &cluster{opts: opts, nodes: max(len(opts.Hosts), 1), monitor: 2}
	if cfg.nodes > 0 {
		cl.nodes = cfg.nodes
	}
	switch {
	case opts.LoadBalanced != nil && *opts.LoadBalanced:
		cl.monitor = 0
	case opts.ServerMonitoringMode != nil && *opts.ServerMonitoringMode == options.ServerMonitoringModePoll:
		cl.monitor = 1
	}
	return cl, nil
}

func (cl *cluster) cost(poolSize uint64) int { return cl.nodes * (cl.monitor + int(poolSize)) }

// budgetRecheck is how often a caller waiting for budget looks for clients
// that became idle. Release does not signal it: that would cost every lease.
const budgetRecheck = 5 * time.Millisecond

// reserve charges cost sockets to the budget for a client about to be
// created, closing idle clients to make room, then waiting or failing as
// the policy says.
func (m *Manager) reserve(ctx context.Context, cost int) error {
	limit := m.cfg.budget
	if limit <= 0 {
		return nil
	}
	if cost > limit {
		return fmt.Errorf("%w: one client needs %d sockets, the budget is %d", ErrBudgetExceeded, cost, limit)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		if m.budgetUsed+cost <= limit {
			m.budgetUsed += cost
			m.mu.Unlock()
			return nil
		}
		freeing := 0 // sockets of retired, unleased clients: freed as soon as they disconnect
		for c := range m.retiring {
			if c.refs.Load() == 0 {
				freeing += c.cost
			}
		}
		var victims []*client
		for m.budgetUsed-freeing+cost > limit {
			v := m.lruClientLocked(true)
			if v == nil {
				break
			}
			if d := m.retireClientLocked(v, causeBudget); d != nil { // unleased, so always
				victims = append(victims, d)
				freeing += d.cost
			}
		}
		fits := m.budgetUsed-freeing+cost <= limit
		used, freed := m.budgetUsed, m.budgetFreed
		m.mu.Unlock()
		for _, v := range victims {
			go m.disconnect(context.Background(), v)
		}
		if !fits && m.cfg.budgetPolicy == BudgetFailFast {
			return fmt.Errorf("%w: %d of %d sockets held by leased clients", ErrBudgetExceeded, used, limit)
		}
		recheck := time.NewTimer(budgetRecheck)
		select {
		case <-freed:
		case <-recheck.C: // a Release may have left a client idle, and so evictable
		case <-ctx.Done():
			recheck.Stop()
			return fmt.Errorf("%w: waited for %d sockets: %w", ErrBudgetExceeded, cost, context.Cause(ctx))
		}
		recheck.Stop()
	}
}

// unreserveLocked returns a client's sockets to the budget and wakes those
// waiting for them. The caller holds m.mu.
func (m *Manager) unreserveLocked(cost int) {
	if m.cfg.budget <= 0 || cost == 0 {
		return
	}
	m.budgetUsed -= cost
	close(m.budgetFreed)
	m.budgetFreed = make(chan struct{})
}
