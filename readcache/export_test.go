package readcache

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// SetFind replaces the query a Cache runs; call it before using c.
func SetFind(c *Cache, find func(ctx context.Context, db *mongo.Database, collection string, filter any,
	opts ...options.Lister[options.FindOneOptions]) (bson.Raw, error)) {
	c.find = find
}

// SetClock replaces a Cache's clock; call it before using c.
func SetClock(c *Cache, now func() time.Time) { c.now = now }

// Key returns the key of a query at the given generations.
func Key(tenantID, database, collection string, epoch, tenantGen, collGen uint64, filter []byte) string {
	return string(appendKey(nil, tenantID, database, collection, generation{epoch, tenantGen, collGen}, filter))
}

// Generations returns how many generations c holds, and the bound.
func Generations(c *Cache) (n, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nGens, c.maxGens
}
