package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One node, poll monitoring, pool 10: a client costs 1 x (1 + 10) sockets.
const clientCost = 11

func TestBudgetClosesIdleClientsFirst(t *testing.T) {
	for _, recycle := range []bool{true, false} {
		t.Run(fmt.Sprintf("recycle=%t", recycle), func(t *testing.T) {
			m, clock := newFakeManager(t, mongotenant.WithConnectionBudget(3*clientCost, mongotenant.BudgetFailFast),
				mongotenant.WithClientRecycling(recycle))
			for _, id := range []string{"a", "b", "c"} {
				acquire(t, m, id).Release()
				clock.Advance(time.Second) // distinct release times: a is the LRU
			}
			assert.Equal(t, 3*clientCost, m.Stats().BudgetUsed)
			acquire(t, m, "d").Release()
			s := m.Stats()
			assert.Equal(t, uint64(1), s.EvictedBudget)
			_, aCached := m.TenantStats("a")
			assert.False(t, aCached, "the least recently used idle client made room")
			assert.LessOrEqual(t, s.BudgetUsed, s.BudgetLimit)
			assert.Equal(t, 3, s.Clients)
			if recycle {
				assert.Equal(t, uint64(1), s.Recycled, "a's client went to d")
				assert.Equal(t, uint64(3), s.Created)
			} else {
				assert.Zero(t, s.Recycled)
				assert.Equal(t, uint64(4), s.Created)
			}
		})
	}
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
// goroutines cycle 20 tenants through room for three clients. An
// acquisition may fail only by its own ctx: waiting for the budget
// (ErrBudgetExceeded) or for another caller's client creation.
func TestBudgetUnderLoad(t *testing.T) {
	m := newManager(t, mongotenant.WithConnectionBudget(3*clientCost, mongotenant.BudgetWait))
	var wg sync.WaitGroup
	var served, refused atomic.Int64
	for g := range 30 {
		wg.Go(func() {
			for i := range 200 {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				l, err := m.Acquire(ctx, fmt.Sprintf("t%d", (g+i)%20))
				cancel()
				if err != nil {
					refused.Add(1)
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Acquire: %v", err)
						return
					}
					continue
				}
				served.Add(1)
				if s := m.Stats(); s.BudgetUsed > s.BudgetLimit || s.Clients+s.Retiring > 3 {
					t.Errorf("over budget: %+v", s)
				}
				l.Release()
			}
		})
	}
	wg.Wait()
	s := m.Stats()
	t.Logf("served %d, refused %d, created %d, recycled %d, evicted for budget %d",
		served.Load(), refused.Load(), s.Created, s.Recycled, s.EvictedBudget)
	assert.Positive(t, s.EvictedBudget)
	assert.Positive(t, served.Load())
	assert.Equal(t, uint64(refused.Load()), s.Refused)
	assert.Equal(t, uint64(served.Load()), s.Hits+s.Misses)
}
