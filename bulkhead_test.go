package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBulkheadRefusesAtItsDeadline(t *testing.T) {
	for _, strategy := range []mongotenant.Strategy{mongotenant.Dedicated(), mongotenant.Shared(), mongotenant.Grouped(2)} {
		t.Run(fmt.Sprintf("%T", strategy), func(t *testing.T) {
			m := newManager(t, mongotenant.WithMaxLeases(2), mongotenant.WithStrategy(strategy))
			l1 := acquire(t, m, "noisy")
			l2 := acquire(t, m, "noisy")

			_, err := m.Acquire(short(t), "noisy")
			require.ErrorIs(t, err, mongotenant.ErrTenantBusy)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			s := m.Stats()
			assert.Equal(t, uint64(1), s.RefusedBusy)
			assert.Equal(t, uint64(1), s.Refused)
			assert.Equal(t, uint64(1), s.Waits)

			other := acquire(t, m, "quiet") // other tenants are unaffected
			other.Release()

			got := acquireLater(m, "noisy")
			l1.Release() // frees a slot for the waiter
			require.NoError(t, <-got)
			l2.Release()
		})
	}
}

// TestBulkheadIsFirstComeFirstServed: callers queued at a full bulkhead
// get leases in the order they arrived, and a newcomer does not jump the
// queue.
func TestBulkheadIsFirstComeFirstServed(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxLeases(1))
	held := acquire(t, m, "t")
	order := make(chan int, 3)
	leases := make(chan *mongotenant.Lease, 3)
	for i := range 3 {
		go func() {
			l, err := m.Acquire(context.Background(), "t")
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				order <- -1
				leases <- nil
				return
			}
			order <- i
			leases <- l
		}()
		waitFor(t, fmt.Sprintf("waiter %d to queue", i), func() bool { return m.Stats().Waiting == i+1 })
	}
	held.Release()
	for want := range 3 {
		assert.Equal(t, want, <-order)
		if l := <-leases; l != nil {
			l.Release()
		}
	}
}

// TestBulkheadUnderLoad: 40 goroutines hammer one tenant limited to 2 while
// its client is evicted and recreated; it never holds more than 2 leases.
func TestBulkheadUnderLoad(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxLeases(2), mongotenant.WithMaxClients(1))
	var inUse, peak, busy, ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			for range 300 {
				if g%8 == 0 { // others churn the single client slot
					l, err := m.Acquire(context.Background(), fmt.Sprintf("other%d", g))
					if err != nil {
						t.Errorf("Acquire: %v", err)
						return
					}
					l.Release()
					continue
				}
				ctx, cancel := context.WithCancel(context.Background())
				go func() { runtime.Gosched(); cancel() }()
				l, err := m.Acquire(ctx, "hot")
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("Acquire: %v", err)
						return
					}
					if errors.Is(err, mongotenant.ErrTenantBusy) {
						busy.Add(1)
					}
					continue
				}
				n := inUse.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				runtime.Gosched()
				inUse.Add(-1)
				l.Release()
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d leases, %d refused, peak %d", ok.Load(), busy.Load(), peak.Load())
	assert.LessOrEqual(t, peak.Load(), int64(2))
	assert.Positive(t, ok.Load())
	assert.Equal(t, 0, m.Stats().Leases)
}

// TestBulkheadNeverLosesAWakeup: callers contending for a bulkhead of one
// never wait for a lease nobody holds. A release that lands between a
// caller's check for room and its joining the queue must still let it in.
func TestBulkheadNeverLosesAWakeup(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxLeases(1))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				l, err := m.Acquire(ctx, "t")
				cancel()
				if err != nil {
					t.Errorf("goroutine %d, iteration %d: %v (leases held: %d)", g, i, err, m.Stats().Leases)
					return
				}
				l.Release()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 0, m.Stats().Leases+m.Stats().Waiting)
}
