package mongotenant_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestGroupOfGolden freezes the assignment: a tenant's group must never
// change between processes or releases, or its data would seem to move.
func TestGroupOfGolden(t *testing.T) {
	for _, tc := range []struct {
		id        string
		of8, of10 int
	}{
		{"alice", 4, 4}, {"bob", 2, 2}, {"carol", 7, 7}, {"acme-corp", 5, 5},
		{"tenant-0001", 0, 0}, {"tenant-0002", 7, 9}, {"x", 3, 3}, {"Z_9", 3, 9},
	} {
		assert.Equal(t, tc.of8, mongotenant.GroupOf(tc.id, 8), "%s of 8", tc.id)
		assert.Equal(t, tc.of10, mongotenant.GroupOf(tc.id, 10), "%s of 10", tc.id)
	}
	assert.Equal(t, 0, mongotenant.GroupOf("any", 1))
	assert.Equal(t, 0, mongotenant.GroupOf("any", 0))
}

// TestGroupOfResize: growing 8 -> 9 groups moves at most 15% of 10,000
// tenants, each of them to the new group, and the groups stay balanced.
func TestGroupOfResize(t *testing.T) {
	const n = 10000
	moved := 0
	sizes := make([]int, 9)
	for i := range n {
		id := fmt.Sprintf("tenant-%05d", i)
		before, after := mongotenant.GroupOf(id, 8), mongotenant.GroupOf(id, 9)
		if before != after {
			moved++
			assert.Equal(t, 8, after, "a moved tenant goes to the new group")
		}
		sizes[after]++
	}
	t.Logf("moved %d of %d (%.1f%%); sizes %v", moved, n, 100*float64(moved)/n, sizes)
	assert.LessOrEqual(t, moved, n*15/100)
	for g, size := range sizes {
		assert.InDelta(t, n/9, size, n/9*0.15, "group %d", g)
	}
}

func TestGroupedAssignmentIsTheSameInTwoManagers(t *testing.T) {
	a := newManager(t, mongotenant.WithStrategy(mongotenant.Grouped(8)))
	b := newManager(t, mongotenant.WithStrategy(mongotenant.Grouped(8)))
	for i := range 50 {
		id := fmt.Sprintf("t%d", i)
		acquire(t, a, id).Release()
		acquire(t, b, id).Release()
		sa, _ := a.TenantStats(id)
		sb, _ := b.TenantStats(id)
		require.Equal(t, sa.Group, sb.Group, id)
		require.Equal(t, fmt.Sprintf("group-%d", mongotenant.GroupOf(id, 8)), sa.Group)
	}
	assert.LessOrEqual(t, a.Stats().Clients, 8)
}

func TestSharedServesEveryTenantFromOneClient(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()))
	leases := make([]*mongotenant.Lease, 0, 3)
	for _, id := range []string{"a", "b", "c"} {
		leases = append(leases, acquire(t, m, id))
	}
	for i, l := range leases {
		assert.Same(t, leases[0].Client(), l.Client())
		assert.Equal(t, "user_"+[]string{"a", "b", "c"}[i]+"_db", l.Database().Name())
		l.Release()
	}
	s := m.Stats()
	assert.Equal(t, 1, s.Clients)
	assert.Equal(t, uint64(1), s.Created)
	assert.Equal(t, 3, s.Tenants)
	ts, ok := m.TenantStats("b")
	require.True(t, ok)
	assert.Equal(t, 3, ts.Sharing)

	// Evicting one tenant of a shared client leaves the client to the others.
	require.NoError(t, m.Evict(context.Background(), "a"))
	assert.Equal(t, 1, m.Stats().Clients)
	assertConnected(t, leases[1].Client())
}

func TestTenantAuthForcesAClientPerTenant(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithTenantAuth(func(_ context.Context, id string) (options.Credential, error) {
			return options.Credential{Username: "u_" + id, Password: "secret-" + id}, nil
		}))
	a := acquire(t, m, "a")
	b := acquire(t, m, "b")
	defer a.Release()
	defer b.Release()
	assert.NotSame(t, a.Client(), b.Client())
	assert.Equal(t, 2, m.Stats().Clients)
}
