// Quickstart gives three tenants their own database through one Manager,
// shows the LRU cap at work, and prints the Manager's stats.
//
//	go run ./examples/quickstart
//
// It uses MONGODB_URI if set, and otherwise starts an embedded server.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/examples/internal/example"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func main() { example.Main(run) }

func run(ctx context.Context, w io.Writer, uri string) error {
	// Two clients at most: the third tenant evicts the least recently used.
	m, err := mongotenant.New(uri, mongotenant.WithMaxClients(2), mongotenant.WithPoolSize(5))
	if err != nil {
		return err
	}
	defer m.Close(ctx)

	posts := map[string][]string{
		"alice": {"Hello from Alice", "Second post"},
		"bob":   {"Bob's first post"},
		"carol": {"Carol here", "Notes", "Release plans"},
	}
	for _, tenant := range []string{"alice", "bob", "carol"} {
		err := m.Do(ctx, tenant, func(ctx context.Context, db *mongo.Database) error {
			coll := db.Collection("posts")
			if err := coll.Drop(ctx); err != nil { // start clean on a shared server
				return err
			}
			for _, title := range posts[tenant] {
				if _, err := coll.InsertOne(ctx, bson.D{{Key: "title", Value: title}}); err != nil {
					return err
				}
			}
			n, err := coll.CountDocuments(ctx, bson.D{})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%-5s  %d posts in %s\n", tenant, n, db.Name())
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", tenant, err)
		}
	}

	// Alice's client was evicted for carol's; her next request builds a new one.
	lease, err := m.Acquire(ctx, "alice")
	if err != nil {
		return err
	}
	var first bson.M
	err = lease.Database().Collection("posts").FindOne(ctx, bson.D{{Key: "title", Value: "Hello from Alice"}}).Decode(&first)
	lease.Release()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "alice  found %q after her client was evicted\n", first["title"])

	s := m.Stats()
	fmt.Fprintf(w, "stats  clients=%d/%d created=%d recycled=%d hits=%d misses=%d evicted(lru)=%d leases=%d\n",
		s.Clients, s.MaxClients, s.Created, s.Recycled, s.Hits, s.Misses, s.EvictedLRU, s.Leases)
	if ts, ok := m.TenantStats("carol"); ok {
		fmt.Fprintf(w, "carol  pool size %d, %d connection check-outs\n", ts.PoolSize, ts.CheckOuts)
	}
	return m.Close(ctx)
}
