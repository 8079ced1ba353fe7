package mongotenant_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	m := newManager(t, mongotenant.WithTiers(b.tierOf, nil), mongotenant.WithRouteTTL(10*time.Millisecond))
	acquire(t, m, "acme").Release()
	b.set("acme", "enterprise")
	waitFor(t, "the new tier", func() bool {
		acquire(t, m, "acme").Release() // a Release past the TTL starts the refresh
		s, _ := m.TenantStats("acme")
		return s.Tier == "enterprise" && s.PoolSize == 20
	})
}
