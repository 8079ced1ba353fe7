package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func init() {
	register(scenario{
		name:  "coldstart",
		about: "first-request latency of new tenants, and 1,000 goroutines arriving at once for one new tenant",
		run:   runColdStart,
	})
}

func runColdStart(ctx context.Context, env *Env) ([]Result, error) {
	m, err := mongotenant.New(env.URI, mongotenant.WithMaxClients(0))
	if err != nil {
		return nil, err
	}
	defer m.Close(ctx)
	find := func(ctx context.Context, db *mongo.Database) error {
		err := db.Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Err()
		if err == mongo.ErrNoDocuments {
			return nil
		}
		return err
	}

	// New tenants one after another: the first request pays for the client
	// (Connect, dial, handshake); the second is the cached path.
	const tenants = 50
	var first, second Latencies
	for i := range tenants {
		id := fmt.Sprintf("cold%03d", i)
		for _, into := range []*Latencies{&first, &second} {
			start := time.Now()
			if err := m.Do(ctx, id, find); err != nil {
				return nil, err
			}
			*into = append(*into, time.Since(start))
		}
	}
	seq := Result{Scenario: "coldstart", Variant: fmt.Sprintf("%d new tenants, one at a time", tenants)}
	seq.Add("first p50", ms(first.Percentile(50)), "ms").
		Add("first p99", ms(first.Percentile(99)), "ms").
		Add("second p50", ms(second.Percentile(50)), "ms").
		Add("second p99", ms(second.Percentile(99)), "ms")
	env.Progress("first request p50 %v, second %v", first.Percentile(50), second.Percentile(50))

	// A crowd: 1,000 goroutines released at once on one new tenant.
	const crowd = 1000
	before := m.Stats().Created
	lat := make([]Latencies, crowd)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	errs := make(chan error, crowd)
	for g := range crowd {
		wg.Go(func() {
			<-gate
			start := time.Now()
			if err := m.Do(ctx, "crowd", find); err != nil {
				errs <- err
				return
			}
			lat[g] = Latencies{time.Since(start)}
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	total := time.Since(start)
	close(errs)
	failed := len(errs)
	var all Latencies
	all.Merge(lat...)
	created := m.Stats().Created - before
	burst := Result{Scenario: "coldstart", Variant: fmt.Sprintf("%d goroutines, one new tenant", crowd)}
	burst.Add("p50", ms(all.Percentile(50)), "ms").
		Add("p99", ms(all.Percentile(99)), "ms").
		Add("max", ms(all.Percentile(100)), "ms").
		Add("total", ms(total), "ms").
		Add("clients created", float64(created), "").
		Add("failed", float64(failed), "")
	env.Progress("crowd: %d clients created, p99 %v, %d failed", created, all.Percentile(99), failed)
	if failed > 0 {
		return nil, fmt.Errorf("%d of %d crowd operations failed: %w", failed, crowd, <-errs)
	}
	return []Result{seq, burst}, nil
}
