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

// One node, poll monitoring, pool 10: a client costs 1 x (1 + 10) sockets.
const clientCost = 11

func TestBudgetClosesIdleClientsFirst(t *testing.T) {
	m := newManager(t, mongotenant.WithConnectionBudget(3*clientCost, mongotenant.BudgetFailFast))
	for _, id := range []string{"a", "b", "c"} {
		acquire(t, m, id).Release()
		time.Sleep(time.Millisecond) // distinct release times: a is the LRU
	}
	assert.Equal(t, 3*clientCost, m.Stats().BudgetUsed)
	acquire(t, m, "d").Release()
	s := m.Stats()
	assert.Equal(t, uint64(1), s.EvictedBudget)
	_, aCached := m.TenantStats("a")
	assert.False(t, aCached, "the least recently used idle client made room")
	assert.LessOrEqual(t, s.BudgetUsed, s.BudgetLimit)
	assert.Equal(t, 3, s.Clients)
}

func TestBudgetWithAllLeased(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy mongotenant.BudgetPolicy
	}{{"fail fast", mongotenant.BudgetFailFast}, {"wait", mongotenant.BudgetWait}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, mongotenant.WithConnectionBudget(3*clientCost, tc.policy))
			held := []*mongotenant.Lease{acquire(t, m, "a"), acquire(t, m, "b"), acquire(t, m, "c")}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			_, err := m.Acquire(ctx, "d")
			require.ErrorIs(t, err, mongotenant.ErrBudgetExceeded)
			if tc.policy == mongotenant.BudgetWait {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			} else {
				require.NotErrorIs(t, err, context.DeadlineExceeded, "fail fast does not wait for ctx")
			}
			if tc.policy == mongotenant.BudgetWait { // a release lets a waiter in
				got := acquireLater(m, "d")
				held[0].Release()
				require.NoError(t, <-got)
				held = held[1:]
			}
			for _, l := range held {
				l.Release()
			}
			assert.LessOrEqual(t, m.Stats().BudgetUsed, 3*clientCost)
		})
	}
}

func TestBudgetRejectsAClientThatCanNeverFit(t *testing.T) {
	m := newManager(t, mongotenant.WithConnectionBudget(clientCost-1, mongotenant.BudgetWait))
	_, err := m.Acquire(context.Background(), "a")
	require.ErrorIs(t, err, mongotenant.ErrBudgetExceeded)
}

// TestBudgetUnderLoad: the budget holds at every snapshot while 30
// goroutines cycle 20 tenants through room for three clients.
func TestBudgetUnderLoad(t *testing.T) {
	m := newManager(t, mongotenant.WithConnectionBudget(3*clientCost, mongotenant.BudgetWait))
	var wg sync.WaitGroup
	stop := time.Now().Add(300 * time.Millisecond)
	for g := range 30 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				l, err := m.Acquire(ctx, fmt.Sprintf("t%d", (g+i)%20))
				cancel()
				if err != nil {
					if !assert.ErrorIs(t, err, mongotenant.ErrBudgetExceeded) {
						return
					}
					continue
				}
				if s := m.Stats(); s.BudgetUsed > s.BudgetLimit || s.Clients+s.Retiring > 3 {
					t.Errorf("over budget: %+v", s)
				}
				l.Release()
			}
		})
	}
	wg.Wait()
	s := m.Stats()
	t.Logf("created %d, evicted for budget %d", s.Created, s.EvictedBudget)
	assert.Positive(t, s.EvictedBudget)
}
