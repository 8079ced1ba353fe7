package integration_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestForEachAgainstAServer: a job writes to 30 tenants under Dedicated
// with a cap of 3 while 3 hot tenants hold the cache: every write lands in
// its tenant's database through a transient client, the hot tenants keep
// their clients, and no cached client is created or evicted.
func TestForEachAgainstAServer(t *testing.T) {
	m, raw := setup(t, mongotenant.WithMaxClients(3))
	ctx := context.Background()
	for _, id := range []string{"hot1", "hot2", "hot3"} {
		require.NoError(t, m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error { return db.Client().Ping(ctx, nil) }))
	}
	before := m.Stats()
	ids := func(yield func(string) bool) {
		for i := range 30 {
			if !yield(fmt.Sprintf("job%02d", i)) {
				return
			}
		}
	}
	res := m.ForEach(ctx, ids, func(ctx context.Context, id string, db *mongo.Database) error {
		_, err := db.Collection("reports").InsertOne(ctx, bson.D{{Key: "tenant", Value: id}})
		return err
	}, mongotenant.ForEachOptions{Parallelism: 4})
	require.Len(t, res, 30)
	for _, r := range res {
		require.NoError(t, r.Err, r.TenantID)
		assert.True(t, r.Transient, r.TenantID)
		n, err := raw.Database("user_"+r.TenantID+"_db").Collection("reports").CountDocuments(ctx, bson.D{{Key: "tenant", Value: r.TenantID}})
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, r.TenantID)
	}
	s := m.Stats()
	assert.Equal(t, before.Created, s.Created)
	assert.Zero(t, s.Evicted)
	assert.Equal(t, uint64(30), s.Transient)
	for _, id := range []string{"hot1", "hot2", "hot3"} {
		_, ok := m.TenantStats(id)
		assert.True(t, ok, "%s keeps its client", id)
	}
}

// TestTenantsOnServer: the tenants of a deployment without a catalog, from
// its database names by the default naming rule, or by the caller's.
func TestTenantsOnServer(t *testing.T) {
	m, raw := setup(t)
	ctx := context.Background()
	for _, id := range []string{"beta", "alpha", "gamma-1"} {
		require.NoError(t, m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error {
			_, err := db.Collection("x").InsertOne(ctx, bson.D{})
			return err
		}))
	}
	_, err := raw.Database("not_a_tenant").Collection("x").InsertOne(ctx, bson.D{})
	require.NoError(t, err)
	ids, err := mongotenant.TenantsOnServer(ctx, raw, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"alpha", "beta", "gamma-1"}, ids)

	ids, err = mongotenant.TenantsOnServer(ctx, raw, func(db string) (string, bool) { return db, db == "not_a_tenant" })
	require.NoError(t, err)
	assert.Equal(t, []string{"not_a_tenant"}, ids)
}
