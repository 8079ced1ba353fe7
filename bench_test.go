package mongotenant_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// BenchmarkAcquireRelease measures the hot path: a cached tenant, no I/O.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	for _, tenants := range []int{1, 100} {
		m := newManager(b, mongotenant.WithMaxClients(0))
		ids := make([]string, tenants)
		for i := range ids {
			ids[i] = fmt.Sprintf("tenant-%d", i)
			acquire(b, m, ids[i]).Release()
		}
		b.Run(fmt.Sprintf("serial/tenants=%d", tenants), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l, err := m.Acquire(ctx, ids[i%tenants])
				if err != nil {
					b.Fatal(err)
				}
				l.Release()
				i++
			}
		})
		b.Run(fmt.Sprintf("parallel/tenants=%d", tenants), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					l, err := m.Acquire(ctx, ids[i%tenants])
					if err != nil {
						b.Error(err)
						return
					}
					l.Release()
					i++
				}
			})
		})
	}
}

// BenchmarkAcquireReleaseBulkhead adds a bulkhead (a channel send and
// receive) and a shared client to the hot path.
func BenchmarkAcquireReleaseBulkhead(b *testing.B) {
	m := newManager(b, mongotenant.WithMaxLeases(64), mongotenant.WithStrategy(mongotenant.Shared()))
	ctx := context.Background()
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-%d", i)
		acquire(b, m, ids[i]).Release()
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
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

func BenchmarkStats(b *testing.B) {
	m := newManager(b, mongotenant.WithMaxClients(0))
	for i := range 100 {
		acquire(b, m, fmt.Sprintf("t%d", i)).Release()
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Stats()
	}
}

var noop = func(context.Context, *mongo.Database) error { return nil }

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
