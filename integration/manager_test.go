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

// setup starts a server and returns a Manager on it and a plain client for
// checking what landed where. Both are closed at the end of the test.
func setup(t *testing.T, opts ...mongotenant.Option) (*mongotenant.Manager, *mongo.Client) {
	t.Helper()
	uri := mongotest.URI(t)
	return newManager(t, uri, opts...), connect(t, uri)
}

// patient gives server selection a minute instead of the 5 s default, for
// load tests that check safety, where no operation may fail: on a busy
// machine a new client's first heartbeat can be slow to answer. A wedged
// client still fails them.
var patient = mongotenant.WithClientOptions(options.Client().SetServerSelectionTimeout(time.Minute))

// newManager returns a Manager on uri, closed at the end of the test.
func newManager(t *testing.T, uri string, opts ...mongotenant.Option) *mongotenant.Manager {
	t.Helper()
	m, err := mongotenant.New(uri, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close(context.Background())) })
	return m
}

// connect returns a plain client on uri, disconnected at the end of the test.
func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Disconnect(context.Background())) })
	return c
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWritesLandInTenantDatabases(t *testing.T) {
	m, raw := setup(t)
	ctx := context.Background()
	for _, id := range []string{"alice", "bob"} {
		err := m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error {
			_, err := db.Collection("posts").InsertOne(ctx, bson.D{{Key: "author", Value: id}})
			return err
		})
		require.NoError(t, err)
	}
	for _, id := range []string{"alice", "bob"} {
		cur, err := raw.Database("user_"+id+"_db").Collection("posts").Find(ctx, bson.D{})
		require.NoError(t, err)
		var docs []bson.M
		require.NoError(t, cur.All(ctx, &docs))
		require.Len(t, docs, 1)
		assert.Equal(t, id, docs[0]["author"])
	}
	ts, ok := m.TenantStats("alice")
	require.True(t, ok)
	assert.GreaterOrEqual(t, ts.CheckOuts, uint64(1), "pool events are counted per tenant")
	assert.GreaterOrEqual(t, ts.OpenConnections, 1)
	assert.Equal(t, 0, ts.InUseConnections)
}

// TestConcurrentFirstAcquire: 1,000 goroutines arrive at once for one new
// tenant; one client is created and every insert lands.
func TestConcurrentFirstAcquire(t *testing.T) {
	// 1,000 inserts queue on the tenant's pool of 10. The driver bounds a
	// check-out wait by the server selection timeout (5 s by default), which
	// a loaded CI machine under -race can exceed; this test is about single
	// creation, not about how fast the queue drains.
	m, raw := setup(t, mongotenant.WithClientOptions(options.Client().SetServerSelectionTimeout(time.Minute)))
	ctx := context.Background()
	const n = 1000
	var wg sync.WaitGroup
	start := make(chan struct{})
	var failed atomic.Int64
	for i := range n {
		wg.Go(func() {
			<-start
			err := m.Do(ctx, "crowd", func(ctx context.Context, db *mongo.Database) error {
				_, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}})
				return err
			})
			if err != nil {
				failed.Add(1)
				t.Errorf("insert %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	require.Zero(t, failed.Load())
	assert.Equal(t, uint64(1), m.Stats().Created)
	count, err := raw.Database("user_crowd_db").Collection("c").CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.Equal(t, int64(n), count)
}

// TestChurnUnderLoad is the lease-safety test: 120 goroutines over 30
// tenants with MaxClients=3 and a 50 ms idle timeout, so clients are evicted
// and reaped constantly while others use them. No operation may fail, and
// every acknowledged insert must be readable afterwards, in its tenant's
// database only.
func TestChurnUnderLoad(t *testing.T) {
	const (
		goroutines = 120
		tenants    = 30
		maxClients = 3
	)
	duration := 5 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	m, raw := setup(t, patient, mongotenant.WithMaxClients(maxClients), mongotenant.WithIdleTimeout(50*time.Millisecond))

	var mu sync.Mutex
	acked := make(map[int][]int64) // tenant -> acknowledged _ids
	var ops, failed atomic.Int64
	var seq atomic.Int64
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for time.Now().Before(stop) {
				tn := r.IntN(tenants)
				id := seq.Add(1)
				err := m.Do(context.Background(), fmt.Sprintf("t%02d", tn), func(ctx context.Context, db *mongo.Database) error {
					coll := db.Collection("events")
					if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tn}}); err != nil {
						return fmt.Errorf("insert: %w", err)
					}
					mu.Lock()
					acked[tn] = append(acked[tn], id)
					mu.Unlock()
					var got bson.M
					if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
						return fmt.Errorf("read back: %w", err)
					}
					return nil
				})
				ops.Add(1)
				if err != nil {
					if failed.Add(1) <= 5 {
						t.Errorf("operation failed: %v", err)
					}
				}
				if s := m.Stats(); s.Clients > maxClients {
					t.Errorf("Clients = %d > %d", s.Clients, maxClients)
				}
			}
		})
	}
	wg.Wait()
	s := m.Stats()
	t.Logf("%d operations, %d failed; created %d clients, evicted lru %d idle %d; %d disconnects",
		ops.Load(), failed.Load(), s.Created, s.EvictedLRU, s.EvictedIdle, s.Disconnects)
	require.Zero(t, failed.Load(), "failed operations")
	assert.Greater(t, s.EvictedLRU, uint64(0), "the cap must have evicted")

	ctx := context.Background()
	total := 0
	for tn := range tenants {
		db := raw.Database(fmt.Sprintf("user_t%02d_db", tn))
		cur, err := db.Collection("events").Find(ctx, bson.D{})
		require.NoError(t, err)
		var docs []struct {
			ID     int64 `bson:"_id"`
			Tenant int   `bson:"tenant"`
		}
		require.NoError(t, cur.All(ctx, &docs))
		stored := make(map[int64]bool, len(docs))
		for _, d := range docs {
			require.Equal(t, tn, d.Tenant, "a document landed in another tenant's database")
			stored[d.ID] = true
		}
		for _, id := range acked[tn] {
			require.True(t, stored[id], "acknowledged insert %d of tenant %d is missing", id, tn)
		}
		total += len(acked[tn])
	}
	require.Positive(t, total)
	t.Logf("%d acknowledged inserts read back", total)
}

// TestIdleReaping: with traffic stopped, every client is reaped and the
// server sees its connections closed.
func TestIdleReaping(t *testing.T) {
	m, _ := setup(t, mongotenant.WithIdleTimeout(50*time.Millisecond))
	ctx := context.Background()
	var clients []*mongo.Client
	for i := range 5 {
		l, err := m.Acquire(ctx, fmt.Sprintf("idle%d", i))
		require.NoError(t, err)
		require.NoError(t, l.Client().Ping(ctx, nil))
		clients = append(clients, l.Client())
		l.Release()
	}
	waitFor(t, "every client to be reaped", func() bool { return m.Stats().Clients == 0 })
	s := m.Stats()
	assert.Equal(t, uint64(5), s.EvictedIdle)
	waitFor(t, "five disconnects", func() bool { return m.Stats().Disconnects == 5 })
	assert.Equal(t, 0, m.Stats().OpenConnections)
	for _, c := range clients {
		assert.ErrorIs(t, c.Ping(ctx, nil), mongo.ErrClientDisconnected)
	}
}

// TestEvictDuringOperation: an operation in flight on a lease completes after
// its tenant is evicted; the client disconnects only after the lease ends.
func TestEvictDuringOperation(t *testing.T) {
	m, _ := setup(t)
	ctx := context.Background()
	l, err := m.Acquire(ctx, "busy")
	require.NoError(t, err)
	coll := l.Database().Collection("bulk")
	docs := make([]any, 2000)
	for i := range docs {
		docs[i] = bson.D{{Key: "i", Value: i}}
	}
	done := make(chan error, 1)
	go func() {
		_, err := coll.InsertMany(ctx, docs)
		done <- err
	}()
	require.NoError(t, m.Evict(ctx, "busy"))
	require.NoError(t, <-done, "operation through a live lease")
	n, err := coll.CountDocuments(ctx, bson.D{})
	require.NoError(t, err, "the evicted client still works while leased")
	assert.Equal(t, int64(len(docs)), n)
	l.Release()
	waitFor(t, "the evicted client to disconnect", func() bool { return m.Stats().Disconnects == 1 })
	assert.ErrorIs(t, l.Client().Ping(ctx, nil), mongo.ErrClientDisconnected)
}

// TestCloseUnderLoad: Close while 40 goroutines work. Operations already
// leased finish; later ones fail only with ErrClosed; nothing is left open.
func TestCloseUnderLoad(t *testing.T) {
	uri := mongotest.URI(t)
	m, err := mongotenant.New(uri, patient, mongotenant.WithMaxClients(5))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var okOps, closedOps atomic.Int64
	stopped := make(chan struct{})
	for g := range 40 {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := m.Do(context.Background(), fmt.Sprintf("c%d", (g+i)%10), func(ctx context.Context, db *mongo.Database) error {
					_, err := db.Collection("x").InsertOne(ctx, bson.D{{Key: "g", Value: g}})
					return err
				})
				switch {
				case err == nil:
					okOps.Add(1)
				case errors.Is(err, mongotenant.ErrClosed):
					closedOps.Add(1)
					return
				default:
					t.Errorf("operation failed with %v, want success or ErrClosed", err)
					return
				}
				select {
				case <-stopped:
					return
				default:
				}
			}
		})
	}
	waitFor(t, "200 operations", func() bool { return okOps.Load() >= 200 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, m.Close(ctx))
	close(stopped)
	wg.Wait()
	s := m.Stats()
	t.Logf("%d ok, %d refused with ErrClosed; %+v", okOps.Load(), closedOps.Load(), s)
	assert.Equal(t, 0, s.Clients+s.Retiring+s.Leases)
	assert.Equal(t, s.Created, s.Disconnects)
	assert.Equal(t, 0, s.OpenConnections)
	assert.Positive(t, closedOps.Load())
}
