package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A retirementPath is a way the Manager can take a tenant's client away,
// or could be tempted to, while the tenant holds leases.
type retirementPath struct {
	name string
	opts func(env *pathEnv) []mongotenant.Option
	// retire runs the path against the tenant "hot"; round counts calls.
	retire func(t *testing.T, env *pathEnv, round int)
	// moves says whether the path moves hot to another client.
	moves bool
}

type pathEnv struct {
	m       *mongotenant.Manager
	clock   *mongotenant.FakeClock
	tier    atomic.Value // string: hot's tier, for the route path
	version atomic.Int64 // hot's credentials, for the rotation path
}

const pathIdle = 10 * time.Second

var retirementPaths = []retirementPath{
	{
		name: "cap",
		opts: func(*pathEnv) []mongotenant.Option { return []mongotenant.Option{mongotenant.WithMaxClients(1)} },
		retire: func(t *testing.T, env *pathEnv, round int) {
			acquire(t, env.m, fmt.Sprintf("other%d", round)).Release() // evicts hot's client, leased
		},
		moves: true,
	},
	{
		name: "budget",
		opts: func(*pathEnv) []mongotenant.Option {
			return []mongotenant.Option{mongotenant.WithConnectionBudget(2*clientCost, mongotenant.BudgetFailFast)}
		},
		retire: func(t *testing.T, env *pathEnv, round int) {
			before := env.m.Stats().EvictedBudget
			for i := range 3 { // room for one more client: each evicts the one before, never hot
				acquire(t, env.m, fmt.Sprintf("b%d-%d", round, i)).Release()
			}
			assert.GreaterOrEqual(t, env.m.Stats().EvictedBudget, before+2)
		},
	},
	{
		name: "Evict",
		retire: func(t *testing.T, env *pathEnv, round int) {
			require.NoError(t, env.m.Evict(context.Background(), "hot"))
		},
		moves: true,
	},
	{
		name: "reaper",
		opts: func(*pathEnv) []mongotenant.Option {
			return []mongotenant.Option{mongotenant.WithIdleTimeout(pathIdle)}
		},
		retire: func(t *testing.T, env *pathEnv, round int) {
			require.True(t, tick(t, env.clock, 3*pathIdle))
			_, cached := env.m.TenantStats("hot")
			assert.True(t, cached, "a leased tenant is never idle")
		},
	},
	{
		name: "Evict then reaper",
		opts: func(*pathEnv) []mongotenant.Option {
			return []mongotenant.Option{mongotenant.WithIdleTimeout(pathIdle)}
		},
		retire: func(t *testing.T, env *pathEnv, round int) {
			require.NoError(t, env.m.Evict(context.Background(), "hot"))
			require.True(t, tick(t, env.clock, 3*pathIdle))
			assert.Equal(t, 1, env.m.Stats().Tenants, "hot is leased: its state stays")
		},
		moves: true,
	},
	{
		name: "route change",
		opts: func(env *pathEnv) []mongotenant.Option {
			env.tier.Store("basic")
			return []mongotenant.Option{mongotenant.WithTiers(func(context.Context, string) (string, error) {
				return env.tier.Load().(string), nil
			}, map[string]mongotenant.Tier{"basic": {PoolSize: 5, MaxLeases: 2}, "premium": {PoolSize: 10, MaxLeases: 2}})}
		},
		retire: func(t *testing.T, env *pathEnv, round int) {
			env.tier.Store([]string{"premium", "basic"}[round%2])
			require.NoError(t, env.m.Refresh(context.Background(), "hot"))
		},
		moves: true,
	},
	{
		name: "credential rotation",
		opts: func(env *pathEnv) []mongotenant.Option {
			return []mongotenant.Option{mongotenant.WithTenantAuth(func(_ context.Context, id string) (options.Credential, error) {
				return options.Credential{Username: "u_" + id, Password: fmt.Sprintf("v%d", env.version.Load())}, nil
			})}
		},
		retire: func(t *testing.T, env *pathEnv, round int) {
			env.version.Add(1)
			require.NoError(t, env.m.Refresh(context.Background(), "hot"))
		},
		moves: true,
	},
}

// TestGuaranteesHoldOnEveryRetirementPath: while "hot", limited to 2
// leases, holds both, each path runs twice. Through all of it the bulkhead
// never grants a third lease, no leased client is disconnected, and a
// client the tenant left is disconnected once its last lease is released.
func TestGuaranteesHoldOnEveryRetirementPath(t *testing.T) {
	for _, path := range retirementPaths {
		t.Run(path.name, func(t *testing.T) {
			env := &pathEnv{}
			opts := []mongotenant.Option{mongotenant.WithMaxLeases(2)}
			if path.opts != nil {
				opts = append(opts, path.opts(env)...)
			}
			env.m, env.clock = newFakeManager(t, opts...)
			m := env.m
			held := []*mongotenant.Lease{acquire(t, m, "hot"), acquire(t, m, "hot")}
			clients := map[*mongo.Client]bool{held[0].Client(): true}

			for round := range 2 {
				path.retire(t, env, round)
				checkBulkheadHolds(t, m, held)

				held[0].Release() // one slot frees: one new lease, on the client hot has now
				held = append(held[1:], acquire(t, m, "hot"))
				clients[held[1].Client()] = true
				if path.moves {
					assert.NotSame(t, held[0].Client(), held[1].Client(), "round %d: hot moved", round)
				}
				checkBulkheadHolds(t, m, held)
				assert.Equal(t, 2, m.Stats().Leases)
			}

			current := held[1].Client()
			for _, l := range held {
				l.Release()
			}
			assert.Equal(t, 0, m.Stats().Leases)
			for c := range clients {
				if c != current {
					waitFor(t, "a client hot left to disconnect", func() bool { return isDisconnected(c) })
				}
			}
			assertConnected(t, current)
		})
	}
}

// checkBulkheadHolds checks that the held leases' clients are connected and
// that a third lease is refused.
func checkBulkheadHolds(t *testing.T, m *mongotenant.Manager, held []*mongotenant.Lease) {
	t.Helper()
	for _, l := range held {
		assertConnected(t, l.Client())
	}
	_, err := m.Acquire(short(t), "hot")
	require.ErrorIs(t, err, mongotenant.ErrTenantBusy, "the bulkhead counts every lease of the tenant")
	ts, ok := m.TenantStats("hot")
	if ok {
		assert.Equal(t, 2, ts.Leases)
	}
}

// isDisconnected reports whether c was disconnected.
func isDisconnected(c *mongo.Client) bool {
	return errors.Is(c.Ping(context.Background(), nil), mongo.ErrClientDisconnected)
}

// TestCloseKeepsLeasesGoodUntilReleased is the Close path: acquisitions fail
// with ErrClosed at once, leases stay good, and Close returns when the last
// is released, with every client disconnected.
func TestCloseKeepsLeasesGoodUntilReleased(t *testing.T) {
	m, err := mongotenant.New(unreachable, mongotenant.WithMaxLeases(2), mongotenant.WithClientOptions(
		options.Client().SetServerSelectionTimeout(100*time.Millisecond)))
	require.NoError(t, err)
	held := []*mongotenant.Lease{acquire(t, m, "hot"), acquire(t, m, "hot")}
	acquire(t, m, "idle").Release()
	idle, _ := m.TenantStats("idle")
	require.Equal(t, 1, idle.Sharing)

	closed := make(chan error, 1)
	go func() { closed <- m.Close(context.Background()) }()
	waitFor(t, "Close to begin", func() bool {
		_, err := m.Acquire(context.Background(), "hot")
		return errors.Is(err, mongotenant.ErrClosed)
	})
	_, err = m.Acquire(context.Background(), "new")
	assert.ErrorIs(t, err, mongotenant.ErrClosed)
	waitFor(t, "the idle client to disconnect", func() bool { return m.Stats().Disconnects == 1 })
	for _, l := range held {
		assertConnected(t, l.Client())
	}
	held[0].Release()
	assertConnected(t, held[1].Client())
	held[1].Release()
	require.NoError(t, <-closed)
	assert.True(t, isDisconnected(held[1].Client()))
	s := m.Stats()
	assert.Equal(t, 0, s.Clients+s.Retiring+s.Leases+s.Tenants)
	assert.Equal(t, uint64(2), s.Disconnects)
}
