package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func Example() {
	// New does no network I/O; clients are created on first use.
	m, err := mongotenant.New("mongodb://127.0.0.1:27017/",
		mongotenant.WithMaxClients(500),
		mongotenant.WithIdleTimeout(5*time.Minute))
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())

	ctx := context.Background()
	for _, tenant := range []string{"alice", "bob", "alice"} {
		lease, err := m.Acquire(ctx, tenant)
		if err != nil {
			panic(err)
		}
		// Use lease.Database() here: lease.Database().Collection("posts").InsertOne(ctx, post)
		fmt.Println(tenant, "->", lease.Database().Name())
		lease.Release()
	}
	s := m.Stats()
	fmt.Printf("clients=%d created=%d hits=%d misses=%d\n", s.Clients, s.Created, s.Hits, s.Misses)
	// Output:
	// alice -> user_alice_db
	// bob -> user_bob_db
	// alice -> user_alice_db
	// clients=2 created=2 hits=1 misses=2
}

func ExampleManager_Do() {
	m, err := mongotenant.New("mongodb://127.0.0.1:27017/",
		mongotenant.WithDatabaseName(func(id string) string { return "tenant_" + id }))
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())

	err = m.Do(context.Background(), "acme", func(ctx context.Context, db *mongo.Database) error {
		fmt.Println("working in", db.Name())
		return nil // e.g. db.Collection("projects").InsertOne(ctx, project)
	})
	fmt.Println("err:", err)
	// Output:
	// working in tenant_acme
	// err: <nil>
}

func ExampleValidateTenantID() {
	for _, id := range []string{"acme-42", "../admin", ""} {
		err := mongotenant.ValidateTenantID(id)
		fmt.Printf("%q valid=%t invalid-tenant=%t\n", id, err == nil, errors.Is(err, mongotenant.ErrInvalidTenant))
	}
	// Output:
	// "acme-42" valid=true invalid-tenant=false
	// "../admin" valid=false invalid-tenant=true
	// "" valid=false invalid-tenant=true
}

func ExampleGroupOf() {
	// The same in every process and release: safe to persist or log.
	for _, id := range []string{"alice", "bob", "carol"} {
		fmt.Println(id, "-> group", mongotenant.GroupOf(id, 8))
	}
	// Output:
	// alice -> group 4
	// bob -> group 2
	// carol -> group 7
}

func ExampleWithStrategy() {
	m, err := mongotenant.New("mongodb://127.0.0.1:27017/",
		mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithMaxLeases(8)) // no tenant may hold more than 8 leases of the shared pool
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())
	for _, id := range []string{"alice", "bob", "carol"} {
		err := m.Do(context.Background(), id, func(ctx context.Context, db *mongo.Database) error { return nil })
		if err != nil {
			panic(err)
		}
	}
	s := m.Stats()
	fmt.Printf("tenants=%d clients=%d\n", s.Tenants, s.Clients)
	// Output:
	// tenants=3 clients=1
}

func ExampleWithTiers() {
	plans := map[string]string{"acme": "enterprise", "tiny": "free"} // the app's billing data
	m, err := mongotenant.New("mongodb://127.0.0.1:27017/",
		mongotenant.WithTiers(func(ctx context.Context, tenantID string) (string, error) {
			return plans[tenantID], nil
		}, nil)) // nil: free 3, basic 5, premium 10, enterprise 20
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())
	for _, id := range []string{"acme", "tiny"} {
		l, err := m.Acquire(context.Background(), id)
		if err != nil {
			panic(err)
		}
		l.Release()
		s, _ := m.TenantStats(id)
		fmt.Printf("%s: %s, pool %d\n", id, s.Tier, s.PoolSize)
	}
	// Output:
	// acme: enterprise, pool 20
	// tiny: free, pool 3
}

func ExampleWithFairSharing() {
	tierOf := func(_ context.Context, tenantID string) (string, error) {
		if tenantID == "acme" {
			return "enterprise", nil
		}
		return "free", nil
	}
	m, err := mongotenant.New("mongodb://127.0.0.1:27017/",
		mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithPoolSize(20),
		mongotenant.WithFairSharing(0), // capacity: the pool size
		mongotenant.WithTiers(tierOf, map[string]mongotenant.Tier{
			"free":       {Weight: 1},
			"enterprise": {Weight: 4}, // four turns to a free tenant's one while both wait
		}))
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())

	// A long handler takes a turn for each database step, not for the
	// whole request: slow work between steps holds no share of the client.
	ctx := context.Background()
	for _, step := range []string{"load", "save"} {
		err := m.Do(ctx, "acme", func(ctx context.Context, db *mongo.Database) error {
			fmt.Println(step, "on", db.Name()) // db.Collection("orders")...
			return nil
		})
		if errors.Is(err, mongotenant.ErrTenantBusy) {
			return // its turn did not come before ctx ended: 429
		}
		// Render, call another service...
	}
	g := m.GroupStats()[0]
	fmt.Printf("%s: capacity %d, in use %d, waiting %d\n", g.Group, g.FairCapacity, g.FairInUse, g.FairWaiting)
	// Output:
	// load on user_acme_db
	// save on user_acme_db
	// shared: capacity 20, in use 0, waiting 0
}

// ExampleWithAdaptiveLimit bounds each tenant's concurrent leases by a
// limit that follows its latency: it starts at the pool size, and leases
// held longer than 50 ms bring it down.
func ExampleWithAdaptiveLimit() {
	m, err := mongotenant.New("mongodb://127.0.0.1:27017/",
		mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithPoolSize(8),
		mongotenant.WithAdaptiveLimit(50*time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())

	// One database step per lease: the lease's latency is the step's.
	err = m.Do(context.Background(), "acme", func(ctx context.Context, db *mongo.Database) error {
		return nil // db.Collection("orders").FindOne(ctx, ...)
	})
	if errors.Is(err, mongotenant.ErrTenantBusy) {
		return // at its limit until ctx ended: 429
	}
	s, _ := m.TenantStats("acme")
	fmt.Println("limit", s.Limit)
	// Output: limit 8
}
