package mongotenant_test

import (
	"context"

	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestCloseHonoursItsContext: Close cancels background route refreshes.
// A Router that returns on cancellation lets Close finish cleanly; one
// that ignores it does not hold Close past its ctx.
func TestCloseHonoursItsContext(t *testing.T) {
	for _, obeys := range []bool{true, false} {
		name := map[bool]string{true: "router obeys ctx", false: "router ignores ctx"}[obeys]
		t.Run(name, func(t *testing.T) {
			clock := mongotenant.NewFakeClock()
			inRefresh := make(chan struct{})
			unblock := make(chan struct{})
			var once sync.Once
			calls := 0
			m, err := mongotenant.New(unreachable, mongotenant.WithFakeClock(clock), mongotenant.WithRouteTTL(time.Minute),
				mongotenant.WithRouter(func(ctx context.Context, _ string, _ *mongotenant.Route) error {
					calls++ // only the first Acquire and the one refresh call it
					if calls == 1 {
						return nil
					}
					once.Do(func() { close(inRefresh) })
					if obeys {
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-unblock:
						}
					} else {
						<-unblock
					}
					return nil
				}))
			require.NoError(t, err)
			defer close(unblock) // after Close: a Router that ignored its ctx returns now
			acquire(t, m, "acme").Release()
			clock.Advance(2 * time.Minute)
			acquire(t, m, "acme").Release() // starts the refresh
			<-inRefresh

			// A Router that obeys returns at once, so Close has a deadline
			// a busy machine cannot miss; one that ignores it holds Close
			// to its deadline, so that one is short.
			timeout := map[bool]time.Duration{true: 10 * time.Second, false: 50 * time.Millisecond}[obeys]
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err = m.Close(ctx)
			if obeys {
				require.NoError(t, err, "the refresh ended when Close cancelled it")
			} else {
				require.ErrorIs(t, err, context.DeadlineExceeded, "Close returned at its deadline")
			}
			s := m.Stats()
			assert.Equal(t, 0, s.Clients+s.Retiring)
			assert.Equal(t, uint64(1), s.Disconnects)
		})
	}
}

// TestCloseReleasesEveryWaiter: callers waiting for a bulkhead, the budget
// or another caller's init get ErrClosed (or their client closed) when
// Close begins, instead of waiting for their own ctx.
func TestCloseReleasesEveryWaiter(t *testing.T) {
	initStarted := make(chan struct{})
	m, err := mongotenant.New(unreachable,
		mongotenant.WithMaxLeases(1),
		mongotenant.WithConnectionBudget(2*clientCost, mongotenant.BudgetWait),
		mongotenant.WithInit(func(ctx context.Context, id string, _ *mongo.Database) error {
			if id == "slow" {
				close(initStarted)
				<-ctx.Done() // returns when its caller gives up
				return ctx.Err()
			}
			return nil
		}))
	require.NoError(t, err)
	busy := acquire(t, m, "busy")   // its bulkhead is full
	other := acquire(t, m, "other") // the budget is full
	slowCtx, cancelSlow := context.WithCancel(context.Background())
	defer cancelSlow()
	slow := make(chan error, 1)
	go func() {
		_, err := m.Acquire(slowCtx, "slow") // no room: it waits for the budget
		slow <- err
	}()

	errs := make(chan error, 2)
	for _, id := range []string{"busy", "new"} {
		go func() {
			_, err := m.Acquire(context.Background(), id)
			errs <- err
		}()
	}
	waitFor(t, "the waiters", func() bool { return m.Stats().Waiting == 3 })

	closed := make(chan error, 1)
	go func() { closed <- m.Close(context.Background()) }()
	for range 2 {
		assert.ErrorIs(t, <-errs, mongotenant.ErrClosed)
	}
	assert.ErrorIs(t, <-slow, mongotenant.ErrClosed)
	busy.Release()
	other.Release()
	require.NoError(t, <-closed)
	assert.Equal(t, 0, m.Stats().Waiting)
	select {
	case <-initStarted:
		t.Error("init ran for a tenant that never got a client")
	default:
	}

}
