package mongotenant_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestInitRunsOncePerTenantBeforeAnyLease: 200 concurrent first
// acquisitions run the hook once, and none gets a lease before it finished.
func TestInitRunsOncePerTenantBeforeAnyLease(t *testing.T) {
	var runs atomic.Int32
	var finished atomic.Bool
	release := make(chan struct{})
	m := newManager(t, mongotenant.WithInit(func(ctx context.Context, id string, db *mongo.Database) error {
		runs.Add(1)
		assert.Equal(t, "user_"+id+"_db", db.Name())
		<-release
		finished.Store(true)
		return nil
	}))
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			l := acquire(t, m, "acme")
			assert.True(t, finished.Load(), "a lease before init finished")
			l.Release()
		})
	}
	waitFor(t, "init to start", func() bool { return runs.Load() == 1 })
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), runs.Load())

	// Evicted and recreated: not initialized again.
	require.NoError(t, m.Evict(context.Background(), "acme"))
	acquire(t, m, "acme").Release()
	acquire(t, m, "other").Release()
	assert.Equal(t, int32(2), runs.Load())
}

func TestInitFailureGoesToItsCallerAndIsRetried(t *testing.T) {
	boom := errors.New("index build failed")
	var calls atomic.Int32
	m := newManager(t, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error {
		if calls.Add(1) == 1 {
			return boom
		}
		return nil
	}))
	_, err := m.Acquire(context.Background(), "acme")
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 0, m.Stats().Leases, "the failed caller's lease is released")
	acquire(t, m, "acme").Release()
	acquire(t, m, "acme").Release()
	assert.Equal(t, int32(2), calls.Load())
}

func TestInitWaitersAreBoundedByTheirOwnContext(t *testing.T) {
	release := make(chan struct{})
	m := newManager(t, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error {
		<-release
		return nil
	}))
	first := acquireLater(m, "slow")
	waitFor(t, "the first caller to hold the init", func() bool { return m.Stats().Leases == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Acquire(ctx, "slow")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	require.NoError(t, <-first)
}
