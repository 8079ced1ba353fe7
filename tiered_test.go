package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// billing is a tier lookup the test can change.
type billing struct {
	mu    sync.Mutex
	tiers map[string]string
	err   error
}

func (b *billing) tierOf(_ context.Context, id string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tiers[id], b.err
}

func (b *billing) set(id, tier string) {
	b.mu.Lock()
	b.tiers[id] = tier
	b.mu.Unlock()
}

func TestTiersSizeClients(t *testing.T) {
	b := &billing{tiers: map[string]string{"f": "free", "p": "premium", "e": "enterprise"}}
	m := newManager(t, mongotenant.WithTiers(b.tierOf, nil))
	for id, size := range map[string]uint64{"f": 3, "p": 10, "e": 20} {
		acquire(t, m, id).Release()
		s, ok := m.TenantStats(id)
		require.True(t, ok)
		assert.Equal(t, size, s.PoolSize, id)
	}
	_, err := m.Acquire(context.Background(), "nobody") // tier ""
	assert.ErrorContains(t, err, "unknown tier")
	assert.ErrorIs(t, err, mongotenant.ErrRoute)

	b.err = errors.New("billing down")
	_, err = m.Acquire(context.Background(), "new")
	assert.ErrorContains(t, err, "billing down")
	b.err = nil
	b.set("new", "basic")
	l, err := m.Acquire(context.Background(), "new")
	require.NoError(t, err, "a failed lookup is not cached")
	l.Release()
}

// TestTierChangeReplacesClient: an upgrade moves the tenant to a client
// with the new pool size; the lease on the old client stays good until
// released, then the old client is disconnected.
func TestTierChangeReplacesClient(t *testing.T) {
	b := &billing{tiers: map[string]string{"acme": "basic"}}
	m := newManager(t, mongotenant.WithTiers(b.tierOf, map[string]mongotenant.Tier{
		"basic":   {PoolSize: 5, MaxLeases: 2},
		"premium": {PoolSize: 10, MaxLeases: 4},
	}))
	old := acquire(t, m, "acme")
	b.set("acme", "premium")
	require.NoError(t, m.Refresh(context.Background(), "acme"))

	nl := acquire(t, m, "acme")
	assert.NotSame(t, old.Client(), nl.Client())
	s, _ := m.TenantStats("acme")
	assert.Equal(t, "premium", s.Tier)
	assert.Equal(t, uint64(10), s.PoolSize)
	assert.Equal(t, 4, s.MaxLeases)
	assertConnected(t, old.Client())
	assert.Equal(t, uint64(1), m.Stats().EvictedRoute)

	old.Release()
	waitFor(t, "the old client to disconnect", func() bool { return m.Stats().Disconnects == 1 })
	nl.Release()
}

func TestRouteTTLRefreshesInTheBackground(t *testing.T) {
	b := &billing{tiers: map[string]string{"acme": "free"}}
	m, clock := newFakeManager(t, mongotenant.WithTiers(b.tierOf, nil), mongotenant.WithRouteTTL(time.Minute))
	acquire(t, m, "acme").Release()
	b.set("acme", "enterprise")
	clock.Advance(59 * time.Second)
	acquire(t, m, "acme").Release()
	assert.Zero(t, m.Stats().RouteRefreshes, "within the TTL")
	clock.Advance(2 * time.Second)
	acquire(t, m, "acme").Release() // a Release past the TTL starts the refresh
	waitFor(t, "the refresh", func() bool { return m.Stats().RouteRefreshes == 1 })
	assert.Equal(t, uint64(1), m.Stats().EvictedRoute, "the tenant left its free-tier client")
	acquire(t, m, "acme").Release()
	s, _ := m.TenantStats("acme")
	assert.Equal(t, "enterprise", s.Tier)
	assert.Equal(t, uint64(20), s.PoolSize)
}

// TestRefreshesDoNotDependOnHowTheStrategyWasChosen: with only a strategy
// there is nothing to refresh, whether the strategy is the default or given
// explicitly, and whatever the TTL; a Router makes routes refreshable.
func TestRefreshesDoNotDependOnHowTheStrategyWasChosen(t *testing.T) {
	var calls atomic.Int32
	router := mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error {
		calls.Add(1)
		return nil
	})
	for _, tc := range []struct {
		name      string
		opts      []mongotenant.Option
		refreshes uint64
	}{
		{"default", nil, 0},
		{"explicit Dedicated", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Dedicated())}, 0},
		{"explicit Shared", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared())}, 0},
		{"TTL alone", []mongotenant.Option{mongotenant.WithRouteTTL(time.Second)}, 0},
		{"a Router", []mongotenant.Option{router}, 1},
		{"a Router and an explicit Dedicated", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Dedicated()), router}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := newFakeManager(t, tc.opts...)
			acquire(t, m, "acme").Release()
			clock.Advance(mongotenant.DefaultRouteTTL + time.Second)
			acquire(t, m, "acme").Release()
			if tc.refreshes > 0 {
				waitFor(t, "the refresh", func() bool { return m.Stats().RouteRefreshes == tc.refreshes })
			}
			acquire(t, m, "acme").Release()
			assert.Equal(t, tc.refreshes, m.Stats().RouteRefreshes)
		})
	}
}

// TestRefreshRotatesCredentials: Refresh compares credentials by value.
// Equal ones keep the client; rotated ones move the tenant to a new client,
// and the old one serves its lease, then is disconnected.
func TestRefreshRotatesCredentials(t *testing.T) {
	var password atomic.Value
	password.Store("v1")
	m := newManager(t, mongotenant.WithTenantAuth(func(_ context.Context, id string) (options.Credential, error) {
		return options.Credential{Username: "u_" + id, Password: password.Load().(string),
			AuthMechanismProperties: map[string]string{"k": "v"}}, nil
	}))
	ctx := context.Background()
	old := acquire(t, m, "acme")
	require.NoError(t, m.Refresh(ctx, "acme"))
	same := acquire(t, m, "acme")
	assert.Same(t, old.Client(), same.Client(), "equal credentials, new values: same client")
	same.Release()

	password.Store("v2")
	require.NoError(t, m.Refresh(ctx, "acme"))
	rotated := acquire(t, m, "acme")
	defer rotated.Release()
	assert.NotSame(t, old.Client(), rotated.Client())
	assertConnected(t, old.Client())
	s := m.Stats()
	assert.Equal(t, uint64(1), s.EvictedRoute)
	assert.Equal(t, 2, s.Clients+s.Retiring)
	old.Release()
	waitFor(t, "the old client to disconnect", func() bool { return isDisconnected(old.Client()) })
}

// TestEvictResolvesTheRouteAgainEvenWhenLeased: Evict forgets the route
// of a leased tenant too; its next Acquire asks the routers again.
func TestEvictResolvesTheRouteAgainEvenWhenLeased(t *testing.T) {
	var calls atomic.Int32
	m := newManager(t, mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error {
		calls.Add(1)
		return nil
	}))
	held := acquire(t, m, "acme")
	acquire(t, m, "acme").Release()
	assert.Equal(t, int32(1), calls.Load())
	require.NoError(t, m.Evict(context.Background(), "acme"))
	acquire(t, m, "acme").Release()
	assert.Equal(t, int32(2), calls.Load(), "resolved again")
	held.Release()
}

// TestARefreshThatFindsTheTenantGoneEvictsIt: when a Router says a cached
// tenant is suspended or unknown, at a background refresh or at Refresh,
// the tenant is evicted (its lease finishes), counted as a refresh and not
// as a refresh error, and not logged at Warn; new acquisitions are refused.
func TestARefreshThatFindsTheTenantGoneEvictsIt(t *testing.T) {
	for _, sentinel := range []error{mongotenant.ErrTenantSuspended, mongotenant.ErrUnknownTenant} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			var goneNow atomic.Bool
			var logs syncBuffer
			m, clock := newFakeManager(t, mongotenant.WithRouteTTL(time.Minute),
				mongotenant.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))),
				mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error {
					if goneNow.Load() {
						return fmt.Errorf("catalog says: %w", sentinel)
					}
					return nil
				}))
			acquire(t, m, "acme").Release()
			goneNow.Store(true)
			clock.Advance(2 * time.Minute)
			held := acquire(t, m, "acme") // still cached: the route is refreshed after a Release
			acquire(t, m, "acme").Release()
			waitFor(t, "the refresh", func() bool { return m.Stats().EvictedRoute == 1 })
			s := m.Stats()
			assert.Equal(t, uint64(1), s.RouteRefreshes)
			assert.Zero(t, s.RouteRefreshErrors)
			assert.Equal(t, 1, s.Retiring, "the evicted client serves its last lease")
			_, err := m.Acquire(context.Background(), "acme")
			require.ErrorIs(t, err, sentinel)
			held.Release()
			waitFor(t, "the client to go", func() bool { return m.Stats().Retiring == 0 })
			assert.Empty(t, logs.String())

			goneNow.Store(false)
			acquire(t, m, "acme").Release()
			goneNow.Store(true)
			require.ErrorIs(t, m.Refresh(context.Background(), "acme"), sentinel)
			_, ok := m.TenantStats("acme")
			assert.False(t, ok, "Refresh evicts it too")
		})
	}
}

// TestAStaleGoneRefreshLeavesANewerRoute: a refresh that read "suspended"
// before the tenant was resumed and routed again does not evict it.
func TestAStaleGoneRefreshLeavesANewerRoute(t *testing.T) {
	var suspended atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	var blockNext atomic.Bool
	m := newManager(t, mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error {
		isSuspended := suspended.Load() // read, then answer late: a slow catalog
		if blockNext.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		if isSuspended {
			return mongotenant.ErrTenantSuspended
		}
		return nil
	}))
	acquire(t, m, "acme").Release()
	blockNext.Store(true)
	suspended.Store(true)
	refreshed := make(chan error, 1)
	go func() { refreshed <- m.Refresh(context.Background(), "acme") }()
	<-entered // the refresh's Router call is under way, and will say suspended
	suspended.Store(false)
	require.NoError(t, m.Evict(context.Background(), "acme"))
	acquire(t, m, "acme").Release() // routed again, active
	close(release)
	require.ErrorIs(t, <-refreshed, mongotenant.ErrTenantSuspended)
	_, ok := m.TenantStats("acme")
	assert.True(t, ok, "the newer route stands")
	assert.Zero(t, m.Stats().EvictedRoute)
}
