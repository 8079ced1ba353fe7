package integration_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestChaos mixes every way a client or a tenant's state can go, at once,
// against the real server: the client cap, the connection budget, Evict,
// Forget, the idle reaper, tier changes by Refresh, a Router that panics,
// an init hook, bulkheads, callers that give up, and Close at the end.
// Through all of it:
//   - no write fails except as the caller chose (its ctx) or the bulkhead
//     and budget refused it in time;
//   - no tenant ever holds more leases than its bulkhead;
//   - every acknowledged write is read back, in its own tenant's database.
func TestChaos(t *testing.T) {
	const (
		tenants   = 12
		workers   = 24
		maxLeases = 3
		opsEach   = 250
	)
	uri := mongotest.URI(t)
	raw := connect(t, uri)
	var panics atomic.Int64
	tierOf := sync.Map{} // tenant -> "basic" or "premium"
	m, err := mongotenant.New(uri,
		mongotenant.WithMaxClients(4),
		mongotenant.WithMaxLeases(maxLeases),
		mongotenant.WithIdleTimeout(50*time.Millisecond),
		mongotenant.WithConnectionBudget(5*(1+10), mongotenant.BudgetWait),
		mongotenant.WithTiers(func(_ context.Context, id string) (string, error) {
			tier, _ := tierOf.LoadOrStore(id, "basic")
			return tier.(string), nil
		}, map[string]mongotenant.Tier{"basic": {PoolSize: 10}, "premium": {PoolSize: 5, MaxLeases: maxLeases}}),
		mongotenant.WithRouter(func(_ context.Context, id string, _ *mongotenant.Route) error {
			if rand.IntN(40) == 0 {
				panics.Add(1)
				panic("chaos")
			}
			return nil
		}),
		mongotenant.WithInit(func(ctx context.Context, _ string, db *mongo.Database) error {
			_, err := db.Collection("writes").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "worker", Value: 1}}})
			return err
		}),
		mongotenant.WithClientOptions(options.Client().SetServerSelectionTimeout(time.Minute)))
	require.NoError(t, err)

	var (
		inUse        [tenants]atomic.Int32
		acked        [tenants]sync.Map // _id -> true
		writes, gave atomic.Int64
		wg           sync.WaitGroup
	)
	id := func(i int) string { return fmt.Sprintf("chaos%02d", i) }
	// do runs one write under a lease, recovering a Router's panic.
	do := func(ctx context.Context, ti int, doc string) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errPanicked
			}
		}()
		return m.Do(ctx, id(ti), func(ctx context.Context, db *mongo.Database) error {
			if n := inUse[ti].Add(1); n > maxLeases {
				t.Errorf("tenant %d holds %d leases, more than its bulkhead of %d", ti, n, maxLeases)
			}
			defer inUse[ti].Add(-1)
			_, err := db.Collection("writes").InsertOne(ctx, bson.D{{Key: "_id", Value: doc}, {Key: "worker", Value: ti}})
			return err
		})
	}
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for n := range opsEach {
				ti := r.IntN(tenants)
				ctx, cancel := context.WithCancel(context.Background())
				short := false // the caller gives up soon: its own deadline may fail the write
				switch k := r.IntN(100); {
				case k < 3:
					_ = m.Evict(ctx, id(ti))
					cancel()
					continue
				case k < 5:
					_ = m.Forget(ctx, id(ti))
					cancel()
					continue
				case k < 8:
					tierOf.Store(id(ti), []string{"basic", "premium"}[r.IntN(2)])
					func() {
						defer func() { _ = recover() }() // the Router may panic here too
						_ = m.Refresh(ctx, id(ti))
					}()
					cancel()
					continue
				case k < 15:
					cancel()
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(r.IntN(5))*time.Millisecond)
					short = true
				}
				doc := fmt.Sprintf("w%d-%d", w, n)
				err := do(ctx, ti, doc)
				// The driver fails an operation whose deadline is nearer than a
				// round trip, or whose socket deadline passed, before ctx.Err()
				// says so. A caller without a deadline must never see a timeout:
				// it would be another caller's.
				gaveUp := ctx.Err() != nil || short && mongo.IsTimeout(err)
				cancel()
				switch {
				case err == nil:
					acked[ti].Store(doc, true)
					writes.Add(1)
				case errors.Is(err, errPanicked), gaveUp:
					gave.Add(1)
				default:
					t.Errorf("write %s to tenant %d failed: %v", doc, ti, err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, m.Close(closeCtx))

	s := m.Stats()
	t.Logf("%d writes acknowledged, %d given up or panicked (%d Router panics); created %d, recycled %d, evicted %d (lru %d, idle %d, app %d, budget %d, route %d, close %d), refused %d",
		writes.Load(), gave.Load(), panics.Load(), s.Created, s.Recycled, s.Evicted,
		s.EvictedLRU, s.EvictedIdle, s.EvictedByApp, s.EvictedBudget, s.EvictedRoute, s.EvictedClose, s.Refused)
	assert.Positive(t, writes.Load())
	assert.Positive(t, panics.Load(), "the Router panicked at least once")
	assert.Positive(t, s.Recycled+s.EvictedLRU+s.EvictedBudget, "the cap and the budget were at work")
	assert.Equal(t, 0, s.Leases+s.Waiting+s.Clients+s.Retiring+s.Tenants)
	assert.Equal(t, s.Created, s.Disconnects, "every client connected was disconnected")
	assert.Equal(t, s.Created+s.Recycled, s.Evicted)

	ctx := context.Background()
	for ti := range tenants {
		cur, err := raw.Database("user_"+id(ti)+"_db").Collection("writes").Find(ctx, bson.D{})
		require.NoError(t, err)
		var docs []struct {
			ID     string `bson:"_id"`
			Worker int    `bson:"worker"`
		}
		require.NoError(t, cur.All(ctx, &docs))
		found := map[string]bool{}
		for _, d := range docs {
			assert.Equal(t, ti, d.Worker, "a write in another tenant's database")
			found[d.ID] = true
		}
		acked[ti].Range(func(k, _ any) bool {
			assert.True(t, found[k.(string)], "tenant %d lost acknowledged write %s", ti, k)
			return true
		})
	}
}

var errPanicked = errors.New("a Router panicked")
