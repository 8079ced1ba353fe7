package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestNewRejectsImpossibleOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		uri  string
		opt  mongotenant.Option
	}{
		{"negative max clients", unreachable, mongotenant.WithMaxClients(-1)},
		{"negative idle timeout", unreachable, mongotenant.WithIdleTimeout(-time.Second)},
		{"zero pool size", unreachable, mongotenant.WithPoolSize(0)},
		{"unlimited pool in URI", unreachable + "?maxPoolSize=0", nil},
		{"zero disconnect timeout", unreachable, mongotenant.WithDisconnectTimeout(0)},
		{"nil database name", unreachable, mongotenant.WithDatabaseName(nil)},
		{"nil validator", unreachable, mongotenant.WithTenantValidator(nil)},
		{"nil strategy", unreachable, mongotenant.WithStrategy(nil)},
		{"typed nil strategy", unreachable, mongotenant.WithStrategy((*nilStrategy)(nil))},
		{"nil router", unreachable, mongotenant.WithRouter(nil)},
		{"nil tier lookup", unreachable, mongotenant.WithTiers(nil, nil)},
		{"nil placement", unreachable, mongotenant.WithPlacement(nil)},
		{"nil credentials", unreachable, mongotenant.WithTenantAuth(nil)},
		{"nil init", unreachable, mongotenant.WithInit(nil)},
		{"huge lease limit", unreachable, mongotenant.WithMaxLeases(1 << 30)},
		{"bad scheme", "postgres://127.0.0.1/", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []mongotenant.Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			m, err := mongotenant.New(tc.uri, opts...)
			require.ErrorIs(t, err, mongotenant.ErrInvalidOption)
			require.Nil(t, m)
		})
	}
}

type nilStrategy struct{}

func (*nilStrategy) Group(id string) string { return id }

func TestPoolSizePrecedence(t *testing.T) {
	poolSize := func(uri string, opts ...mongotenant.Option) uint64 {
		m, err := mongotenant.New(uri, opts...)
		require.NoError(t, err)
		defer m.Close(context.Background())
		acquire(t, m, "a").Release()
		s, ok := m.TenantStats("a")
		require.True(t, ok)
		return s.PoolSize
	}
	assert.Equal(t, mongotenant.DefaultPoolSize, poolSize(unreachable))
	assert.Equal(t, uint64(7), poolSize(unreachable+"?maxPoolSize=7"))
	assert.Equal(t, uint64(3), poolSize(unreachable+"?maxPoolSize=7", mongotenant.WithPoolSize(3)))
	assert.Equal(t, uint64(4), poolSize(unreachable, mongotenant.WithClientOptions(options.Client().SetMaxPoolSize(4))))
}

func TestAcquireCachesOneClientPerTenant(t *testing.T) {
	m := newManager(t)
	a1 := acquire(t, m, "alice")
	a2 := acquire(t, m, "alice")
	b := acquire(t, m, "bob")
	assert.Same(t, a1.Client(), a2.Client())
	assert.NotSame(t, a1.Client(), b.Client())
	assert.Equal(t, "user_alice_db", a1.Database().Name())
	assert.Equal(t, "alice", a1.TenantID())

	s := m.Stats()
	assert.Equal(t, 2, s.Clients)
	assert.Equal(t, 3, s.Leases)
	assert.Equal(t, uint64(2), s.Created)
	assert.Equal(t, uint64(2), s.Misses)
	assert.Equal(t, uint64(1), s.Hits)

	a1.Release()
	a1.Release() // idempotent
	a2.Release()
	b.Release()
	assert.Equal(t, 0, m.Stats().Leases)
	ts, ok := m.TenantStats("alice")
	require.True(t, ok)
	assert.Equal(t, "user_alice_db", ts.Database)
	assert.Equal(t, 1, ts.Sharing)
	assert.False(t, ts.LastUsed.Before(ts.Created))
}

func TestConcurrentFirstAcquireCreatesOneClient(t *testing.T) {
	m := newManager(t)
	const n = 1000
	var wg sync.WaitGroup
	start := make(chan struct{})
	clients := make([]*mongo.Client, n)
	for i := range n {
		wg.Go(func() {
			<-start
			l, err := m.Acquire(context.Background(), "t1")
			if !assert.NoError(t, err) {
				return
			}
			clients[i] = l.Client()
			l.Release()
		})
	}
	close(start)
	wg.Wait()
	s := m.Stats()
	assert.Equal(t, uint64(1), s.Created)
	assert.Equal(t, uint64(n), s.Hits+s.Misses)
	for _, c := range clients {
		assert.Same(t, clients[0], c)
	}
}

func TestLRUEvictsLeastRecentlyUsedUnleasedClient(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithMaxClients(2), mongotenant.WithClientRecycling(false))
	a := acquire(t, m, "a")
	b := acquire(t, m, "b")
	b.Release()
	clock.Advance(time.Second) // a is released later than b
	a.Release()

	acquire(t, m, "c").Release()
	_, aCached := m.TenantStats("a")
	_, bCached := m.TenantStats("b")
	assert.True(t, aCached, "a was used more recently")
	assert.False(t, bCached, "b was the least recently used")

	// A leased client is passed over while an unleased one exists.
	a = acquire(t, m, "a")
	acquire(t, m, "d").Release()
	_, aCached = m.TenantStats("a")
	_, cCached := m.TenantStats("c")
	assert.True(t, aCached, "leased a must not be chosen")
	assert.False(t, cCached)
	a.Release()

	s := m.Stats()
	assert.Equal(t, 2, s.Clients)
	assert.Equal(t, uint64(2), s.EvictedLRU)
	waitFor(t, "disconnects", func() bool { return m.Stats().Disconnects == 2 })
}

func TestEvictionWhileLeasedWaitsForLastRelease(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxClients(1))
	a := acquire(t, m, "a")
	a2 := acquire(t, m, "a")
	b := acquire(t, m, "b") // evicts a, which is leased
	defer b.Release()

	s := m.Stats()
	assert.Equal(t, 1, s.Clients)
	assert.Equal(t, 1, s.Retiring)
	assert.Equal(t, uint64(1), s.EvictedLRU)
	assert.Equal(t, uint64(0), s.Disconnects)
	assertConnected(t, a.Client())

	a.Release()
	assertConnected(t, a2.Client()) // one lease is still live
	assert.Equal(t, uint64(0), m.Stats().Disconnects)

	a2.Release()
	waitFor(t, "the retired client to disconnect", func() bool {
		s := m.Stats()
		return s.Disconnects == 1 && s.Retiring == 0
	})
	assert.ErrorIs(t, a2.Client().Ping(context.Background(), nil), mongo.ErrClientDisconnected)

	// The next Acquire of a builds a fresh client.
	a3 := acquire(t, m, "a")
	defer a3.Release()
	assert.NotSame(t, a2.Client(), a3.Client())
}

// assertConnected checks that c has not been disconnected. Nothing listens at
// the URI, so a live client fails server selection instead.
func assertConnected(t *testing.T, c *mongo.Client) {
	t.Helper()
	// A disconnected client says so whatever the ctx, even an expired one;
	// a connected one fails server selection. A short ctx spares the wait
	// for the selection timeout against the unreachable server.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := c.Ping(ctx, nil)
	require.Error(t, err)
	assert.NotErrorIs(t, err, mongo.ErrClientDisconnected)
}

func TestEvict(t *testing.T) {
	m := newManager(t)
	ctx := context.Background()

	a := acquire(t, m, "a")
	a.Release()
	require.NoError(t, m.Evict(ctx, "a"))
	assert.ErrorIs(t, a.Client().Ping(ctx, nil), mongo.ErrClientDisconnected, "unleased: disconnected before Evict returns")

	b := acquire(t, m, "b")
	require.NoError(t, m.Evict(ctx, "b"))
	_, cached := m.TenantStats("b")
	assert.False(t, cached)
	assertConnected(t, b.Client())
	b.Release()
	waitFor(t, "b to disconnect", func() bool { return m.Stats().Disconnects == 2 })

	assert.ErrorIs(t, m.Evict(ctx, "nobody"), mongotenant.ErrTenantNotFound)
	assert.ErrorIs(t, m.Evict(ctx, "../admin"), mongotenant.ErrInvalidTenant)
	assert.Equal(t, uint64(2), m.Stats().EvictedByApp)
}

func TestDoReleasesItsLease(t *testing.T) {
	m := newManager(t)
	boom := errors.New("boom")
	err := m.Do(context.Background(), "a", func(ctx context.Context, db *mongo.Database) error {
		assert.Equal(t, "user_a_db", db.Name())
		assert.Equal(t, 1, m.Stats().Leases)
		return boom
	})
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, 0, m.Stats().Leases)
	assert.ErrorIs(t, m.Do(context.Background(), "", nil), mongotenant.ErrInvalidTenant)
}

func TestDatabaseLeaseEndsWithContext(t *testing.T) {
	m := newManager(t)
	_, err := m.Database(context.Background(), "a")
	require.ErrorIs(t, err, mongotenant.ErrInvalidOption, "a ctx that never ends would pin the lease until Close")
	assert.Equal(t, 0, m.Stats().Tenants)

	ctx, cancel := context.WithCancel(context.Background())
	db, err := m.Database(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "user_a_db", db.Name())
	assert.Equal(t, 1, m.Stats().Leases)
	cancel()
	waitFor(t, "the lease to end", func() bool { return m.Stats().Leases == 0 })
}

func TestCloseWaitsForLeases(t *testing.T) {
	m, err := mongotenant.New(unreachable, mongotenant.WithClientOptions(
		options.Client().SetServerSelectionTimeout(100*time.Millisecond)))
	require.NoError(t, err)
	l := acquire(t, m, "a")
	acquire(t, m, "b").Release()

	closed := make(chan error, 1)
	go func() { closed <- m.Close(context.Background()) }()
	waitFor(t, "Close to refuse acquisitions", func() bool {
		l, err := m.Acquire(context.Background(), "a")
		if err == nil {
			l.Release() // Close has not begun yet
		}
		return errors.Is(err, mongotenant.ErrClosed)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with a lease outstanding", err)
	case <-time.After(50 * time.Millisecond):
	}
	assertConnected(t, l.Client())
	l.Release()
	require.NoError(t, <-closed)
	assert.ErrorIs(t, l.Client().Ping(context.Background(), nil), mongo.ErrClientDisconnected)

	s := m.Stats()
	assert.Equal(t, uint64(2), s.EvictedClose)
	assert.Equal(t, uint64(2), s.Disconnects)
	assert.Equal(t, 0, s.Clients+s.Retiring)
	assert.NoError(t, m.Close(context.Background()), "second Close")
	assert.ErrorIs(t, m.Evict(context.Background(), "a"), mongotenant.ErrClosed)
}

func TestCloseDeadlineCutsLeasesShort(t *testing.T) {
	m, err := mongotenant.New(unreachable)
	require.NoError(t, err)
	l := acquire(t, m, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = m.Close(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, l.Client().Ping(context.Background(), nil), mongo.ErrClientDisconnected)
	l.Release() // after Close: harmless
	assert.Equal(t, uint64(1), m.Stats().Disconnects)
}

func TestIdleReaper(t *testing.T) {
	const idle = 10 * time.Second
	m, clock := newFakeManager(t, mongotenant.WithIdleTimeout(idle))
	acquire(t, m, "idle").Release()
	busy := acquire(t, m, "busy")
	require.True(t, tick(t, clock, idle-time.Second))
	assert.Equal(t, 2, m.Stats().Clients, "not idle for the timeout yet")
	require.True(t, tick(t, clock, 2*time.Second+mongotenant.ClockResolution))
	s := m.Stats()
	assert.Equal(t, uint64(1), s.EvictedIdle, "reaped at most a second late")
	assert.Equal(t, uint64(1), s.ExpiredTenants)
	_, cached := m.TenantStats("busy")
	assert.True(t, cached, "a leased client is never idle")

	require.True(t, tick(t, clock, 3*idle))
	_, cached = m.TenantStats("busy")
	assert.True(t, cached, "still leased, still not idle")
	busy.Release()
	require.True(t, tick(t, clock, idle-time.Second), "the housekeeper runs while a tenant is held")
	assert.Equal(t, 1, m.Stats().Clients, "idle since its release, not since it was acquired")
	assert.False(t, tick(t, clock, 3*time.Second), "the housekeeper stops once nothing is left")
	s = m.Stats()
	assert.Equal(t, 0, s.Clients)
	assert.Equal(t, 0, s.Tenants)
	assert.Equal(t, uint64(2), s.EvictedIdle)
	waitFor(t, "the disconnects", func() bool { return m.Stats().Disconnects == 2 })

	// A new tenant starts the housekeeper again.
	acquire(t, m, "again").Release()
	require.True(t, tick(t, clock, idle))
	assert.False(t, tick(t, clock, 2*time.Second))
	assert.Equal(t, uint64(3), m.Stats().EvictedIdle)
}

func TestUserPoolMonitorStillReceivesEvents(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	mon := &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		mu.Lock()
		seen = append(seen, e.Type)
		mu.Unlock()
	}}
	m, err := mongotenant.New(unreachable, mongotenant.WithClientOptions(options.Client().SetPoolMonitor(mon)))
	require.NoError(t, err)
	acquire(t, m, "a").Release()
	require.NoError(t, m.Close(context.Background()))
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, seen, event.ConnectionPoolCreated)
	assert.Contains(t, seen, event.ConnectionPoolClosed)
}

// TestConcurrentChurn races acquisitions, evictions, the reaper and Close.
// Run under -race; the invariants hold at every snapshot.
func TestConcurrentChurn(t *testing.T) {
	const maxClients = 4
	m, err := mongotenant.New(unreachable,
		mongotenant.WithMaxClients(maxClients), mongotenant.WithIdleTimeout(5*time.Millisecond))
	require.NoError(t, err)
	ctx, stop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer stop()
	var wg sync.WaitGroup
	var acquired atomic.Uint64
	for g := range 32 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for ctx.Err() == nil {
				id := fmt.Sprintf("t%d", r.IntN(12))
				switch r.IntN(10) {
				case 0:
					err := m.Evict(context.Background(), id)
					if err != nil && !errors.Is(err, mongotenant.ErrTenantNotFound) {
						t.Errorf("Evict: %v", err)
						return
					}
				default:
					l, err := m.Acquire(context.Background(), id)
					if err != nil {
						t.Errorf("Acquire: %v", err)
						return
					}
					acquired.Add(1)
					if l.Database().Name() != "user_"+id+"_db" {
						t.Errorf("lease for %s has database %s", id, l.Database().Name())
					}
					l.Release()
				}
				if s := m.Stats(); s.Clients > maxClients {
					t.Errorf("Clients = %d > MaxClients", s.Clients)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, m.Close(context.Background()))
	s := m.Stats()
	assert.Equal(t, s.Created, s.Disconnects, "every client created was disconnected")
	assert.Equal(t, s.Created+s.Recycled, s.Evicted, "every client was evicted once, by a cause")
	assert.Equal(t, acquired.Load(), s.Hits+s.Misses)
	assert.Zero(t, s.Refused)
	assert.Equal(t, 0, s.Leases)
	t.Logf("acquired %d, created %d, recycled %d, evicted lru %d idle %d app %d close %d",
		acquired.Load(), s.Created, s.Recycled, s.EvictedLRU, s.EvictedIdle, s.EvictedByApp, s.EvictedClose)
}

// TestRecordsStayBoundedByClients: cycling 200 tenants through two clients
// leaves records for the cached clients only, not for every tenant seen.
func TestRecordsStayBoundedByClients(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxClients(2))
	for i := range 200 {
		acquire(t, m, fmt.Sprintf("t%d", i)).Release()
	}
	s := m.Stats()
	assert.Equal(t, 2, s.Clients)
	assert.Equal(t, 2, s.Tenants)

	// A tenant whose client the LRU evicted has no client to evict.
	assert.ErrorIs(t, m.Evict(context.Background(), "t0"), mongotenant.ErrTenantNotFound)
	assert.NoError(t, m.Evict(context.Background(), "t199"))
}
