package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func init() {
	register(scenario{
		name:  "overhead",
		about: "FindOne by _id through the Manager against a plain client on the same server, interleaved",
		run:   runOverhead,
	})
}

// overheadDocs is small on purpose: the embedded server scans for _id, and a
// fast operation makes the Manager's share of each one as large as it gets.
const overheadDocs = 100

func runOverhead(ctx context.Context, env *Env) ([]Result, error) {
	m, err := mongotenant.New(env.URI)
	if err != nil {
		return nil, err
	}
	defer m.Close(ctx)
	// The plain client gets the Manager's client defaults, so the comparison
	// is the Manager's own cost, not a different configuration.
	raw, err := mongo.Connect(options.Client().ApplyURI(env.URI).
		SetServerMonitoringMode(options.ServerMonitoringModePoll).
		SetMaxPoolSize(mongotenant.DefaultPoolSize).
		SetMaxConnIdleTime(mongotenant.DefaultConnMaxIdleTime))
	if err != nil {
		return nil, err
	}
	defer raw.Disconnect(ctx)

	coll := raw.Database("user_overhead_db").Collection("docs")
	if err := coll.Drop(ctx); err != nil {
		return nil, err
	}
	docs := make([]any, overheadDocs)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "v", Value: i}}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		return nil, err
	}

	viaManager := func(ctx context.Context, i int) error {
		return m.Do(ctx, "overhead", func(ctx context.Context, db *mongo.Database) error {
			return db.Collection("docs").FindOne(ctx, bson.D{{Key: "_id", Value: i % overheadDocs}}).Err()
		})
	}
	viaRaw := func(ctx context.Context, i int) error {
		return coll.FindOne(ctx, bson.D{{Key: "_id", Value: i % overheadDocs}}).Err()
	}
	var results []Result
	for _, workers := range []int{1, 8} {
		// Warm both paths: connections, the Manager's client.
		for i := range 200 {
			if err := viaManager(ctx, i); err != nil {
				return nil, err
			}
			if err := viaRaw(ctx, i); err != nil {
				return nil, err
			}
		}
		mgr, plain, rounds, err := interleave(ctx, env, workers, viaManager, viaRaw)
		if err != nil {
			return nil, err
		}
		r := Result{Scenario: "overhead", Variant: fmt.Sprintf("%d goroutine(s)", workers)}
		r.Add("manager", float64(mgr)/float64(time.Microsecond), "µs/op").
			Add("plain client", float64(plain)/float64(time.Microsecond), "µs/op").
			Add("ratio", float64(mgr)/float64(plain), "x").
			Add("rounds", float64(rounds), "")
		results = append(results, r)
		env.Progress("%d goroutine(s): manager %v/op, plain %v/op, ratio %.3f over %d rounds", workers, mgr, plain, float64(mgr)/float64(plain), rounds)
	}
	return results, nil
}

// interleave alternates batches of both paths, switching which goes first
// each round so drift in the server or machine falls on both alike, until
// the time budget is spent. It returns the mean time per operation of each.
func interleave(ctx context.Context, env *Env, workers int, a, b func(context.Context, int) error) (meanA, meanB time.Duration, rounds int, err error) {
	const batch = 50
	var totalA, totalB time.Duration
	var opsA, opsB int
	deadline := time.Now().Add(env.Duration)
	for rounds = 0; time.Now().Before(deadline); rounds++ {
		first, second := a, b
		if rounds%2 == 1 {
			first, second = b, a
		}
		d1, err := timeBatch(ctx, workers, batch, first)
		if err != nil {
			return 0, 0, rounds, err
		}
		d2, err := timeBatch(ctx, workers, batch, second)
		if err != nil {
			return 0, 0, rounds, err
		}
		if rounds%2 == 1 {
			d1, d2 = d2, d1
		}
		totalA += d1
		totalB += d2
		opsA += batch
		opsB += batch
	}
	return totalA / time.Duration(opsA), totalB / time.Duration(opsB), rounds, nil
}

// timeBatch runs n operations on workers goroutines and returns the wall time.
func timeBatch(ctx context.Context, workers, n int, op func(context.Context, int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := op(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	return took, <-errs
}
