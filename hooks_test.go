package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// recorder records every hook call as a line, and checks that each hook's
// ctx descends from the one AcquireStart returned.
type recorder struct {
	mu     sync.Mutex
	lines  []string
	events []any
	badCtx []string // hooks whose ctx lacked the acquisition's mark
}

type markKey struct{}

func (r *recorder) add(ctx context.Context, name string, e any, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
	r.events = append(r.events, e)
	if ctx != nil && ctx.Value(markKey{}) == nil {
		r.badCtx = append(r.badCtx, name)
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := r.lines
	r.lines, r.events = nil, nil
	return lines
}

func (r *recorder) hooks() mongotenant.Hooks {
	return mongotenant.Hooks{
		AcquireStart: func(ctx context.Context, id string) context.Context {
			r.add(nil, "AcquireStart", id, "acquire "+id)
			return context.WithValue(ctx, markKey{}, id)
		},
		AcquireEnd: func(ctx context.Context, e mongotenant.AcquireEvent) {
			r.add(ctx, "AcquireEnd", e, fmt.Sprintf("acquired %s group=%s reason=%s err=%t waited=%t", e.TenantID, e.Group, e.Reason, e.Err != nil, e.Waited))
		},
		RouteStart: func(ctx context.Context, id string) context.Context {
			r.add(ctx, "RouteStart", id, "route "+id)
			return ctx
		},
		RouteEnd: func(ctx context.Context, e mongotenant.RouteEvent) {
			r.add(ctx, "RouteEnd", e, fmt.Sprintf("routed %s group=%s tier=%s refresh=%t err=%t", e.TenantID, e.Group, e.Tier, e.Refresh, e.Err != nil))
		},
		InitStart: func(ctx context.Context, id string) context.Context {
			r.add(ctx, "InitStart", id, "init "+id)
			return ctx
		},
		InitEnd: func(ctx context.Context, e mongotenant.InitEvent) {
			r.add(ctx, "InitEnd", e, fmt.Sprintf("initialized %s group=%s err=%t", e.TenantID, e.Group, e.Err != nil))
		},
		ClientCreated: func(ctx context.Context, e mongotenant.ClientEvent) {
			r.add(ctx, "ClientCreated", e, fmt.Sprintf("created group=%s for=%s pool=%d err=%t", e.Group, e.TenantID, e.PoolSize, e.Err != nil))
		},
		ClientRecycled: func(ctx context.Context, e mongotenant.ClientEvent) {
			r.add(ctx, "ClientRecycled", e, fmt.Sprintf("recycled group=%s for=%s from=%s cause=%s", e.Group, e.TenantID, e.From, e.Cause))
		},
		ClientDisconnected: func(e mongotenant.ClientEvent) {
			r.add(nil, "ClientDisconnected", e, fmt.Sprintf("disconnected group=%s cause=%s", e.Group, e.Cause))
		},
	}
}

// TestHooksSeeEachStep: an acquisition that leaves the hot path runs the
// acquisition hooks around the route, client and init hooks, in order,
// each with the ctx AcquireStart returned, which the Router and the init
// hook get too; a hit runs none; recycling, disconnects and refusals are
// reported with their cause or reason; and no Group is ever a tenant ID.
func TestHooksSeeEachStep(t *testing.T) {
	var rec recorder
	var sawMark sync.Map // callback -> tenant ID in its ctx
	tiers := func(ctx context.Context, id string) (string, error) {
		sawMark.Store("tierOf "+id, ctx.Value(markKey{}))
		return "free", nil
	}
	m, clock := newFakeManager(t, mongotenant.WithHooks(rec.hooks()), mongotenant.WithMaxClients(1),
		mongotenant.WithTiers(tiers, nil),
		mongotenant.WithInit(func(ctx context.Context, id string, db *mongo.Database) error {
			sawMark.Store("init "+id, ctx.Value(markKey{}))
			return nil
		}))

	acquire(t, m, "alice").Release()
	assert.Equal(t, []string{
		"acquire alice",
		"route alice",
		"routed alice group=dedicated tier=free refresh=false err=false",
		"created group=dedicated for=alice pool=3 err=false",
		"init alice",
		"initialized alice group=dedicated err=false",
		"acquired alice group=dedicated reason= err=false waited=false",
	}, rec.take())
	got, _ := sawMark.Load("tierOf alice")
	assert.Equal(t, "alice", got, "the Router gets AcquireStart's ctx")
	got, _ = sawMark.Load("init alice")
	assert.Equal(t, "alice", got, "the init hook gets AcquireStart's ctx")

	acquire(t, m, "alice").Release()
	assert.Empty(t, rec.take(), "a hit runs no hook")

	clock.Advance(time.Second) // alice is the least recently used
	acquire(t, m, "bob").Release()
	assert.Equal(t, []string{
		"acquire bob",
		"route bob",
		"routed bob group=dedicated tier=free refresh=false err=false",
		"recycled group=dedicated for=bob from=dedicated cause=lru",
		"init bob",
		"initialized bob group=dedicated err=false",
		"acquired bob group=dedicated reason= err=false waited=false",
	}, rec.take())

	rec.mu.Lock()
	assert.Empty(t, rec.badCtx, "hooks that did not get AcquireStart's ctx")
	rec.mu.Unlock()

	require.NoError(t, m.Refresh(context.Background(), "bob")) // no acquisition: no mark
	assert.Equal(t, []string{"routed bob group=dedicated tier=free refresh=true err=false"}, rec.take()[1:])

	require.NoError(t, m.Evict(context.Background(), "bob"))
	assert.Equal(t, []string{"disconnected group=dedicated cause=app"}, rec.take())

	_, err := m.Acquire(context.Background(), "bad id")
	require.ErrorIs(t, err, mongotenant.ErrInvalidTenant)
	assert.Equal(t, []string{"acquire bad id", "acquired bad id group= reason=invalid err=true waited=false"}, rec.take())
}

// TestHookEventTimes: events carry the Manager's clock: Start in wall time,
// Duration and Wait from the monotonic clock.
func TestHookEventTimes(t *testing.T) {
	var mu sync.Mutex
	var ends []mongotenant.AcquireEvent
	m, clock := newFakeManager(t, mongotenant.WithMaxLeases(1), mongotenant.WithHooks(mongotenant.Hooks{
		AcquireEnd: func(_ context.Context, e mongotenant.AcquireEvent) {
			mu.Lock()
			ends = append(ends, e)
			mu.Unlock()
		},
	}))
	held := acquire(t, m, "a")
	got := acquireLater(m, "a")
	waitFor(t, "the waiter", func() bool { return m.Stats().Waiting == 1 })
	clock.Advance(3 * time.Second)
	held.Release()
	require.NoError(t, <-got)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, ends, 2)
	w := ends[1]
	assert.True(t, w.Waited)
	assert.Equal(t, 3*time.Second, w.Wait)
	assert.Equal(t, 3*time.Second, w.Duration)
	assert.Equal(t, ends[0].Start, w.Start, "both started before the clock moved")
	assert.False(t, w.Start.IsZero())
}

// TestPanickingHooksAreRecovered: hooks only observe; a panicking hook is
// recovered and logged, and the acquisition, eviction and Close go on.
func TestPanickingHooksAreRecovered(t *testing.T) {
	logs := &syncBuffer{}
	panics := mongotenant.Hooks{
		AcquireStart:       func(context.Context, string) context.Context { panic("AcquireStart") },
		AcquireEnd:         func(context.Context, mongotenant.AcquireEvent) { panic("AcquireEnd") },
		RouteStart:         func(context.Context, string) context.Context { panic("RouteStart") },
		RouteEnd:           func(context.Context, mongotenant.RouteEvent) { panic("RouteEnd") },
		InitStart:          func(context.Context, string) context.Context { panic("InitStart") },
		InitEnd:            func(context.Context, mongotenant.InitEvent) { panic("InitEnd") },
		ClientCreated:      func(context.Context, mongotenant.ClientEvent) { panic("ClientCreated") },
		ClientRecycled:     func(context.Context, mongotenant.ClientEvent) { panic("ClientRecycled") },
		ClientDisconnected: func(mongotenant.ClientEvent) { panic("ClientDisconnected") },
		PoolEvent:          func(string, *event.PoolEvent) { panic("PoolEvent") },
	}
	var rec recorder
	m := newManager(t, mongotenant.WithHooks(panics), mongotenant.WithHooks(rec.hooks()),
		mongotenant.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))), mongotenant.WithMaxClients(1),
		mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { return nil }))

	acquire(t, m, "a").Release()
	acquire(t, m, "b").Release()
	require.NoError(t, m.Evict(context.Background(), "b"))
	s := m.Stats()
	assert.Equal(t, 0, s.Leases)
	assert.Equal(t, uint64(2), s.Misses)
	assert.Contains(t, rec.take(), "acquired b group=dedicated reason= err=false waited=false",
		"hooks of a later WithHooks still run after one panics")
	for _, name := range []string{"AcquireStart", "AcquireEnd", "RouteStart", "RouteEnd", "InitStart", "InitEnd", "ClientCreated", "ClientRecycled", "ClientDisconnected"} {
		assert.Contains(t, logs.String(), "hook="+name, "a recovered panic is logged")
	}
}

// TestHooksSeeAPanickingCallback: a Router or an init hook that panics
// still ends the acquisition's and the step's hooks, with reason panic.
func TestHooksSeeAPanickingCallback(t *testing.T) {
	for _, step := range []string{"route", "init"} {
		t.Run(step, func(t *testing.T) {
			var rec recorder
			opts := []mongotenant.Option{mongotenant.WithHooks(rec.hooks())}
			if step == "route" {
				opts = append(opts, mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error { panic(boom{}) }))
			} else {
				opts = append(opts, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { panic(boom{}) }))
			}
			m := newManager(t, opts...)
			assert.PanicsWithValue(t, boom{}, func() { _, _ = m.Acquire(context.Background(), "a") })
			lines := rec.take()
			require.NotEmpty(t, lines)
			assert.Equal(t, "acquired a group= reason=panic err=true waited=false", lines[len(lines)-1])
			if step == "route" {
				assert.Contains(t, lines, "routed a group= tier= refresh=false err=true")
			} else {
				assert.Contains(t, lines, "initialized a group=dedicated err=true")
			}
			assert.Equal(t, 0, m.Stats().Leases)
		})
	}
}

// TestGroupsNeverNameATenant: under every strategy, and with per-tenant
// credentials, no event's Group is a tenant ID.
func TestGroupsNeverNameATenant(t *testing.T) {
	for _, strategy := range []mongotenant.Strategy{mongotenant.Dedicated(), mongotenant.Shared(), mongotenant.Grouped(3)} {
		var rec recorder
		m := newManager(t, mongotenant.WithHooks(rec.hooks()), mongotenant.WithStrategy(strategy), mongotenant.WithMaxClients(2))
		for _, id := range []string{"t1", "t2", "t3", "t4"} {
			acquire(t, m, id).Release()
			require.NoError(t, m.Evict(context.Background(), id))
		}
		rec.mu.Lock()
		for _, e := range rec.events {
			var group string
			switch e := e.(type) {
			case mongotenant.AcquireEvent:
				group = e.Group
			case mongotenant.RouteEvent:
				group = e.Group
			case mongotenant.ClientEvent:
				group = e.Group + e.From
			}
			assert.NotRegexp(t, `t\d`, group, "%T under %T", e, strategy)
		}
		assert.NotEmpty(t, rec.events)
		rec.mu.Unlock()
	}
}

// TestGroupStats: one entry per group, dedicated clients together; figures
// follow the clients; a group keeps its entry after its clients go.
func TestGroupStats(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Grouped(2)), mongotenant.WithPoolSize(4))
	ids := []string{"a", "b", "c", "d", "e", "f"}
	want := map[string]int{}
	for _, id := range ids {
		acquire(t, m, id).Release()
		want[fmt.Sprintf("group-%d", mongotenant.GroupOf(id, 2))]++
	}
	gs := m.GroupStats()
	require.Len(t, gs, len(want))
	for _, g := range gs {
		assert.Equal(t, 1, g.Clients, g.Group)
		assert.Equal(t, want[g.Group], g.Tenants, g.Group)
		assert.Equal(t, 4, g.MaxConnections, g.Group)
	}
	for _, id := range ids {
		require.NoError(t, m.Evict(context.Background(), id))
	}
	for _, g := range m.GroupStats() {
		assert.Equal(t, mongotenant.GroupStats{Group: g.Group}, g, "no clients left")
	}

	d := newManager(t)
	held := acquire(t, d, "x")
	acquire(t, d, "y").Release()
	assert.Equal(t, []mongotenant.GroupStats{{Group: mongotenant.DedicatedGroup, Clients: 2, Tenants: 2, MaxConnections: 20}}, d.GroupStats())
	require.NoError(t, d.Evict(context.Background(), "x"))
	assert.Equal(t, []mongotenant.GroupStats{{Group: mongotenant.DedicatedGroup, Clients: 1, Retiring: 1, Tenants: 1, MaxConnections: 10}}, d.GroupStats(),
		"an evicted client with a lease is retiring")
	held.Release()
}

// TestTierStats: tenants and their leases per tier.
func TestTierStats(t *testing.T) {
	tierOf := func(_ context.Context, id string) (string, error) {
		if id[0] == 'p' {
			return "premium", nil
		}
		return "free", nil
	}
	m := newManager(t, mongotenant.WithTiers(tierOf, nil))
	l1, l2 := acquire(t, m, "p1"), acquire(t, m, "p1")
	acquire(t, m, "p2").Release()
	l3 := acquire(t, m, "f1")
	assert.Equal(t, []mongotenant.TierStats{
		{Tier: "free", Tenants: 1, Bound: 1, Leases: 1},
		{Tier: "premium", Tenants: 2, Bound: 2, Leases: 2},
	}, m.TierStats())
	require.NoError(t, m.Evict(context.Background(), "p1"))
	assert.Equal(t, []mongotenant.TierStats{
		{Tier: "free", Tenants: 1, Bound: 1, Leases: 1},
		{Tier: "premium", Tenants: 2, Bound: 1, Leases: 2},
	}, m.TierStats(), "an evicted tenant's leases stay in its last tier until released")
	l1.Release()
	l2.Release()
	l3.Release()
	require.NoError(t, m.Evict(context.Background(), "p2"))
	assert.Equal(t, []mongotenant.TierStats{
		{Tier: "free", Tenants: 1, Bound: 1},
	}, m.TierStats())
}

// TestTenantsIterator: every bound tenant once, with its stats; the loop
// may stop early and may call the Manager.
func TestTenantsIterator(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()))
	want := map[string]bool{}
	for i := range 500 {
		id := fmt.Sprintf("t%d", i)
		acquire(t, m, id).Release()
		want[id] = true
	}
	held := acquire(t, m, "t7")
	seen := map[string]bool{}
	for id, ts := range m.Tenants() {
		assert.False(t, seen[id], "yielded twice: %s", id)
		seen[id] = true
		assert.Equal(t, "user_"+id+"_db", ts.Database)
		assert.Equal(t, 500, ts.Sharing)
		if id == "t7" {
			assert.Equal(t, 1, ts.Leases)
		}
	}
	assert.Equal(t, want, seen)
	held.Release() // an evicted tenant with a lease is held until it is released

	n := 0
	for id := range m.Tenants() {
		require.NoError(t, m.Evict(context.Background(), id)) // no lock is held while yielding
		if n++; n == 10 {
			break
		}
	}
	assert.Equal(t, 490, m.Stats().Tenants)
}

// TestPing: Ping goes through a lease and releases it; PingDeployment works
// with or without a cached client; both fail against an unreachable server
// within ctx, and with ErrClosed after Close.
func TestPing(t *testing.T) {
	m, err := mongotenant.New(unreachable)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = m.PingDeployment(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil, "bounded by ctx: %v", err)

	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	require.Error(t, m.Ping(ctx2, "a"))
	assert.Equal(t, 0, m.Stats().Leases, "the lease is released")
	assert.Equal(t, 1, m.Stats().Clients)

	ctx3, cancel3 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel3()
	require.Error(t, m.PingDeployment(ctx3), "through the cached client")
	assert.Equal(t, 1, m.Stats().Clients)

	require.ErrorIs(t, m.Ping(context.Background(), "bad id"), mongotenant.ErrInvalidTenant)

	require.NoError(t, m.Close(context.Background()))
	require.ErrorIs(t, m.PingDeployment(context.Background()), mongotenant.ErrClosed)
	require.ErrorIs(t, m.Ping(context.Background(), "a"), mongotenant.ErrClosed)
}
