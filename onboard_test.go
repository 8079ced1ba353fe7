package mongotenant_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// initCounter is an init hook that counts its runs per tenant.
type initCounter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *initCounter) init(_ context.Context, id string, _ *mongo.Database) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runs == nil {
		c.runs = map[string]int{}
	}
	c.runs[id]++
	return nil
}

func (c *initCounter) of(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

// TestInitRunsOncePerTenantBeforeAnyLease: 200 concurrent first
// acquisitions run the hook once, and none gets a lease before it finished.
func TestInitRunsOncePerTenantBeforeAnyLease(t *testing.T) {
	var runs atomic.Int32
	var finished atomic.Bool
	release := make(chan struct{})
	m := newManager(t, mongotenant.WithInit(func(ctx context.Context, id string, db *mongo.Database) error {
		runs.Add(1)
		if db.Name() != "user_"+id+"_db" {
			t.Errorf("init got database %s", db.Name())
		}
		<-release
		finished.Store(true)
		return nil
	}))
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			l, err := m.Acquire(context.Background(), "acme")
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			if !finished.Load() {
				t.Error("a lease before init finished")
			}
			l.Release()
		})
	}
	waitFor(t, "init to start", func() bool { return runs.Load() == 1 })
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), runs.Load())
	s := m.Stats()
	assert.Equal(t, uint64(200), s.Hits+s.Misses)
	assert.Zero(t, s.Refused)
}

// TestInitStateLivesWithTheTenant: init is remembered while the Manager
// holds the tenant (a client, a lease), forgotten when the tenant is
// dropped, and by Forget at once.
func TestInitStateLivesWithTheTenant(t *testing.T) {
	var hook initCounter
	m := newManager(t, mongotenant.WithInit(hook.init))
	ctx := context.Background()

	acquire(t, m, "acme").Release()
	acquire(t, m, "acme").Release()
	assert.Equal(t, 1, hook.of("acme"), "cached: initialized once")

	held := acquire(t, m, "acme")
	require.NoError(t, m.Evict(ctx, "acme"))
	acquire(t, m, "acme").Release()
	assert.Equal(t, 1, hook.of("acme"), "evicted while leased: the tenant was held all along")
	held.Release()

	require.NoError(t, m.Evict(ctx, "acme"))
	acquire(t, m, "acme").Release()
	assert.Equal(t, 2, hook.of("acme"), "evicted idle: dropped, so initialized again")

	held = acquire(t, m, "acme")
	require.NoError(t, m.Forget(ctx, "acme"))
	acquire(t, m, "acme").Release()
	assert.Equal(t, 3, hook.of("acme"), "forgotten: initialized again although leased")
	held.Release()

	require.NoError(t, m.Forget(ctx, "nobody"), "forgetting a tenant the Manager does not hold is fine")
	require.ErrorIs(t, m.Forget(ctx, "../admin"), mongotenant.ErrInvalidTenant)
	assert.Equal(t, 0, m.Stats().Leases)
}

func TestInitFailureGoesToItsCallerAndIsRetried(t *testing.T) {
	boom := errors.New("index build failed")
	var calls atomic.Int32
	m := newManager(t, mongotenant.WithMaxLeases(1), mongotenant.WithInit(func(context.Context, string, *mongo.Database) error {
		if calls.Add(1) == 1 {
			return boom
		}
		return nil
	}))
	_, err := m.Acquire(context.Background(), "acme")
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, err, mongotenant.ErrInit)
	s := m.Stats()
	assert.Equal(t, 0, s.Leases, "the failed caller's lease is released")
	assert.Equal(t, uint64(1), s.RefusedInit)
	assert.Zero(t, s.Hits+s.Misses, "a failed init serves no lease")

	acquire(t, m, "acme").Release() // the bulkhead of 1 has its slot back
	acquire(t, m, "acme").Release()
	assert.Equal(t, int32(2), calls.Load())
	s = m.Stats()
	assert.Equal(t, uint64(1), s.Misses)
	assert.Equal(t, uint64(1), s.Hits)
}

func TestInitWaitersAreBoundedByTheirOwnContext(t *testing.T) {
	release := make(chan struct{})
	m := newManager(t, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error {
		<-release
		return nil
	}))
	first := acquireLater(m, "slow")
	waitFor(t, "the first caller to hold the init", func() bool { return m.Stats().Leases == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Acquire(ctx, "slow")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, uint64(1), m.Stats().RefusedContext)
	close(release)
	require.NoError(t, <-first)
}

// netTimeout is a network timeout that wraps no context error, as the
// driver returns when a socket deadline set from the caller's ctx passes.
type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

// TestATimeoutInTheLeaderIsNotSharedWithWaiters: the caller running the
// init hook times out, with an error that wraps no context error and
// while its ctx may not say so yet; a caller waiting for that init does
// not get the failure: it runs the hook itself, with its own ctx.
func TestATimeoutInTheLeaderIsNotSharedWithWaiters(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	m := newManager(t, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error {
		if calls.Add(1) == 1 {
			<-release
			return netTimeout{}
		}
		return nil
	}))
	leader := acquireLater(m, "t")
	waitFor(t, "the leader to run the hook", func() bool { return calls.Load() == 1 })
	waiter := acquireLater(m, "t")
	waitFor(t, "the waiter", func() bool { return m.Stats().Waiting == 1 })
	close(release)
	err := <-leader
	require.ErrorIs(t, err, mongotenant.ErrInit)
	require.ErrorAs(t, err, new(netTimeout))
	require.NoError(t, <-waiter, "the waiter ran the hook itself")
	assert.Equal(t, int32(2), calls.Load())
}
