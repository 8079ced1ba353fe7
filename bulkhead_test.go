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

func TestBulkheadRefusesAtItsDeadline(t *testing.T) {
	for _, strategy := range []mongotenant.Strategy{mongotenant.Dedicated(), mongotenant.Shared(), mongotenant.Grouped(2)} {
		t.Run(fmt.Sprintf("%T", strategy), func(t *testing.T) {
			m := newManager(t, mongotenant.WithMaxLeases(2), mongotenant.WithStrategy(strategy))
			l1 := acquire(t, m, "noisy")
			l2 := acquire(t, m, "noisy")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			_, err := m.Acquire(ctx, "noisy")
			require.ErrorIs(t, err, mongotenant.ErrTenantBusy)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, uint64(1), m.Stats().Busy)

			other := acquire(t, m, "quiet") // other tenants are unaffected
			other.Release()

			got := acquireLater(m, "noisy")
			l1.Release() // frees a slot for the waiter
			require.NoError(t, <-got)
			l2.Release()
		})
	}
}

// TestBulkheadUnderLoad: 40 goroutines hammer one tenant limited to 2 while
// its client is evicted and recreated; it never holds more than 2 leases.
func TestBulkheadUnderLoad(t *testing.T) {
	m := newManager(t, mongotenant.WithMaxLeases(2), mongotenant.WithMaxClients(1))
	var inUse, peak, busy, ok atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(300 * time.Millisecond)
	for g := range 40 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if g%8 == 0 { // others churn the single client slot
					acquire(t, m, fmt.Sprintf("other%d", g)).Release()
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				l, err := m.Acquire(ctx, "hot")
				cancel()
				if err != nil {
					// Refused by the bulkhead, or timed out waiting for the
					// client another caller is creating.
					if !assert.ErrorIs(t, err, context.DeadlineExceeded) {
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
				time.Sleep(50 * time.Microsecond)
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
	assert.Positive(t, busy.Load())
}
