package readcache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/readcache"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func ExampleNew() {
	_, err := readcache.New(0, time.Minute)
	fmt.Println(errors.Is(err, readcache.ErrInvalidConfig))

	cache, err := readcache.New(10_000, 30*time.Second)
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	fmt.Printf("%+v\n", cache.Stats())
	// Output:
	// true
	// {Hits:0 Misses:0 Bypass:0 Evictions:0 Len:0}
}

// The cache sits inside a lease: it needs the tenant's database to query on
// a miss. Writers invalidate what they change.
func ExampleCache_FindOne() {
	m, err := mongotenant.New("mongodb://db.internal:27017/")
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())
	cache, err := readcache.New(10_000, 30*time.Second)
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	ctx, tenantID := context.Background(), "acme"
	var settings struct {
		Theme string `bson:"theme"`
	}
	err = m.Do(ctx, tenantID, func(ctx context.Context, db *mongo.Database) error {
		raw, err := cache.FindOne(ctx, tenantID, db, "settings", bson.D{{Key: "_id", Value: "ui"}})
		if err != nil {
			return err // mongo.ErrNoDocuments included
		}
		return bson.Unmarshal(raw, &settings)
	})
	if err != nil {
		panic(err)
	}

	err = m.Do(ctx, tenantID, func(ctx context.Context, db *mongo.Database) error {
		_, err := db.Collection("settings").UpdateByID(ctx, "ui",
			bson.D{{Key: "$set", Value: bson.D{{Key: "theme", Value: "dark"}}}})
		cache.InvalidateCollection(tenantID, "settings")
		return err
	})
	if err != nil {
		panic(err)
	}
}
