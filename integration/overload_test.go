package integration_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestOverload: ten times more concurrent callers than bulkheads and the
// budget admit. Goroutines and heap stay bounded, every error is a refusal
// (busy, budget) or a deadline, and when the load drops everything succeeds
// again.
func TestOverload(t *testing.T) {
	const (
		tenants   = 10
		perTenant = 2                   // bulkhead
		pool      = 4                   // per client
		budget    = 4 * (1 + pool)      // four clients at once
		admitted  = tenants * perTenant // concurrent leases the bulkheads allow
		callers   = 10 * admitted       // the overload
		phase     = 2 * time.Second
		deadline  = 200 * time.Millisecond // each caller's patience
	)
	m, raw := setup(t, mongotenant.WithMaxLeases(perTenant), mongotenant.WithPoolSize(pool),
		mongotenant.WithConnectionBudget(budget, mongotenant.BudgetWait))

	var ok, busy, overBudget, timedOut, other atomic.Int64
	call := func(tenant int) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		err := m.Do(ctx, fmt.Sprintf("o%d", tenant), func(ctx context.Context, db *mongo.Database) error {
			_, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "t", Value: tenant}})
			return err
		})
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, mongotenant.ErrTenantBusy):
			busy.Add(1)
		case errors.Is(err, mongotenant.ErrBudgetExceeded):
			overBudget.Add(1)
		case errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err):
			timedOut.Add(1)
		default:
			if other.Add(1) <= 3 {
				t.Errorf("unexpected error under overload: %v", err)
			}
		}
	}
	sample := func() (int, float64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), float64(ms.HeapAlloc) / (1 << 20)
	}
	g0, _ := sample()

	var wg sync.WaitGroup
	stop := time.Now().Add(phase)
	for c := range callers {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				call((c + i) % tenants)
			}
		})
	}
	var maxG int
	var maxHeap float64
	for time.Now().Before(stop) {
		g, h := sample()
		maxG, maxHeap = max(maxG, g), max(maxHeap, h)
		s := m.Stats()
		assert.LessOrEqual(t, s.BudgetUsed, budget)
		assert.LessOrEqual(t, s.Leases, admitted)
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("overload: %d callers, %d ok, %d busy, %d over budget, %d timed out; goroutines %d -> max %d; heap max %.1f MiB",
		callers, ok.Load(), busy.Load(), overBudget.Load(), timedOut.Load(), g0, maxG, maxHeap)
	assert.Zero(t, other.Load())
	assert.Positive(t, ok.Load())
	assert.Positive(t, busy.Load()+overBudget.Load()+timedOut.Load(), "the load was not over capacity")
	// Callers, plus a few goroutines per socket the budget admits, on the
	// driver's side and the in-process server's: bounded by the budget, not
	// by the 2,000-odd requests served.
	assert.LessOrEqual(t, maxG, g0+callers+16*budget, "goroutines beyond callers and budget")
	assert.Less(t, maxHeap, 256.0, "heap under overload")

	// The load drops to what the bulkheads admit: everything succeeds.
	before := ok.Load()
	var failed atomic.Int64
	var light sync.WaitGroup
	for c := range tenants {
		light.Go(func() {
			for range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a wedged tenant still fails
				err := m.Do(ctx, fmt.Sprintf("o%d", c), func(ctx context.Context, db *mongo.Database) error {
					_, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "t", Value: c}})
					return err
				})
				cancel()
				if err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	light.Wait()
	assert.Zero(t, failed.Load(), "operations failed after the load dropped")
	assert.Equal(t, int64(tenants*20), ok.Load()-before)
	n, err := raw.Database("user_o0_db").Collection("c").CountDocuments(context.Background(), bson.D{})
	require.NoError(t, err)
	assert.Positive(t, n)
}

// TestEvictionNeverWaitsOnCheckedOutConnections: an eviction storm while
// operations run on leases. Given a deadline, the driver's Disconnect
// busy-waits for checked-out connections (and without one it cuts them);
// the Manager disconnects a client only after its last lease, so no
// disconnect may find a connection checked out, per the driver's own pool
// events (Stats.DisconnectsBusy). It also reports the CPU one eviction costs.
func TestEvictionNeverWaitsOnCheckedOutConnections(t *testing.T) {
	uri := mongotest.URI(t)
	m := newManager(t, uri, patient, mongotenant.WithMaxClients(3))
	var wg sync.WaitGroup
	var ops, failed atomic.Int64
	// The storm lasts until 100 clients have been disconnected, however
	// long a busy machine takes (up to a minute), not for a fixed time.
	done := make(chan struct{})
	storming := func() bool {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	cpu0 := cpuTime()
	for g := range 24 {
		wg.Go(func() {
			for i := 0; storming(); i++ {
				err := m.Do(context.Background(), fmt.Sprintf("e%d", (g+i)%12), func(ctx context.Context, db *mongo.Database) error {
					_, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "g", Value: g}})
					return err
				})
				ops.Add(1)
				if err != nil && failed.Add(1) <= 3 {
					t.Errorf("operation failed during the storm: %v", err)
				}
			}
		})
	}
	wg.Go(func() { // the storm: explicit evictions on top of the LRU's
		for i := 0; storming(); i++ {
			_ = m.Evict(context.Background(), fmt.Sprintf("e%d", i%12))
			time.Sleep(time.Millisecond)
		}
	})
	for deadline := time.Now().Add(time.Minute); m.Stats().Disconnects <= 100 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polls; orders nothing
	}
	close(done)
	wg.Wait()
	cpu := cpuTime() - cpu0
	waitFor(t, "retiring clients to disconnect", func() bool { return m.Stats().Retiring == 0 })
	s := m.Stats()
	t.Logf("%d operations, %d evictions (%d LRU, %d explicit), %d disconnects; process CPU %v over the storm",
		ops.Load(), s.Evicted, s.EvictedLRU, s.EvictedByApp, s.Disconnects, cpu)
	assert.Zero(t, failed.Load())
	assert.Greater(t, s.Disconnects, uint64(100), "the storm was not a storm")
	assert.Zero(t, s.DisconnectsBusy, "a disconnect found connections checked out")

	// What one eviction costs on its own: 100 connected, idle clients, each
	// evicted (Evict disconnects an unleased client before returning).
	quiet := newManager(t, uri, mongotenant.WithMaxClients(0))
	const n = 100
	for i := range n {
		require.NoError(t, quiet.Do(context.Background(), fmt.Sprintf("q%d", i), func(ctx context.Context, db *mongo.Database) error {
			return db.Client().Ping(ctx, nil)
		}))
	}
	cpu0, wall0 := cpuTime(), time.Now()
	for i := range n {
		require.NoError(t, quiet.Evict(context.Background(), fmt.Sprintf("q%d", i)))
	}
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	t.Logf("evicting %d idle connected clients: %v CPU (%v per eviction, server's share included), %v wall",
		n, cpu, cpu/n, wall)
	assert.Zero(t, quiet.Stats().DisconnectsBusy)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
