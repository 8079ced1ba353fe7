package mongotenant_test

import (
	"context"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestRecyclingHandsAnUnleasedClientOn: at the cap, the client evicted for
// a new tenant goes to it, connected, instead of being disconnected while
// a new one connects. Its tenant is gone first, and its figures start over.
func TestRecyclingHandsAnUnleasedClientOn(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxClients(1))
	a := acquire(t, m, "a")
	aClient := a.Client()
	a.Release()

	b := acquire(t, m, "b")
	assert.Same(t, aClient, b.Client(), "a's client, recycled")
	assertConnected(t, b.Client())
	assert.Equal(t, "user_b_db", b.Database().Name())
	_, aCached := m.TenantStats("a")
	assert.False(t, aCached, "one tenant per dedicated client")
	ts, ok := m.TenantStats("b")
	require.True(t, ok)
	assert.Equal(t, 1, ts.Sharing)
	assert.Equal(t, "b", ts.Group)
	s := m.Stats()
	assert.Equal(t, uint64(1), s.Created)
	assert.Equal(t, uint64(1), s.Recycled)
	assert.Equal(t, uint64(1), s.EvictedLRU)
	assert.Zero(t, s.Disconnects)

	// A leased client is never recycled: it serves its lease while c gets
	// a client of its own.
	c := acquire(t, m, "c")
	assert.NotSame(t, b.Client(), c.Client())
	assertConnected(t, b.Client())
	b.Release()
	c.Release()
	waitFor(t, "b's client to disconnect", func() bool { return isDisconnected(b.Client()) })
	s = m.Stats()
	assert.Equal(t, uint64(2), s.Created)
	assert.Equal(t, uint64(1), s.Recycled)
}

// TestRecyclingNeedsTheSameOptions: no recycling when switched off, across
// pool sizes, or with per-tenant credentials.
func TestRecyclingNeedsTheSameOptions(t *testing.T) {
	tierOf := func(_ context.Context, id string) (string, error) {
		return map[string]string{"a": "free", "b": "premium"}[id], nil
	}
	for _, tc := range []struct {
		name string
		opts []mongotenant.Option
	}{
		{"switched off", []mongotenant.Option{mongotenant.WithClientRecycling(false)}},
		{"another pool size", []mongotenant.Option{mongotenant.WithTiers(tierOf, nil)}},
		{"per-tenant credentials", []mongotenant.Option{mongotenant.WithTenantAuth(
			func(_ context.Context, id string) (options.Credential, error) {
				return options.Credential{Username: id, Password: "p"}, nil
			})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, append(tc.opts, mongotenant.WithMaxClients(1))...)
			a := acquire(t, m, "a")
			a.Release()
			b := acquire(t, m, "b")
			defer b.Release()
			assert.NotSame(t, a.Client(), b.Client())
			waitFor(t, "a's client to disconnect", func() bool { return isDisconnected(a.Client()) })
			s := m.Stats()
			assert.Equal(t, uint64(2), s.Created)
			assert.Zero(t, s.Recycled)
		})
	}
}
