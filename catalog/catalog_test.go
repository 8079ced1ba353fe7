package catalog_test

import (
	"testing"
	"time"

	"github.com/mongotenant/mongotenant/catalog"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNewChecksItsOptions: a nil collection and a negative cache of
// negative size or TTL are refused; New does no I/O.
func TestNewChecksItsOptions(t *testing.T) {
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(t.Context())
	coll := mc.Database("platform").Collection("tenants")
	if _, err := catalog.New(nil); err == nil {
		t.Error("nil collection accepted")
	}
	if _, err := catalog.New(coll, catalog.WithNegativeCache(-1, time.Second)); err == nil {
		t.Error("negative size accepted")
	}
	if _, err := catalog.New(coll, catalog.WithNegativeCache(10, -time.Second)); err == nil {
		t.Error("negative TTL accepted")
	}
	if _, err := catalog.New(coll, catalog.WithNegativeCache(0, 0)); err != nil {
		t.Errorf("no negative cache: %v", err)
	}
}
