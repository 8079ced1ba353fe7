package mongotenant_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// limitOf returns tenantID's adaptive limit, failing the test if it has
// no client.
func limitOf(t *testing.T, m *mongotenant.Manager, tenantID string) int {
	t.Helper()
	s, ok := m.TenantStats(tenantID)
	require.True(t, ok)
	return s.Limit
}

// hold acquires tenantID, lets d pass on clock, and releases.
func hold(t *testing.T, m *mongotenant.Manager, clock *mongotenant.FakeClock, tenantID string, d time.Duration) {
	t.Helper()
	l := acquire(t, m, tenantID)
	clock.Advance(d)
	l.Release()
}

// TestAdaptiveLimitFollowsLatency: the limit starts at the pool size,
// each slow lease cuts it by a tenth down to 1, and fast leases raise it
// by one over the limit back to the pool size, not beyond.
func TestAdaptiveLimitFollowsLatency(t *testing.T) {
	const target = 10 * time.Millisecond
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(10),
		mongotenant.WithAdaptiveLimit(target))
	acquire(t, m, "a").Release()
	require.Equal(t, 10, limitOf(t, m, "a"))

	want := 10.0
	for range 30 {
		hold(t, m, clock, "a", 2*target)
		want = max(want*0.9, 1)
		require.Equal(t, int(want), limitOf(t, m, "a"))
	}
	require.Equal(t, 1, limitOf(t, m, "a"))

	for range 200 {
		hold(t, m, clock, "a", target) // within target: at it counts as fast
		want = min(want+1/want, 10)
		require.Equal(t, int(want), limitOf(t, m, "a"))
	}
	require.Equal(t, 10, limitOf(t, m, "a"))

	s, _ := m.TenantStats("a")
	assert.Zero(t, s.MaxLeases, "the route's bulkhead is unchanged")
}

// TestAdaptiveLimitCutsOncePerRound: leases granted before a cut do not
// cut again when they end slow; the next round's first slow lease does.
func TestAdaptiveLimitCutsOncePerRound(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(10),
		mongotenant.WithAdaptiveLimit(10*time.Millisecond))
	ls := []*mongotenant.Lease{acquire(t, m, "a"), acquire(t, m, "a"), acquire(t, m, "a"), acquire(t, m, "a")}
	clock.Advance(50 * time.Millisecond)
	for _, l := range ls {
		l.Release()
	}
	require.Equal(t, 9, limitOf(t, m, "a"), "one round of four slow leases cut more than once")
	hold(t, m, clock, "a", 50*time.Millisecond)
	require.Equal(t, 8, limitOf(t, m, "a")) // 8.1
}

// TestAdaptiveLimitBoundsLeases: at its limit a tenant's next Acquire
// waits, fails with ErrTenantBusy when its ctx ends, and is granted when
// a lease ends; other tenants are not held. The ceiling is the tenant's
// bulkhead when it has one.
func TestAdaptiveLimitBoundsLeases(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(10),
		mongotenant.WithMaxLeases(4), mongotenant.WithAdaptiveLimit(10*time.Millisecond))
	acquire(t, m, "a").Release()
	require.Equal(t, 4, limitOf(t, m, "a"))
	for range 20 {
		hold(t, m, clock, "a", time.Second)
	}
	require.Equal(t, 1, limitOf(t, m, "a"))

	held := acquire(t, m, "a")
	_, err := m.Acquire(short(t), "a")
	require.ErrorIs(t, err, mongotenant.ErrTenantBusy)
	acquire(t, m, "b").Release() // another tenant is not held

	got := acquireLater(m, "a")
	waitFor(t, "a caller waiting", func() bool { return m.Stats().Waiting == 1 })
	held.Release() // fast: the limit rises to 2, and the waiter gets its lease
	require.NoError(t, <-got)
	assert.Equal(t, 2, limitOf(t, m, "a"))
}

// TestAdaptiveLimitRiseWakesWaiters: when a fast lease raises the limit,
// the callers the new room admits get their leases, not only the one the
// ended lease makes room for.
func TestAdaptiveLimitRiseWakesWaiters(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(10),
		mongotenant.WithAdaptiveLimit(10*time.Millisecond))
	acquire(t, m, "a").Release()
	for range 7 { // 10 × 0.9^7 = 4.78
		hold(t, m, clock, "a", time.Second)
	}
	for range 6 { // 4.78 → 4.99 → 5.19 → 5.39 → 5.57 → 5.75 → 5.92
		hold(t, m, clock, "a", 0)
	}
	require.Equal(t, 5, limitOf(t, m, "a"))

	var held []*mongotenant.Lease
	for range 5 {
		held = append(held, acquire(t, m, "a"))
	}
	got := []<-chan error{acquireLater(m, "a"), acquireLater(m, "a")}
	waitFor(t, "two callers waiting", func() bool { return m.Stats().Waiting == 2 })
	held[0].Release() // 5.92 + 1/5.92 = 6.09: limit 6, and 4 held: room for both
	for _, g := range got {
		require.NoError(t, <-g)
	}
	for _, l := range held[1:] {
		l.Release()
	}
}

// TestAdaptiveLimitOptionIsChecked: a negative target is refused.
func TestAdaptiveLimitOptionIsChecked(t *testing.T) {
	_, err := mongotenant.New(unreachable, mongotenant.WithAdaptiveLimit(-time.Second))
	require.ErrorIs(t, err, mongotenant.ErrInvalidOption)
}

// TestAdaptiveLimitOffByDefault: without the option, Limit is 0 and
// leases are unlimited.
func TestAdaptiveLimitOffByDefault(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()))
	for range 20 {
		hold(t, m, clock, "a", time.Minute)
	}
	assert.Zero(t, limitOf(t, m, "a"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var held []*mongotenant.Lease
	for range 50 {
		l, err := m.Acquire(ctx, "a")
		require.NoError(t, err)
		held = append(held, l)
	}
	for _, l := range held {
		l.Release()
	}
}

// TestAdaptiveLimitConcurrentReleasesCutOnce: a round of slow leases
// released at once from many goroutines cuts the limit once, however
// their updates interleave. A race shows in some rounds, not all: each
// round uses a tenant of its own.
func TestAdaptiveLimitConcurrentReleasesCutOnce(t *testing.T) {
	t.Parallel() // a Manager of its own, on fake time
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(64),
		mongotenant.WithAdaptiveLimit(10*time.Millisecond))
	for round := range 1000 {
		id := fmt.Sprint("t", round)
		ls := make([]*mongotenant.Lease, 32)
		for i := range ls {
			ls[i] = acquire(t, m, id)
		}
		clock.Advance(50 * time.Millisecond)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, l := range ls {
			wg.Go(func() {
				<-start
				l.Release()
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, 57, limitOf(t, m, id), "round %d: 64 × 0.9 is 57.6; two cuts give 51", round)
	}
}
