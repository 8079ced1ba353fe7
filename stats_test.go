package mongotenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHitsMissesAndWaitsAreExact: a hit is a lease served with nothing to
// resolve, bind, create, initialize or wait for; everything else served is
// a miss; waits are counted with their duration, on the Manager's clock.
func TestHitsMissesAndWaitsAreExact(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithMaxLeases(1))
	want := mongotenant.Stats{}
	check := func(what string) {
		t.Helper()
		s := m.Stats()
		assert.Equal(t, want.Hits, s.Hits, what)
		assert.Equal(t, want.Misses, s.Misses, what)
		assert.Equal(t, want.Waits, s.Waits, what)
		assert.Equal(t, want.WaitDuration, s.WaitDuration, what)
		assert.Equal(t, want.Refused, s.Refused, what)
	}

	held := acquire(t, m, "a")
	want.Misses++
	check("first Acquire: resolved and created")

	got := acquireLater(m, "a")
	waitFor(t, "the waiter", func() bool { return m.Stats().Waiting == 1 })
	clock.Advance(3 * time.Second)
	held.Release()
	require.NoError(t, <-got)
	want.Misses++
	want.Waits++
	want.WaitDuration = 3 * time.Second
	check("a bulkhead wait")

	for range 3 {
		acquire(t, m, "a").Release()
	}
	want.Hits += 3
	check("cached")

	_, err := m.Acquire(context.Background(), "$bad")
	require.ErrorIs(t, err, mongotenant.ErrInvalidTenant)
	want.Refused++
	check("refused")
	assert.Equal(t, 0, m.Stats().Waiting)
}

// TestHousekeeperStopsWhenNothingIsLeft: whatever removes the last tenant,
// the housekeeper stops at its next tick.
func TestHousekeeperStopsWhenNothingIsLeft(t *testing.T) {
	for _, tc := range []struct {
		name string
		// remove removes the last tenant, and says whether that stopped the
		// housekeeper already (it does when the housekeeper removes it).
		remove func(t *testing.T, m *mongotenant.Manager, clock *mongotenant.FakeClock) (stopped bool)
	}{
		{"Evict", func(t *testing.T, m *mongotenant.Manager, _ *mongotenant.FakeClock) bool {
			require.NoError(t, m.Evict(context.Background(), "a"))
			return false
		}},
		{"Forget", func(t *testing.T, m *mongotenant.Manager, _ *mongotenant.FakeClock) bool {
			require.NoError(t, m.Forget(context.Background(), "a"))
			return false
		}},
		{"reaper", func(t *testing.T, m *mongotenant.Manager, clock *mongotenant.FakeClock) bool {
			return !tick(t, clock, 3*time.Minute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := newFakeManager(t, mongotenant.WithIdleTimeout(time.Minute))
			acquire(t, m, "a").Release()
			require.True(t, tick(t, clock, mongotenant.ClockResolution), "running while a tenant is held")
			stopped := tc.remove(t, m, clock)
			assert.Equal(t, 0, m.Stats().Tenants)
			if !stopped {
				assert.False(t, tick(t, clock, 2*mongotenant.ClockResolution), "stopped at its next tick")
			}
		})
	}
}

// TestStatsCostsClientsNotTenants: Stats of a shared client with many
// tenants reads the client's counter cells, not the tenants.
func TestStatsCountsEveryLeaseOfSharedTenants(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()))
	var held []*mongotenant.Lease
	for i := range 100 {
		held = append(held, acquire(t, m, "t"+string(rune('A'+i%26))+string(rune('a'+i/26))))
	}
	s := m.Stats()
	assert.Equal(t, 100, s.Leases)
	assert.Equal(t, 100, s.Tenants)
	assert.Equal(t, 1, s.Clients)
	for _, l := range held {
		l.Release()
	}
	assert.Equal(t, 0, m.Stats().Leases)
}
