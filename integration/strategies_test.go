package integration_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestPlacementAcrossTwoServers: tenants whose IDs start with "eu-" live on
// a second deployment; each tenant's writes land on its own server only.
func TestPlacementAcrossTwoServers(t *testing.T) {
	us, eu := mongotest.URI(t), mongotest.URI(t)
	require.NotEqual(t, us, eu)
	m := newManager(t, us, mongotenant.WithPlacement(func(_ context.Context, id string) (string, error) {
		if strings.HasPrefix(id, "eu-") {
			return eu, nil
		}
		return "", nil // the Manager's own URI
	}))

	ctx := context.Background()
	tenants := []string{"us-1", "us-2", "eu-1", "eu-2"}
	for _, id := range tenants {
		require.NoError(t, m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error {
			_, err := db.Collection("orders").InsertOne(ctx, bson.D{{Key: "tenant", Value: id}})
			return err
		}))
	}
	servers := map[string]*mongo.Client{"us": connect(t, us), "eu": connect(t, eu)}
	for _, id := range tenants {
		home := id[:2]
		for name, raw := range servers {
			n, err := raw.Database("user_"+id+"_db").Collection("orders").CountDocuments(ctx, bson.D{})
			require.NoError(t, err)
			want := int64(0)
			if name == home {
				want = 1
			}
			assert.Equal(t, want, n, "tenant %s on server %s", id, name)
		}
	}
	assert.Equal(t, 4, m.Stats().Clients)
}

// TestBudgetHoldsAgainstDriverEvents: 40 goroutines over 12 tenants with a
// budget for three clients. The budget is checked two ways at every step:
// the Manager's own count, and the pool connections the driver reports
// opened and closed, plus one monitoring socket per open client.
func TestBudgetHoldsAgainstDriverEvents(t *testing.T) {
	const pool, clients = 4, 3
	const budget = clients * (1 + pool) // one node, poll monitoring
	var open, peak atomic.Int64
	mon := &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		switch e.Type {
		case event.ConnectionCreated:
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case event.ConnectionClosed:
			open.Add(-1)
		}
	}}
	uri := mongotest.URI(t)
	m, err := mongotenant.New(uri, mongotenant.WithPoolSize(pool),
		mongotenant.WithConnectionBudget(budget, mongotenant.BudgetWait),
		mongotenant.WithClientOptions(options.Client().SetPoolMonitor(mon)), patient)
	require.NoError(t, err)

	var wg sync.WaitGroup
	var ok, refused, over atomic.Int64
	stop := time.Now().Add(3 * time.Second)
	for g := range 40 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				// The deadline bounds the wait for the budget only: a
				// lease granted late in it still gets its insert done,
				// so every failure here is the budget's.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				l, err := m.Acquire(ctx, fmt.Sprintf("b%02d", (g+i)%12))
				cancel()
				switch {
				case err == nil:
					ictx, icancel := context.WithTimeout(context.Background(), time.Minute)
					_, err := l.Database().Collection("c").InsertOne(ictx, bson.D{{Key: "g", Value: g}})
					icancel()
					l.Release()
					if !assert.NoError(t, err) {
						return
					}
					ok.Add(1)
				case assert.ErrorIs(t, err, mongotenant.ErrBudgetExceeded):
					refused.Add(1)
				default:
					return
				}
				s := m.Stats()
				if s.BudgetUsed > budget || int(open.Load())+s.Clients+s.Retiring > budget {
					over.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s := m.Stats()
	require.NoError(t, m.Close(context.Background()))
	t.Logf("%d ok, %d refused; created %d, evicted for budget %d; peak pool connections %d of budget %d",
		ok.Load(), refused.Load(), s.Created, s.EvictedBudget, peak.Load(), budget)
	assert.Zero(t, over.Load(), "snapshots over budget")
	assert.LessOrEqual(t, peak.Load(), int64(budget-1), "pool connections never exceed the budget less one monitoring socket")
	assert.Positive(t, s.EvictedBudget)
	assert.Positive(t, ok.Load())
	assert.Zero(t, open.Load(), "every connection closed")
}

// TestTierChangeUnderLoad: while 20 goroutines write for one tenant, its
// tier flips between basic and premium; every operation succeeds and the
// tenant ends on a client of the final tier's pool size.
func TestTierChangeUnderLoad(t *testing.T) {
	var mu sync.Mutex
	tier := "basic"
	tierOf := func(context.Context, string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return tier, nil
	}
	m, raw := setup(t, patient, mongotenant.WithTiers(tierOf, nil))
	ctx := context.Background()
	var wg sync.WaitGroup
	var acked, failed atomic.Int64
	done := make(chan struct{})
	for g := range 20 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				err := m.Do(ctx, "acme", func(ctx context.Context, db *mongo.Database) error {
					_, err := db.Collection("events").InsertOne(ctx, bson.D{{Key: "g", Value: g}, {Key: "i", Value: i}})
					return err
				})
				if err != nil {
					failed.Add(1)
					t.Errorf("operation failed: %v", err)
					return
				}
				acked.Add(1)
			}
		})
	}
	for i := range 10 {
		mu.Lock()
		tier = map[bool]string{true: "premium", false: "basic"}[i%2 == 0]
		mu.Unlock()
		require.NoError(t, m.Refresh(ctx, "acme"))
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	// The last refresh may have left the tenant unbound, if no worker
	// acquired it again before they stopped: bind it to read its stats.
	require.NoError(t, m.Do(ctx, "acme", func(context.Context, *mongo.Database) error { return nil }))
	s, ok := m.TenantStats("acme")
	require.True(t, ok)
	assert.Equal(t, "basic", s.Tier)
	assert.Equal(t, uint64(5), s.PoolSize)
	assert.Zero(t, failed.Load())
	// A refresh that lands while the tenant's next client is still being
	// created retires no client, so up to 10 clients were replaced.
	evicted := m.Stats().EvictedRoute
	assert.True(t, evicted >= 1 && evicted <= 10, "EvictedRoute = %d", evicted)
	n, err := raw.Database("user_acme_db").Collection("events").CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.Equal(t, acked.Load(), n, "every acknowledged insert is stored")
}
