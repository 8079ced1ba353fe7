package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The churn throughput phase: tenants with Zipf access read their own
// document by _id, through a Manager capped well below the tenants, and
// through one plain shared client in the same run.
const (
	throughputTenants = 2000
	throughputCap     = 200
	throughputWorkers = 16
	throughputRounds  = 5 // variants take turns, in a rotating order, so that drift and the aftermath of the one before hit each alike
	throughputSeeders = 8
)

type throughputVariant struct {
	name string
	opts []mongotenant.Option // nil: a plain shared client
}

var throughputVariants = []throughputVariant{
	{name: "plain shared client"},
	{name: "Dedicated, recycling on", opts: []mongotenant.Option{mongotenant.WithClientRecycling(true)}},
	{name: "Dedicated, recycling off", opts: []mongotenant.Option{mongotenant.WithClientRecycling(false)}},
	{name: "Grouped(10)", opts: []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Grouped(10))}},
	{name: "Shared", opts: []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared())}},
}

// throughputTarget is where a variant sends a tenant's reads.
type throughputTarget interface {
	find(ctx context.Context, tenant int) error
	stats() mongotenant.Stats // zero for the plain client
	close(ctx context.Context) error
}

func churnThroughput(ctx context.Context, env *Env) ([]Result, error) {
	ids := make([]string, throughputTenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("tp%04d", i)
	}
	raw, err := mongo.Connect(options.Client().ApplyURI(env.URI))
	if err != nil {
		return nil, err
	}
	defer raw.Disconnect(ctx)
	start := time.Now()
	if err := throughputSeed(ctx, raw, ids); err != nil {
		return nil, err
	}
	env.Progress("seeded %d tenant databases in %v", len(ids), time.Since(start).Round(time.Millisecond))

	targets := make([]throughputTarget, len(throughputVariants))
	for i, v := range throughputVariants {
		if v.opts == nil {
			targets[i] = plainTarget{raw, ids}
			continue
		}
		m, err := mongotenant.New(env.URI, append(v.opts, mongotenant.WithMaxClients(throughputCap))...)
		if err != nil {
			return nil, err
		}
		targets[i] = managerTarget{m, ids}
	}
	ops := make([]int64, len(targets))
	maxConns := make([]int, len(targets))
	fails := make([]int64, len(targets))
	elapsed := make([]time.Duration, len(targets))
	round := env.Duration / throughputRounds
	for r := range throughputRounds {
		for k := range targets {
			i := (k + r) % len(targets)
			t := targets[i]
			n, failed, took := throughputRun(ctx, t, round, uint64(r))
			maxConns[i] = max(maxConns[i], t.stats().OpenConnections)
			ops[i] += n
			fails[i] += failed
			elapsed[i] += took
		}
	}
	var results []Result
	base := float64(ops[0]) / elapsed[0].Seconds()
	for i, v := range throughputVariants {
		rate := float64(ops[i]) / elapsed[i].Seconds()
		st := targets[i].stats()
		if err := targets[i].close(ctx); err != nil {
			return nil, err
		}
		r := Result{Scenario: "churn", Variant: "throughput: " + v.name}
		r.Add("throughput", rate, "ops/s").
			Add("vs plain client", rate/base, "×").
			Add("failed", float64(fails[i]), "").
			Add("hits", 100*float64(st.Hits)/float64(max(1, st.Hits+st.Misses)), "%").
			Add("clients created", float64(st.Created), "").
			Add("recycled", float64(st.Recycled), "").
			Add("evicted", float64(st.Evicted), "")
		results = append(results, r)
		env.Progress("%s: %.0f ops/s, %.2f× the plain client, %d failed, %.1f%% hits, %d created, %d recycled, max pooled connections %d",
			v.name, rate, rate/base, fails[i], 100*float64(st.Hits)/float64(max(1, st.Hits+st.Misses)), st.Created, st.Recycled, maxConns[i])
	}
	results[len(results)-1].Notes = append(results[len(results)-1].Notes, fmt.Sprintf(
		"throughput: %d tenants, each with its own database holding one document, read by _id (FindOne, checked) by %d workers, "+
			"tenants drawn Zipf s=%.1f; the Manager's variants are capped at %d clients, pool 10 per client; "+
			"the plain client is one *mongo.Client with the driver's defaults (pool 100). "+
			"The variants took turns, %d rounds of %v each, each round starting with the next variant.",
		throughputTenants, throughputWorkers, churnZipfS, throughputCap, throughputRounds, round))
	return results, nil
}

// throughputSeed gives each tenant a database with the document its reads
// expect.
func throughputSeed(ctx context.Context, raw *mongo.Client, ids []string) error {
	var wg sync.WaitGroup
	errs := make([]error, throughputSeeders)
	for w := range throughputSeeders {
		wg.Go(func() {
			for i := w; i < len(ids); i += throughputSeeders {
				_, err := raw.Database("user_"+ids[i]+"_db").Collection("c").UpdateOne(ctx,
					bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "tenant", Value: i}}}},
					options.UpdateOne().SetUpsert(true))
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// throughputRun runs the workers against t for d and counts operations.
func throughputRun(ctx context.Context, t throughputTarget, d time.Duration, round uint64) (ops, failed int64, took time.Duration) {
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range throughputWorkers {
		wg.Go(func() {
			z := rand.NewZipf(rand.New(rand.NewPCG(churnSeed+round, uint64(w))), churnZipfS, 1, throughputTenants-1)
			for time.Now().Before(deadline) {
				if err := t.find(ctx, int(z.Uint64())); err != nil {
					failN.Add(1)
				} else {
					okN.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return okN.Load(), failN.Load(), time.Since(start)
}

// throughputCheck reads the tenant's document and checks it is the
// tenant's own.
func throughputCheck(ctx context.Context, db *mongo.Database, tenant int) error {
	var doc struct {
		Tenant int `bson:"tenant"`
	}
	if err := db.Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil {
		return err
	}
	if doc.Tenant != tenant {
		return fmt.Errorf("tenant %d read tenant %d's document", tenant, doc.Tenant)
	}
	return nil
}

type plainTarget struct {
	c   *mongo.Client
	ids []string
}

func (p plainTarget) find(ctx context.Context, tenant int) error {
	return throughputCheck(ctx, p.c.Database("user_"+p.ids[tenant]+"_db"), tenant)
}

func (plainTarget) stats() mongotenant.Stats    { return mongotenant.Stats{Created: 1} }
func (plainTarget) close(context.Context) error { return nil }

type managerTarget struct {
	m   *mongotenant.Manager
	ids []string
}

func (t managerTarget) find(ctx context.Context, tenant int) error {
	return t.m.Do(ctx, t.ids[tenant], func(ctx context.Context, db *mongo.Database) error {
		return throughputCheck(ctx, db, tenant)
	})
}

func (t managerTarget) stats() mongotenant.Stats { return t.m.Stats() }

func (t managerTarget) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, churnCloseTTL)
	defer cancel()
	return t.m.Close(ctx)
}
