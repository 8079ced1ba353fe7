package mongotenant_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// BenchmarkAcquireRelease measures the hot path: a cached tenant, no I/O.
// The parallel cases report ns/op per goroutine too: the wall time of one
// operation on one goroutine, to compare with the serial figure.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []mongotenant.Option
	}{
		{"dedicated", nil},
		{"dedicated+bulkhead", []mongotenant.Option{mongotenant.WithMaxLeases(64)}},
		{"shared", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared())}},
		{"shared+bulkhead", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithMaxLeases(64)}},
		{"shared+fair", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(0)}},
		{"grouped+fair", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Grouped(4)), mongotenant.WithFairSharing(0)}},
		{"shared+adaptive", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithAdaptiveLimit(time.Second)}},
		{"dedicated+hooks", []mongotenant.Option{mongotenant.WithHooks(everyHook()), mongotenant.WithCommandStats(time.Millisecond)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			procs := runtime.GOMAXPROCS(0)
			m := newManager(b, append(tc.opts, mongotenant.WithMaxClients(0))...)
			ids := warm(b, m, "t", 100*procs)
			b.Run("serial/tenants=1", func(b *testing.B) { benchSerial(b, m, ids[:1]) })
			b.Run("serial/tenants=100", func(b *testing.B) { benchSerial(b, m, ids[:100]) })
			b.Run("parallel/one-tenant", func(b *testing.B) {
				benchParallel(b, m, func(int) []string { return ids[:1] })
			})
			b.Run("parallel/own-100-tenants", func(b *testing.B) {
				benchParallel(b, m, func(g int) []string { return ids[g*100 : (g+1)*100] })
			})
		})
	}
}

// everyHook sets every hook, each doing a little work: the hot path runs
// none of them.
func everyHook() mongotenant.Hooks {
	var n atomic.Int64
	return mongotenant.Hooks{
		AcquireStart:       func(ctx context.Context, _ string) context.Context { n.Add(1); return ctx },
		AcquireEnd:         func(context.Context, mongotenant.AcquireEvent) { n.Add(1) },
		RouteStart:         func(ctx context.Context, _ string) context.Context { n.Add(1); return ctx },
		RouteEnd:           func(context.Context, mongotenant.RouteEvent) { n.Add(1) },
		ClientCreated:      func(context.Context, mongotenant.ClientEvent) { n.Add(1) },
		ClientDisconnected: func(mongotenant.ClientEvent) { n.Add(1) },
	}
}

// warm acquires n tenants once, so that they are cached.
func warm(b *testing.B, m *mongotenant.Manager, prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		acquire(b, m, ids[i]).Release()
	}
	return ids
}

func benchSerial(b *testing.B, m *mongotenant.Manager, ids []string) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l, err := m.Acquire(ctx, ids[i%len(ids)])
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
		i++
	}
}

// benchParallel runs Acquire+Release on every P, goroutine g cycling over
// idsOf(g).
func benchParallel(b *testing.B, m *mongotenant.Manager, idsOf func(g int) []string) {
	ctx := context.Background()
	var next atomic.Int32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ids := idsOf(int(next.Add(1)) - 1)
		i := 0
		for pb.Next() {
			l, err := m.Acquire(ctx, ids[i%len(ids)])
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
			i++
		}
	})
	perGoroutine := float64(b.Elapsed().Nanoseconds()) / float64(b.N) * float64(runtime.GOMAXPROCS(0))
	b.ReportMetric(perGoroutine, "ns/op/goroutine")
}

func BenchmarkDo(b *testing.B) {
	m := newManager(b)
	ctx := context.Background()
	acquire(b, m, "t").Release()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Do(ctx, "t", noop); err != nil {
			b.Fatal(err)
		}
	}
}

var noop = func(context.Context, *mongo.Database) error { return nil }

// BenchmarkFirstAcquire is a new tenant's first Acquire and Release under
// Shared: validate, route, bind to the existing client, lease. Memory per
// op is what the tenant costs, with the growth of the map and the expiry
// index amortised. The Manager holds about 100,000 tenants throughout:
// each batch of new tenants is forgotten, untimed, before the next.
func BenchmarkFirstAcquire(b *testing.B) {
	m := newManager(b, mongotenant.WithStrategy(mongotenant.Shared()))
	warm(b, m, "held", 100_000-1<<15)
	b.ReportAllocs()
	b.ResetTimer()
	forNewTenants(b, func(ctx context.Context, id string) {
		l, err := m.Acquire(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}, func(ids []string) {
		for _, id := range ids {
			if err := m.Forget(context.Background(), id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// forNewTenants calls fn b.N times, each with a tenant ID not used before.
// The IDs are made in batches of 65,536 with the timer stopped, and after
// each batch done, if not nil, gets the batch, the timer still stopped.
func forNewTenants(b *testing.B, fn func(ctx context.Context, id string), done func(ids []string)) {
	ctx := context.Background()
	for n := 0; n < b.N; {
		b.StopTimer()
		ids := make([]string, min(b.N-n, 1<<16))
		for j := range ids {
			ids[j] = fmt.Sprintf("new-%d", n+j)
		}
		b.StartTimer()
		for _, id := range ids {
			fn(ctx, id)
		}
		n += len(ids)
		if done != nil {
			b.StopTimer()
			done(ids)
			b.StartTimer()
		}
	}
}

// BenchmarkIdleTenantHeap reports the heap an idle tenant holds under
// Shared, record and map slot and database name included, once without
// and once after its database handle was used: the client keeps at most
// 1,024 handles, so idle tenants do not keep theirs.
func BenchmarkIdleTenantHeap(b *testing.B) {
	for _, useDB := range []bool{false, true} {
		b.Run(fmt.Sprintf("database-used=%t", useDB), func(b *testing.B) {
			const n = 200_000
			for b.Loop() {
				m, err := mongotenant.New(unreachable, mongotenant.WithStrategy(mongotenant.Shared()))
				if err != nil {
					b.Fatal(err)
				}
				acquire(b, m, "warm").Release()
				ids := make([]string, n)
				for i := range ids {
					ids[i] = fmt.Sprintf("tenant-%07d", i)
				}
				before := heapAfterGC()
				ctx := context.Background()
				for _, id := range ids {
					l, err := m.Acquire(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					if useDB {
						_ = l.Database()
					}
					l.Release()
				}
				after := heapAfterGC()
				b.ReportMetric(float64(after-before)/n, "B/tenant")
				runtime.KeepAlive(ids)
				if err := m.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkStats is Stats with 100 dedicated clients, and with 200,000
// tenants on a shared client: it costs O(clients), not O(tenants).
func BenchmarkStats(b *testing.B) {
	for _, tc := range []struct {
		name    string
		tenants int
		opts    []mongotenant.Option
	}{
		{"dedicated/clients=100", 100, []mongotenant.Option{mongotenant.WithMaxClients(0)}},
		{"shared/tenants=200000", 200_000, []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared())}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := newManager(b, tc.opts...)
			warm(b, m, "t", tc.tenants)
			b.ReportAllocs()
			for b.Loop() {
				_ = m.Stats()
			}
		})
	}
}

// BenchmarkCreateAtCap is a new dedicated tenant at the client cap: an LRU
// victim is chosen and evicted, and a client connected for the newcomer
// (or, with recycling, the victim's client handed over). Choosing the
// victim by sampling keeps the cost flat as the cap grows.
func BenchmarkCreateAtCap(b *testing.B) {
	for _, recycle := range []bool{false, true} {
		for _, capacity := range []int{100, 4000} {
			b.Run(fmt.Sprintf("recycle=%t/cap=%d", recycle, capacity), func(b *testing.B) {
				m := newManager(b, mongotenant.WithMaxClients(capacity), mongotenant.WithClientRecycling(recycle))
				warm(b, m, "cached", capacity)
				b.ResetTimer()
				forNewTenants(b, func(ctx context.Context, id string) {
					l, err := m.Acquire(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					l.Release()
				}, nil)
				b.StopTimer()
				waitFor(b, "evicted clients to disconnect", func() bool { return m.Stats().Retiring == 0 })
			})
		}
	}
}

// BenchmarkExpiryStall: 200,000 idle tenants of a shared client expire
// together while a goroutine acquires and releases a busy tenant. It
// reports the longest single Acquire+Release meanwhile: the reaper works
// in batches and takes no lock the hot path takes.
func BenchmarkExpiryStall(b *testing.B) {
	const n = 200_000
	for b.Loop() {
		clock := mongotenant.NewFakeClock()
		m, err := mongotenant.New(unreachable, mongotenant.WithFakeClock(clock),
			mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithIdleTimeout(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		warm(b, m, "idle", n)
		var stop atomic.Bool
		var longest atomic.Int64
		var wg sync.WaitGroup
		ctx := context.Background()
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				l, err := m.Acquire(ctx, "busy")
				if err != nil {
					b.Error(err)
					return
				}
				l.Release()
				if d := int64(time.Since(start)); d > longest.Load() {
					longest.Store(d)
				}
			}
		})
		for m.Stats().Tenants > 1 {
			if !tick(b, clock, time.Second) {
				break
			}
		}
		stop.Store(true)
		wg.Wait()
		if got := m.Stats().ExpiredTenants; got < n {
			b.Fatalf("%d tenants expired, want %d", got, n)
		}
		b.ReportMetric(float64(longest.Load())/1e6, "max-acquire-ms")
		if err := m.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGroupOf is the routing cost Grouped(n) adds to a tenant's first
// Acquire (routes are cached after that).
func BenchmarkGroupOf(b *testing.B) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = mongotenant.GroupOf(ids[i%len(ids)], 64)
		i++
	}
}

// BenchmarkParallelControl is not the library: two goroutines each working
// on 100 objects of their own, with the compare-and-swaps of a lease and
// no memory in common. It is the floor for the parallel figures above:
// what two goroutines cost each other on this machine when they share
// nothing.
func BenchmarkParallelControl(b *testing.B) {
	type object struct {
		word atomic.Uint64
		_    [56]byte
		data [8]uint64
	}
	sets := make([][]*object, runtime.GOMAXPROCS(0))
	for g := range sets {
		for range 100 {
			sets[g] = append(sets[g], new(object))
		}
	}
	op := func(objs []*object, i int) {
		o := objs[i%len(objs)]
		w := o.word.Load()
		o.word.CompareAndSwap(w, w+1+o.data[3])
		w = o.word.Load()
		o.word.CompareAndSwap(w, w-1)
	}
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			op(sets[0], i)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int32
		b.RunParallel(func(pb *testing.PB) {
			objs := sets[int(next.Add(1)-1)%len(sets)]
			i := 0
			for pb.Next() {
				op(objs, i)
				i++
			}
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*float64(runtime.GOMAXPROCS(0)), "ns/op/goroutine")
	})
}
