package integration_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// fairFlood runs n goroutines reading tenantID's database until stop.
type fairFlood struct {
	stop chan struct{}
	wg   sync.WaitGroup
	ops  atomic.Int64
	errs atomic.Int64
}

func startFairFlood(m *mongotenant.Manager, tenantID string, n int) *fairFlood {
	f := &fairFlood{stop: make(chan struct{})}
	for range n {
		f.wg.Go(func() {
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				err := m.Do(context.Background(), tenantID, fairRead)
				if err != nil {
					f.errs.Add(1)
					continue
				}
				f.ops.Add(1)
			}
		})
	}
	return f
}

func (f *fairFlood) Stop() {
	close(f.stop)
	f.wg.Wait()
}

func fairRead(ctx context.Context, db *mongo.Database) error {
	err := db.Collection("c").FindOne(ctx, bson.D{}).Err()
	if err == mongo.ErrNoDocuments {
		return nil
	}
	return err
}

func fairGroupStats(m *mongotenant.Manager) mongotenant.GroupStats {
	for _, g := range m.GroupStats() {
		if g.Group == "shared" {
			return g
		}
	}
	return mongotenant.GroupStats{}
}

// startKey carries the noisy tenant's grant count when a light
// acquisition started, from the AcquireStart hook to AcquireEnd.
type startKey struct{}

// TestFairSharingThroughDelayProxy: the noisy tenant's reads take 60 ms of
// "server time" (the proxy holds their replies) and its 20 goroutines keep
// a shared client of capacity 4 full, with 16 callers queued. First come,
// first served would put each of the light tenant's reads behind that
// whole queue. Without a reserve, a light read waits behind at most one
// noisy grant. The test sees grants through the hooks, which run a little
// after the grant they report: the noisy caller handed the slot a light
// read released is usually counted against the next light read, and a
// busy machine delays hooks further (by one grant per 15 ms). So it
// bounds each read by 10 grants (under the queue of 16) and the median by 3. With the default
// reserve (one slot of 4), the slot the light tenant's read frees is
// kept for its next: after the first, its reads do not wait at all. The
// exact bound is checked without hooks or a server in the root package.
func TestFairSharingThroughDelayProxy(t *testing.T) {
	t.Run("no reserve", func(t *testing.T) {
		behind := fairLightBehindFlood(t, mongotenant.WithFairReserve(0, 0))
		require.GreaterOrEqual(t, len(behind), 10, "the light tenant seldom waited: the flood did not fill the client")
		assertFairBehind(t, behind)
	})
	t.Run("default reserve", func(t *testing.T) {
		behind := fairLightBehindFlood(t)
		assert.LessOrEqual(t, len(behind), 2, "light reads waited for a turn: %v", behind)
		assertFairBehind(t, behind)
	})
}

// assertFairBehind checks the noisy grants each light read waited behind:
// each at most 10, the median at most 3.
func assertFairBehind(t *testing.T, behind []int64) {
	t.Helper()
	t.Logf("noisy grants each waiting light read was counted behind: %v", behind)
	for i, n := range behind {
		assert.LessOrEqual(t, n, int64(10), "light read %d waited behind %d noisy grants (all: %v)", i, n, behind)
	}
	if len(behind) == 0 {
		return
	}
	sorted := slices.Clone(behind)
	slices.Sort(sorted)
	assert.LessOrEqual(t, sorted[len(sorted)/2], int64(3), "median noisy grants a light read waited behind (all: %v)", behind)
}

// fairLightBehindFlood runs 20 light reads while the noisy tenant floods
// the shared client through the delay proxy, and returns, for each light
// read that waited for a turn, the noisy grants made while it waited.
func fairLightBehindFlood(t *testing.T, opts ...mongotenant.Option) []int64 {
	p, err := mongotest.NewProxy(mongotest.URI(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	p.SetDatabaseDelay("user_noisy_db", 60*time.Millisecond)

	var noisyGrants atomic.Int64
	var mu sync.Mutex
	var behind []int64
	hooks := mongotenant.Hooks{
		AcquireStart: func(ctx context.Context, id string) context.Context {
			if id == "light" {
				return context.WithValue(ctx, startKey{}, noisyGrants.Load())
			}
			return ctx
		},
		AcquireEnd: func(ctx context.Context, e mongotenant.AcquireEvent) {
			switch {
			case e.Err != nil:
			case e.TenantID == "noisy":
				noisyGrants.Add(1)
			case e.TenantID == "light" && e.Waited:
				mu.Lock()
				behind = append(behind, noisyGrants.Load()-ctx.Value(startKey{}).(int64))
				mu.Unlock()
			}
		},
	}
	m := newManager(t, p.URI(), append([]mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(4),
		mongotenant.WithFairSharing(0), mongotenant.WithHooks(hooks)}, opts...)...)
	ctx := context.Background()
	require.NoError(t, m.Do(ctx, "light", fairRead))
	start := time.Now()
	require.NoError(t, m.Do(ctx, "noisy", fairRead))
	require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond, "the proxy holds the noisy tenant's replies")

	f := startFairFlood(m, "noisy", 20)
	waitFor(t, "the noisy tenant's callers queued", func() bool { return fairGroupStats(m).FairWaiting >= 12 })
	for range 20 {
		require.NoError(t, m.Do(ctx, "light", fairRead))
		g := fairGroupStats(m)
		assert.LessOrEqual(t, g.FairInUse, 4)
		assert.LessOrEqual(t, g.InUseConnections, 4)
	}
	f.Stop()
	require.Zero(t, f.errs.Load())

	g := fairGroupStats(m)
	assert.Zero(t, g.FairInUse)
	assert.Zero(t, g.FairWaiting)
	assert.Zero(t, g.FairKept, "slots kept with no caller waiting")
	assert.Zero(t, m.Stats().Leases)
	assert.LessOrEqual(t, p.Open(), int64(5), "one client: its pool of 4 and a monitoring socket")
	mu.Lock()
	defer mu.Unlock()
	return behind
}

// TestFairSharingLoneTenantFillsThePool: alone, a tenant gets every turn
// of the capacity, and the pool's connections with them.
func TestFairSharingLoneTenantFillsThePool(t *testing.T) {
	p, err := mongotest.NewProxy(mongotest.URI(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	p.SetDatabaseDelay("user_alone_db", 20*time.Millisecond)
	m := newManager(t, p.URI(), mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(4),
		mongotenant.WithFairSharing(0))
	f := startFairFlood(m, "alone", 8)
	waitFor(t, "every turn and connection in use", func() bool {
		g := fairGroupStats(m)
		return g.FairInUse == 4 && g.InUseConnections == 4
	})
	f.Stop()
	require.Zero(t, f.errs.Load())
	assert.Zero(t, m.Stats().Leases)
}
