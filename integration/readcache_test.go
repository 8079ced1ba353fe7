package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/readcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// newReadCache returns a cache whose TTL outlives any test, so what it
// serves depends on invalidation only.
func newReadCache(t *testing.T) *readcache.Cache {
	t.Helper()
	c, err := readcache.New(100, time.Hour)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// cachedName reads the "name" of document _id through the cache, under a
// lease of tenant.
func cachedName(t *testing.T, m *mongotenant.Manager, c *readcache.Cache, tenant, id string) string {
	t.Helper()
	var name string
	err := m.Do(context.Background(), tenant, func(ctx context.Context, db *mongo.Database) error {
		raw, err := c.FindOne(ctx, tenant, db, "profiles", bson.D{{Key: "_id", Value: id}})
		if err != nil {
			return err
		}
		name = raw.Lookup("name").StringValue()
		return nil
	})
	require.NoError(t, err)
	return name
}

func TestReadCacheFindOneAndInvalidate(t *testing.T) {
	m, raw := setup(t)
	c := newReadCache(t)
	ctx := context.Background()
	profiles := raw.Database("user_alice_db").Collection("profiles")

	err := m.Do(ctx, "alice", func(ctx context.Context, db *mongo.Database) error {
		_, err := c.FindOne(ctx, "alice", db, "profiles", bson.D{{Key: "_id", Value: "me"}})
		return err
	})
	require.ErrorIs(t, err, mongo.ErrNoDocuments)

	_, err = profiles.InsertOne(ctx, bson.D{{Key: "_id", Value: "me"}, {Key: "name", Value: "Alice"}})
	require.NoError(t, err)
	assert.Equal(t, "Alice", cachedName(t, m, c, "alice", "me"), "not found was not cached")
	assert.Equal(t, "Alice", cachedName(t, m, c, "alice", "me"))
	s := c.Stats()
	assert.Equal(t, uint64(1), s.Hits)
	assert.Equal(t, uint64(2), s.Misses)

	_, err = profiles.UpdateByID(ctx, "me", bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: "Alicia"}}}})
	require.NoError(t, err)
	assert.Equal(t, "Alice", cachedName(t, m, c, "alice", "me"), "the cache does not see writes")
	c.InvalidateCollection("alice", "profiles")
	assert.Equal(t, "Alicia", cachedName(t, m, c, "alice", "me"))
}

func TestReadCacheTenantsGetTheirOwnDocuments(t *testing.T) {
	m, raw := setup(t)
	c := newReadCache(t)
	ctx := context.Background()
	for tenant, name := range map[string]string{"alice": "Alice", "bob": "Bob"} {
		_, err := raw.Database("user_"+tenant+"_db").Collection("profiles").
			InsertOne(ctx, bson.D{{Key: "_id", Value: "me"}, {Key: "name", Value: name}})
		require.NoError(t, err)
	}
	for range 2 {
		assert.Equal(t, "Alice", cachedName(t, m, c, "alice", "me"))
		assert.Equal(t, "Bob", cachedName(t, m, c, "bob", "me"))
	}
	s := c.Stats()
	assert.Equal(t, uint64(2), s.Misses, "one query per tenant")
	assert.Equal(t, uint64(2), s.Hits)
	assert.Equal(t, 2, s.Len)
}
