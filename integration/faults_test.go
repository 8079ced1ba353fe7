package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
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
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// fastFail makes an unreachable server fail operations in about a second
// (server selection) instead of the 5 s default, and notices its return
// within half a second (heartbeats). The connect timeout, which also
// bounds each handshake and heartbeat, stays generous: a stopped server
// refuses at once, and a busy machine or a latency spike must not fail a
// handshake with a server that is up.
var fastFail = mongotenant.WithClientOptions(options.Client().
	SetServerSelectionTimeout(time.Second).
	SetConnectTimeout(3 * time.Second).
	SetHeartbeatInterval(500 * time.Millisecond))

// insertAll is a write load: workers insert unique _ids over 8 tenants until
// stop closes, recording what was acknowledged and when operations failed.
type insertAll struct {
	m       *mongotenant.Manager
	mu      sync.Mutex
	acked   map[string][]int64 // tenant -> acknowledged _ids
	failed  []time.Time        // when each failed operation ended
	lastOK  atomic.Int64       // unix ns of the latest success
	nextID  atomic.Int64
	stopped chan struct{}
	wg      sync.WaitGroup
}

func startInserts(m *mongotenant.Manager, workers int) *insertAll {
	w := &insertAll{m: m, acked: map[string][]int64{}, stopped: make(chan struct{})}
	for g := range workers {
		w.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-w.stopped:
					return
				default:
				}
				tenant := fmt.Sprintf("f%d", (g+i)%8)
				id := w.nextID.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := m.Do(ctx, tenant, func(ctx context.Context, db *mongo.Database) error {
					_, err := db.Collection("w").InsertOne(ctx, bson.D{{Key: "_id", Value: id}})
					return err
				})
				cancel()
				w.mu.Lock()
				if err == nil {
					w.acked[tenant] = append(w.acked[tenant], id)
					w.lastOK.Store(time.Now().UnixNano())
				} else {
					w.failed = append(w.failed, time.Now())
				}
				w.mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // a client backing off
				}
			}
		})
	}
	return w
}

func (w *insertAll) stop() { close(w.stopped); w.wg.Wait() }

func (w *insertAll) okSince(t time.Time) bool { return w.lastOK.Load() > t.UnixNano() }

// tenantsAcked is how many of the 8 tenants have an acknowledged write.
func (w *insertAll) tenantsAcked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// assertStored checks that every acknowledged insert is on the server.
func (w *insertAll) assertStored(t *testing.T, raw *mongo.Client) int {
	t.Helper()
	total := 0
	for tenant, ids := range w.acked {
		cur, err := raw.Database("user_"+tenant+"_db").Collection("w").Find(context.Background(), bson.D{})
		require.NoError(t, err)
		var docs []struct {
			ID int64 `bson:"_id"`
		}
		require.NoError(t, cur.All(context.Background(), &docs))
		stored := make(map[int64]bool, len(docs))
		for _, d := range docs {
			stored[d.ID] = true
		}
		for _, id := range ids {
			require.True(t, stored[id], "acknowledged insert %d of %s is missing", id, tenant)
		}
		total += len(ids)
	}
	return total
}

// TestFaultServerRestartDuringLoad: the server stops and restarts on the same
// port under a write load. Every acknowledged write survives, failures happen
// only while it is down, and the same Manager recovers by itself.
func TestFaultServerRestartDuringLoad(t *testing.T) {
	srv := mongotest.New(t)
	if srv.Backend() != mongotest.BackendEmbedded {
		t.Skip("needs the embedded server, which can be stopped and restarted")
	}
	m := newManager(t, srv.URI(), fastFail)
	w := startInserts(m, 8)
	waitFor(t, "writes before the stop", func() bool { return w.okSince(time.Time{}) })
	time.Sleep(500 * time.Millisecond) // a load worth losing

	stopAt := time.Now()
	require.NoError(t, srv.Stop())
	time.Sleep(time.Second)
	require.NoError(t, srv.Restart(context.Background()))
	upAt := time.Now()
	waitFor(t, "writes after the restart", func() bool { return w.okSince(upAt) })
	time.Sleep(500 * time.Millisecond)
	w.stop()

	total := w.assertStored(t, connect(t, srv.URI()))
	// An operation can fail up to its own deadline (3 s) after the server
	// is back, while the driver notices; none fails before the stop.
	for _, at := range w.failed {
		assert.False(t, at.Before(stopAt), "a failure before the server stopped")
		assert.False(t, at.After(upAt.Add(4*time.Second)), "a failure long after the server was back")
	}
	t.Logf("%d writes acknowledged and stored, %d failed while the server was down", total, len(w.failed))
	assert.Positive(t, len(w.failed), "the outage was not noticed")
}

// TestFaultUnreachableAtStart: the server is down when the Manager starts;
// operations fail within the configured timeouts, then succeed once it is up.
func TestFaultUnreachableAtStart(t *testing.T) {
	srv := mongotest.New(t)
	if srv.Backend() != mongotest.BackendEmbedded {
		t.Skip("needs the embedded server, which can be stopped and restarted")
	}
	require.NoError(t, srv.Stop())
	m := newManager(t, srv.URI(), fastFail)
	ping := func() error {
		return m.Do(context.Background(), "early", func(ctx context.Context, db *mongo.Database) error {
			return db.Client().Ping(ctx, nil)
		})
	}
	err := ping()
	require.Error(t, err)
	var sel topology.ServerSelectionError
	assert.True(t, errors.As(err, &sel), "want a server selection error, got %v", err)

	require.NoError(t, srv.Restart(context.Background()))
	waitFor(t, "the Manager's client to reach the server", func() bool { return ping() == nil })
	assert.Equal(t, uint64(1), m.Stats().Created, "recovered without a new client")
}

// TestFaultHungServer: a server that accepts connections and never answers.
// Operations fail within the connect and selection timeouts, and repeated
// attempts do not grow the goroutine count.
func TestFaultHungServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var held sync.WaitGroup
	conns := make(chan net.Conn, 1024)
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c // hold it open, say nothing
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		held.Wait()
		close(conns)
		for c := range conns {
			_ = c.Close()
		}
	})

	m := newManager(t, "mongodb://"+ln.Addr().String()+"/", fastFail, mongotenant.WithMaxClients(4))
	op := func(tenant string) error {
		return m.Do(context.Background(), tenant, func(ctx context.Context, db *mongo.Database) error {
			return db.Collection("c").FindOne(ctx, bson.D{}).Err()
		})
	}
	require.Error(t, op("warm"))
	base := runtime.NumGoroutine()
	for i := range 8 {
		require.Error(t, op(fmt.Sprintf("hung%d", i%4)))
	}
	// Each of the 4 cached clients keeps its monitor and pool goroutines,
	// some blocked in a handshake the server never answers; the bound is
	// per client, not per attempt.
	assert.LessOrEqual(t, runtime.NumGoroutine(), base+4*8, "goroutines grow with attempts")
	assert.LessOrEqual(t, m.Stats().Clients, 4)
}

// TestFaultLatencySpike: a 300 ms latency spike through a proxy slows
// operations but fails none, and the Manager needs nothing to recover.
func TestFaultLatencySpike(t *testing.T) {
	uri := mongotest.URI(t)
	p, err := mongotest.NewProxy(uri)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	m := newManager(t, p.URI(), fastFail)
	w := startInserts(m, 4)
	// Every tenant's client is created and connected before the spike.
	waitFor(t, "writes to every tenant before the spike", func() bool { return w.tenantsAcked() == 8 })
	p.SetLatency(300 * time.Millisecond)
	time.Sleep(time.Second)
	p.SetLatency(0)
	after := time.Now()
	waitFor(t, "writes after the spike", func() bool { return w.okSince(after) })
	w.stop()
	assert.Empty(t, w.failed, "operations failed during a latency spike within their deadlines")
	t.Logf("%d writes stored", w.assertStored(t, connect(t, uri)))
}
