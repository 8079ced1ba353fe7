package mongotenant

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
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
// deployment, which it keeps connected meanwhile as a lease would. If there
// is none (no tenant is active, say), it pings through a client of its
// own, with a pool of one and none of the monitors set with
// [WithClientOptions], connected for the ping and disconnected after it,
// outside the connection budget. There is at most one such client at a
// time: concurrent callers share its ping, each waiting until its own ctx
// ends; Close cancels it.
//
// Errors wrap [ErrClosed], [ErrCreateClient], ctx's error, or the driver's
// error for the ping.
func (m *Manager) PingDeployment(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	c := m.pinDefault()
	if c == nil {
		return m.pingShared(ctx)
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

// pingFlight is the ping of the Manager's own client, shared by the
// callers of PingDeployment that arrive while it runs.
type pingFlight struct {
	done chan struct{} // closed when err is set
	err  error
}

// pingShared waits for the ping of the Manager's own client, starting one
// if none is under way. The ping runs in the background, with a ctx that
// Close cancels, so that no caller's ctx ends it for the others.
func (m *Manager) pingShared(ctx context.Context) error {
	m.pingMu.Lock()
	f := m.pinging
	if f == nil {
		f = &pingFlight{done: make(chan struct{})}
		started := m.goBackground(func(bg context.Context) {
			err := pingOnce(bg, m.def, m.cfg.disconnectTimeout, m.cfg.pingMonitor)
			m.pingMu.Lock()
			f.err, m.pinging = err, nil
			m.pingMu.Unlock()
			close(f.done)
		})
		if !started {
			m.pingMu.Unlock()
			return ErrClosed
		}
		m.pinging = f
	}
	m.pingMu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("mongotenant: ping: %w", ctxError(ctx))
	}
}

// pingOnce connects a client with a pool of one to cl, without the user's
// monitors (it is no tenant's client), pings, and disconnects it. Tests
// watch its client with pingMonitor.
func pingOnce(ctx context.Context, cl *cluster, timeout time.Duration, pingMonitor *event.PoolMonitor) error {
	o := *cl.opts
	one := uint64(1)
	o.MaxPoolSize = &one
	o.Monitor, o.PoolMonitor, o.ServerMonitor = nil, pingMonitor, nil
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
