package integration_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestSoakTenantCycling cycles tenants through MaxClients=50, one real
// operation each, and checks that goroutines and heap stay flat: bounded by
// the cap, not by the tenants seen. Short by default (3,000 tenants); set
// MONGOTENANT_SOAK=1 for the full 100,000.
func TestSoakTenantCycling(t *testing.T) {
	tenants := 3000
	if os.Getenv("MONGOTENANT_SOAK") == "1" {
		tenants = 100_000
	}
	const maxClients = 50
	// One database for all: each tenant still gets its own client, which is
	// what churns, but the in-process server does not grow a database per
	// tenant into the heap this test measures.
	m, _ := setup(t, mongotenant.WithMaxClients(maxClients),
		mongotenant.WithDatabaseName(func(string) string { return "soak" }))
	ctx := context.Background()
	op := func(i int) {
		err := m.Do(ctx, fmt.Sprintf("soak%06d", i), func(ctx context.Context, db *mongo.Database) error {
			err := db.Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Err()
			if err == mongo.ErrNoDocuments {
				return nil
			}
			return err
		})
		require.NoError(t, err)
	}
	// Each sample waits for evicted clients to finish disconnecting in the
	// background: how far that lags depends on the machine, what stays
	// behind after it does not.
	sample := func() (goroutines int, heapMiB float64) {
		waitFor(t, "evicted clients to disconnect", func() bool { return m.Stats().Retiring == 0 })
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), float64(ms.HeapAlloc) / (1 << 20)
	}

	warm := tenants / 5
	for i := range warm {
		op(i)
	}
	g0, h0 := sample()
	maxG, maxH := g0, h0
	for i := warm; i < tenants; i++ {
		op(i)
		if i%(tenants/10) == 0 {
			g, h := sample()
			maxG, maxH = max(maxG, g), max(maxH, h)
		}
	}
	g1, h1 := sample()
	s := m.Stats()
	t.Logf("%d tenants through %d clients: goroutines %d after warm-up, %d max, %d at end; heap %.1f MiB after warm-up, %.1f max, %.1f at end; created %d, tenants cached %d, retiring %d",
		tenants, maxClients, g0, maxG, g1, h0, maxH, h1, s.Created, s.Tenants, s.Retiring)
	assert.LessOrEqual(t, s.Clients, maxClients)
	assert.LessOrEqual(t, s.Tenants, maxClients, "tenant records grow with tenants seen")
	// Flat: the remaining four fifths of the tenants add no more than a
	// little slack (driver and server goroutines still ending) to what the
	// first fifth left behind.
	assert.LessOrEqual(t, maxG, g0+maxClients, "goroutines grow with tenants seen")
	assert.LessOrEqual(t, maxH, h0*1.5+4, "heap grows with tenants seen")
}
