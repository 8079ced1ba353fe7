package mongotenant

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Ping checks that tenantID's deployment answers, through a lease on the
// tenant's client: it acquires the tenant as Acquire does, creating its
// client on first use, and sends a ping. Errors are Acquire's, or wrap the
// driver's error for the ping.
func (m *Manager) Ping(ctx context.Context, tenantID string) error {
	var l Lease
	if err := m.acquire(ctx, tenantID, &l); err != nil {
		return err
	}
	defer l.Release()
	if err := l.Client().Ping(ctx, nil); err != nil {
		return fmt.Errorf("mongotenant: ping: %w", err)
	}
	return nil
}

// PingDeployment checks that the deployment at the URI given to [New]
// answers, for a readiness check. It pings through a cached client of that
// deployment, which it keeps connected meanwhile as a lease would; if there
// is none, through a client of its own with a pool of one, connected for
// the ping and disconnected before it returns, outside the connection
// budget. Errors wrap [ErrClosed] or the driver's error.
func (m *Manager) PingDeployment(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	c := m.pinDefault()
	if c == nil {
		return pingOnce(ctx, m.def, m.cfg.disconnectTimeout)
	}
	err := c.mc.Ping(ctx, nil)
	m.mu.Lock()
	gone := m.unpinLocked(c)
	m.mu.Unlock()
	if gone != nil {
		go m.disconnect(context.Background(), gone) // evicted meanwhile; m.pending counts it
	}
	if err != nil {
		return fmt.Errorf("mongotenant: ping: %w", err)
	}
	return nil
}

// pinDefault pins a cached client of the default deployment, or returns
// nil if there is none.
func (m *Manager) pinDefault() *client {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.cached {
		if c.key.cluster == "" {
			c.pins++
			return c
		}
	}
	return nil
}

// pingOnce connects a client with a pool of one to cl, pings, and
// disconnects it.
func pingOnce(ctx context.Context, cl *cluster, timeout time.Duration) error {
	o := *cl.opts
	one := uint64(1)
	o.MaxPoolSize = &one
	mc, err := mongo.Connect(&o)
	if err != nil {
		return fmt.Errorf("%w: the driver refused the client options; its message is withheld because it can quote them", ErrCreateClient)
	}
	err = mc.Ping(ctx, nil)
	_ = disconnectClient(ctx, context.Background(), mc, timeout)
	if err != nil {
		return fmt.Errorf("mongotenant: ping: %w", err)
	}
	return nil
}
