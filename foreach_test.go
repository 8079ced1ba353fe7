package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func seqOf(ids ...string) func(func(string) bool) { return slices.Values(ids) }

// TestForEachKeepsHotTenantsCached: a job over many tenants leases the
// cached ones and serves the others by transient clients: the cache keeps
// its clients, nothing is evicted or created, and the init hook runs
// before fn on transient clients.
func TestForEachKeepsHotTenantsCached(t *testing.T) {
	var inits atomic.Int32
	m := newManager(t, mongotenant.WithMaxClients(2),
		mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { inits.Add(1); return nil }))
	acquire(t, m, "hot1").Release()
	acquire(t, m, "hot2").Release()
	before := m.Stats()

	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("t%d", i))
	}
	ids = append(ids, "hot1", "hot2")
	var seen sync.Map
	res := m.ForEach(context.Background(), seqOf(ids...), func(ctx context.Context, id string, db *mongo.Database) error {
		seen.Store(id, db.Name())
		return nil
	}, mongotenant.ForEachOptions{Parallelism: 3})

	require.Len(t, res, 12)
	for _, r := range res {
		require.NoError(t, r.Err, r.TenantID)
		assert.Equal(t, r.TenantID != "hot1" && r.TenantID != "hot2", r.Transient, r.TenantID)
		name, _ := seen.Load(r.TenantID)
		assert.Equal(t, "user_"+r.TenantID+"_db", name)
	}
	assert.True(t, slices.IsSortedFunc(res, func(a, b mongotenant.ForEachResult) int { return cmpString(a.TenantID, b.TenantID) }))
	s := m.Stats()
	assert.Equal(t, 2, s.Clients)
	assert.Equal(t, before.Created, s.Created, "no cached client created")
	assert.Zero(t, s.Evicted, "nothing evicted")
	assert.Equal(t, uint64(10), s.Transient)
	assert.Equal(t, 0, s.Leases)
	assert.Equal(t, int32(2+10), inits.Load(), "init ran for the hot tenants once, and before fn on each transient client")
	for _, id := range []string{"hot1", "hot2"} {
		_, ok := m.TenantStats(id)
		assert.True(t, ok, "%s is still cached", id)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestForEachReportsEachFailure: an invalid ID, a Router's refusal and
// fn's error are reported per tenant; the others are served.
func TestForEachReportsEachFailure(t *testing.T) {
	errBoom := errors.New("boom")
	m := newManager(t, mongotenant.WithRouter(func(_ context.Context, id string, _ *mongotenant.Route) error {
		if id == "refused" {
			return fmt.Errorf("no: %w", mongotenant.ErrTenantSuspended)
		}
		return nil
	}))
	var progress []mongotenant.ForEachProgress
	res := m.ForEach(context.Background(), seqOf("a", "bad id", "refused", "fails", "b"), func(ctx context.Context, id string, db *mongo.Database) error {
		if id == "fails" {
			return errBoom
		}
		return nil
	}, mongotenant.ForEachOptions{Parallelism: 2, Progress: func(p mongotenant.ForEachProgress) { progress = append(progress, p) }})
	got := map[string]error{}
	for _, r := range res {
		got[r.TenantID] = r.Err
	}
	assert.NoError(t, got["a"])
	assert.NoError(t, got["b"])
	assert.ErrorIs(t, got["bad id"], mongotenant.ErrInvalidTenant)
	assert.ErrorIs(t, got["refused"], mongotenant.ErrTenantSuspended)
	assert.ErrorIs(t, got["fails"], errBoom)
	require.Len(t, progress, 5)
	for i, p := range progress {
		assert.Equal(t, i+1, p.Done, "progress after each tenant, in turn")
	}
	assert.Equal(t, 3, progress[4].Failed)
}

// TestForEachParallelism: never more than Parallelism tenants at once,
// and that many when there is work.
func TestForEachParallelism(t *testing.T) {
	m := newManager(t)
	var inFlight, most atomic.Int32
	gate := make(chan struct{})
	var once sync.Once
	var ids []string
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("p%d", i))
	}
	m.ForEach(context.Background(), seqOf(ids...), func(context.Context, string, *mongo.Database) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for c := most.Load(); n > c && !most.CompareAndSwap(c, n); c = most.Load() {
		}
		if n == 3 {
			once.Do(func() { close(gate) })
		}
		<-gate // the first wave waits until all three are in
		return nil
	}, mongotenant.ForEachOptions{Parallelism: 3})
	assert.Equal(t, int32(3), most.Load())
}

// TestForEachStopsWithCtx: once ctx ends no tenant is started; the
// results cover the tenants reached.
func TestForEachStopsWithCtx(t *testing.T) {
	m := newManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("c%02d", i))
	}
	res := m.ForEach(ctx, seqOf(ids...), func(ctx context.Context, id string, db *mongo.Database) error {
		if id == "c04" {
			cancel()
		}
		return nil
	}, mongotenant.ForEachOptions{})
	assert.Len(t, res, 5, "serially: c00 to c04, then ctx ended")
}

// TestForEachPanics: a panic in fn is raised by ForEach after the tenants
// under way finish; leases are released and no goroutine is left (goleak).
func TestForEachPanics(t *testing.T) {
	m := newManager(t)
	acquire(t, m, "hot").Release()
	var served atomic.Int32
	assert.PanicsWithValue(t, "fn", func() {
		m.ForEach(context.Background(), seqOf("hot", "x1", "x2", "x3", "x4"), func(_ context.Context, id string, _ *mongo.Database) error {
			served.Add(1)
			if id == "hot" {
				panic("fn")
			}
			return nil
		}, mongotenant.ForEachOptions{Parallelism: 2})
	})
	assert.Equal(t, 0, m.Stats().Leases)
	assert.PanicsWithValue(t, "progress", func() {
		m.ForEach(context.Background(), seqOf("a", "b"), func(context.Context, string, *mongo.Database) error { return nil },
			mongotenant.ForEachOptions{Progress: func(mongotenant.ForEachProgress) { panic("progress") }})
	})
	assert.PanicsWithValue(t, "ids", func() {
		m.ForEach(context.Background(), func(yield func(string) bool) {
			yield("a")
			panic("ids")
		}, func(context.Context, string, *mongo.Database) error { return nil }, mongotenant.ForEachOptions{Parallelism: 2})
	})
}

// TestDoIsolatedCachesNothing: DoIsolated serves the tenant by a transient
// client without the init hook, and leaves no route, client or lease
// behind; a Router refusing the tenant refuses DoIsolated too.
func TestDoIsolatedCachesNothing(t *testing.T) {
	var inits atomic.Int32
	m := newManager(t, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { inits.Add(1); return nil }),
		mongotenant.WithRouter(func(_ context.Context, id string, _ *mongotenant.Route) error {
			if id == "refused" {
				return mongotenant.ErrTenantSuspended
			}
			return nil
		}))
	var name string
	require.NoError(t, m.DoIsolated(context.Background(), "acme", func(_ context.Context, db *mongo.Database) error {
		name = db.Name()
		return nil
	}))
	assert.Equal(t, "user_acme_db", name)
	assert.Zero(t, inits.Load())
	_, cached := m.TenantStats("acme")
	assert.False(t, cached)
	s := m.Stats()
	assert.Equal(t, 0, s.Tenants)
	assert.Equal(t, 0, s.Clients)
	assert.Equal(t, uint64(1), s.Transient)
	require.ErrorIs(t, m.DoIsolated(context.Background(), "refused", func(context.Context, *mongo.Database) error { return nil }), mongotenant.ErrTenantSuspended)
	require.ErrorIs(t, m.DoIsolated(context.Background(), "bad id", func(context.Context, *mongo.Database) error { return nil }), mongotenant.ErrInvalidTenant)
}

// TestDrainWaitsForTransientWork: Drain returns only after fn on a
// transient client ends, as it does for leases.
func TestDrainWaitsForTransientWork(t *testing.T) {
	m := newManager(t)
	inside, leave := make(chan struct{}), make(chan struct{})
	done := make(chan []mongotenant.ForEachResult, 1)
	go func() {
		done <- m.ForEach(context.Background(), seqOf("acme"), func(context.Context, string, *mongo.Database) error {
			close(inside)
			<-leave
			return nil
		}, mongotenant.ForEachOptions{})
	}()
	<-inside
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, m.Drain(short, "acme"), context.DeadlineExceeded, "fn is still running")
	close(leave)
	require.NoError(t, m.Drain(context.Background(), "acme"))
	require.Len(t, <-done, 1)
}

// TestForEachSkipInit: SkipInit keeps the init hook off transient clients.
func TestForEachSkipInit(t *testing.T) {
	var inits atomic.Int32
	m := newManager(t, mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { inits.Add(1); return nil }))
	m.ForEach(context.Background(), seqOf("a", "b"), func(context.Context, string, *mongo.Database) error { return nil },
		mongotenant.ForEachOptions{SkipInit: true})
	assert.Zero(t, inits.Load())
}

// TestForEachStartsNothingAfterAPanic: serially, a panic on the first
// tenant stops the rest.
func TestForEachStartsNothingAfterAPanic(t *testing.T) {
	m := newManager(t)
	var started atomic.Int32
	assert.Panics(t, func() {
		m.ForEach(context.Background(), seqOf("a", "b", "c", "d"), func(context.Context, string, *mongo.Database) error {
			started.Add(1)
			panic("first")
		}, mongotenant.ForEachOptions{})
	})
	assert.Equal(t, int32(1), started.Load())
}
