package mongotenant

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// WithInit runs init once per tenant in this process, before the tenant's
// first lease is handed out: the place to create collections and indexes
// for a new tenant. Concurrent first acquisitions run it once; the others
// wait for it, each until its own ctx ends. If init fails, that caller's
// Acquire fails with init's error and the next Acquire runs it again. A
// tenant whose client is evicted and recreated is not initialized again.
//
// init gets the caller's ctx and the tenant's database under the caller's
// lease. It should be idempotent across processes: every process runs it
// once per tenant. The Manager remembers each initialized tenant ID for its
// lifetime, so memory grows with the tenants seen.
func WithInit(init func(ctx context.Context, tenantID string, db *mongo.Database) error) Option {
	return func(c *config) { c.init = init }
}

// initialize runs the init hook for t, whose caller holds a lease on it,
// unless the tenant is initialized already.
func (m *Manager) initialize(ctx context.Context, t *tenant) error {
	for {
		m.mu.Lock()
		if _, ok := m.initialized[t.id]; ok {
			m.mu.Unlock()
			return nil
		}
		wait, busy := m.initializing[t.id]
		if !busy {
			wait = make(chan struct{})
			m.initializing[t.id] = wait
		}
		m.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue // done, or failed for its caller: look again
			case <-ctx.Done():
				return fmt.Errorf("mongotenant: waiting for the tenant's init: %w", context.Cause(ctx))
			}
		}
		return m.runInit(ctx, t, wait)
	}
}

func (m *Manager) runInit(ctx context.Context, t *tenant, done chan struct{}) (err error) {
	defer func() {
		m.mu.Lock()
		delete(m.initializing, t.id)
		close(done)
		if err == nil {
			m.initialized[t.id] = struct{}{}
			t.ready = true
			if cur := m.tenants[t.id]; cur != nil {
				cur.ready = true
			}
		}
		m.mu.Unlock()
	}()
	if err := m.cfg.init(ctx, t.id, t.db); err != nil {
		return fmt.Errorf("mongotenant: init tenant: %w", err)
	}
	return nil
}
