package mongotenant

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestCommandCountsNeverRunBackwards: while commands fail, GroupStats never
// shows more failures than commands, so the succeeded count that exporters
// derive (Commands - CommandFailures) never wraps or falls.
func TestCommandCountsNeverRunBackwards(t *testing.T) {
	m := newTestManager(t, WithCommandStats(0))
	l, err := m.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	cm := m.commandMonitor(l.b.c.pool, nil)
	l.Release()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				cm.Failed(context.Background(), &event.CommandFailedEvent{})
				cm.Succeeded(context.Background(), &event.CommandSucceededEvent{})
			}
		})
	}
	var lastOK uint64
	for range 20000 {
		for _, g := range m.GroupStats() {
			if g.Commands < g.CommandFailures {
				t.Fatalf("Commands %d < CommandFailures %d", g.Commands, g.CommandFailures)
			}
			ok := g.Commands - g.CommandFailures
			if ok < lastOK {
				t.Fatalf("succeeded commands fell from %d to %d", lastOK, ok)
			}
			lastOK = ok
		}
	}
	stop.Store(true)
	wg.Wait()
}

// TestCloseDuringCreationReportsTheDisconnect: a client connected while
// Close begins never reaches the cache; it is disconnected, and hooks see
// that, with cause close.
func TestCloseDuringCreationReportsTheDisconnect(t *testing.T) {
	var created, disconnected atomic.Int32
	var cause atomic.Int32
	var m *Manager
	closed := make(chan error, 1)
	m, err := New(unreachableURI, WithHooks(Hooks{
		ClientCreated: func(context.Context, ClientEvent) {
			created.Add(1)
			go func() { closed <- m.Close(context.Background()) }()
			for !m.closed.Load() { // Close has begun: publish will find it closed
				runtime.Gosched()
			}
		},
		ClientDisconnected: func(e ClientEvent) {
			disconnected.Add(1)
			cause.Store(int32(e.Cause))
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(context.Background(), "a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire: %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	if created.Load() != 1 || disconnected.Load() != 1 || s.Disconnects != 1 {
		t.Fatalf("ClientCreated %d, ClientDisconnected %d, Stats.Disconnects %d; want 1 each", created.Load(), disconnected.Load(), s.Disconnects)
	}
	if EvictionCause(cause.Load()) != EvictionClose {
		t.Fatalf("cause %v, want close", EvictionCause(cause.Load()))
	}
}

// TestPingDeploymentSharesOneClient: concurrent PingDeployment calls with
// no cached client share one short-lived client, whatever their number,
// and keep the user's monitors out of it.
func TestPingDeploymentSharesOneClient(t *testing.T) {
	var live, peak, userEvents atomic.Int64
	count := func(e *event.PoolEvent) {
		switch e.Type {
		case event.ConnectionPoolCreated:
			n := live.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case event.ConnectionPoolClosed:
			live.Add(-1)
		}
	}
	user := &event.PoolMonitor{Event: func(*event.PoolEvent) { userEvents.Add(1) }}
	m := newTestManager(t, WithClientOptions(options.Client().SetPoolMonitor(user).SetServerSelectionTimeout(300*time.Millisecond)),
		func(c *config) { c.pingMonitor = &event.PoolMonitor{Event: count} })
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := m.PingDeployment(ctx); err == nil {
				t.Error("a ping of an unreachable server succeeded")
			}
		})
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Errorf("%d short-lived clients at once, want 1", peak.Load())
	}
	if userEvents.Load() != 0 {
		t.Errorf("the user's pool monitor saw %d events of the ping's own client", userEvents.Load())
	}
}
