package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Helpers shared by the strategies and noisy scenarios.

const (
	// loadSetupTimeout bounds a scenario's seeding of its databases.
	loadSetupTimeout = 2 * time.Minute

	// loadCloseTimeout bounds Manager.Close and the Disconnect of a plain
	// client at the end of a variant.
	loadCloseTimeout = 30 * time.Second

	// loadTinyColl is the collection of point reads: a few documents, so the
	// server's work per read is negligible.
	loadTinyColl = "c"
)

// loadTenantDB is the database the Manager's default naming gives tenantID.
func loadTenantDB(tenantID string) string { return "user_" + tenantID + "_db" }

// loadConnectDirect returns a plain client on uri, for seeding, with the
// Manager's client defaults.
func loadConnectDirect(uri string) (*mongo.Client, error) {
	return mongo.Connect(options.Client().ApplyURI(uri).
		SetServerMonitoringMode(options.ServerMonitoringModePoll).
		SetMaxPoolSize(mongotenant.DefaultPoolSize).
		SetMaxConnIdleTime(mongotenant.DefaultConnMaxIdleTime))
}

// loadSeedTiny replaces collection loadTinyColl of each tenant's database
// with docs documents {_id: 0..docs-1, v: i}, on 4 goroutines.
func loadSeedTiny(ctx context.Context, c *mongo.Client, tenants []string, docs int) error {
	ctx, cancel := context.WithTimeout(ctx, loadSetupTimeout)
	defer cancel()
	work := make(chan string)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for id := range work {
				coll := c.Database(loadTenantDB(id)).Collection(loadTinyColl)
				if err := coll.Drop(ctx); err != nil {
					errs <- err
					return
				}
				batch := make([]any, docs)
				for i := range batch {
					batch[i] = bson.D{{Key: "_id", Value: i}, {Key: "v", Value: i}}
				}
				if _, err := coll.InsertMany(ctx, batch); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for _, id := range tenants {
		select {
		case work <- id:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	if err != nil {
		return fmt.Errorf("seeding tenant databases: %w", err)
	}
	return nil
}

// loadFindTiny reads one document of loadTinyColl by _id; a missing
// document is not an error.
func loadFindTiny(ctx context.Context, db *mongo.Database, id int) error {
	err := db.Collection(loadTinyColl).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	return err
}

// loadCloseManager closes m within loadCloseTimeout.
func loadCloseManager(m *mongotenant.Manager) error {
	ctx, cancel := context.WithTimeout(context.Background(), loadCloseTimeout)
	defer cancel()
	return m.Close(ctx)
}

// loadSettledGoroutines waits up to 3 s for the goroutine count to come back
// to within 10 of baseline (the driver's and proxy's goroutines end shortly
// after Close returns) and returns the count.
func loadSettledGoroutines(baseline int) int {
	deadline := time.Now().Add(3 * time.Second)
	n := runtime.NumGoroutine()
	for n > baseline+10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// loadFirstError keeps the first error.
func loadFirstError(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// loadDisconnect disconnects a plain client within loadCloseTimeout.
func loadDisconnect(c *mongo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), loadCloseTimeout)
	defer cancel()
	err := c.Disconnect(ctx)
	if errors.Is(err, mongo.ErrClientDisconnected) {
		return nil
	}
	return err
}
