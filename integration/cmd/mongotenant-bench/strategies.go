package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func init() {
	register(scenario{
		name:  "strategies",
		about: "200 tenants send one FindOne each at the same moment through a 50 ms proxy: shared, grouped and dedicated clients, cold and warm, next to the reference design's wave arithmetic",
		run:   runStrategies,
	})
}

const (
	// strategiesTenants is N, the tenants released at once. The reference
	// design's example has 1,000 users; 200 keeps the dedicated variant (200
	// clients, 400 sockets, two proxy goroutines per socket) moderate on a
	// 2-core machine whose CPU the in-process server shares.
	strategiesTenants = 200

	// strategiesLatency is L, the proxy's delay on everything the server
	// sends, handshakes and heartbeats included: the reference design's
	// 1-second query, scaled down so that one wave is L.
	strategiesLatency = 50 * time.Millisecond
)

// A strategyVariant is one configuration of the Manager, and the number of
// operations the reference design assumes it runs at once.
type strategyVariant struct {
	name        string
	concurrency int
	opts        []mongotenant.Option
}

func runStrategies(ctx context.Context, env *Env) ([]Result, error) {
	ids := make([]string, strategiesTenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("strat%03d", i)
	}
	// Seed every tenant's tiny collection directly, without the proxy.
	direct, err := loadConnectDirect(env.URI)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = loadSeedTiny(ctx, direct, ids, 1)
	if derr := loadDisconnect(direct); err == nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	env.Progress("seeded %d tenant databases in %v", len(ids), time.Since(start).Round(time.Millisecond))

	variants := []strategyVariant{
		{"shared, pool 100", 100, []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(100)}},
		{"grouped(10), pool 50", 10 * 50, []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Grouped(10)), mongotenant.WithPoolSize(50)}},
		{"dedicated, pool 10", strategiesTenants, []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Dedicated()), mongotenant.WithPoolSize(10), mongotenant.WithMaxClients(0)}},
		{"shared, pool 100, max leases 2", 100, []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(100), mongotenant.WithMaxLeases(2)}},
		// Not in the reference design: the driver opens at most 2 connections
		// of a pool at a time (maxConnecting), which the wave arithmetic
		// leaves out. This variant lets the shared pool open 100 at once.
		{"shared, pool 100, maxConnecting 100", 100, []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(100),
			mongotenant.WithClientOptions(options.Client().SetMaxConnecting(100))}},
	}
	baseline := runtime.NumGoroutine()
	var results []Result
	for _, v := range variants {
		rs, err := runStrategyVariant(ctx, env, v, ids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		results = append(results, rs...)
		env.Progress("%s: closed; goroutines %d (baseline %d)", v.name, loadSettledGoroutines(baseline), baseline)
	}
	results[len(results)-1].Notes = strategiesNotes()
	return results, nil
}

// strategyPhases are the waves of each variant, in order on one Manager:
// the cold wave creates the clients, the warm one reuses them, and the last
// repeats the warm one without the proxy's delay, to show how much of the
// wall time is the in-process server's and the load generator's CPU.
var strategyPhases = []struct {
	name    string
	latency time.Duration
}{
	{"cold", strategiesLatency},
	{"warm", strategiesLatency},
	{"warm, no latency", 0},
}

// runStrategyVariant runs the waves of v on a fresh proxy and Manager, and
// closes both. Each wave is bounded by half the phase duration.
func runStrategyVariant(ctx context.Context, env *Env, v strategyVariant, ids []string) ([]Result, error) {
	proxy, err := mongotest.NewProxy(env.URI)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	m, err := mongotenant.New(proxy.URI(), v.opts...)
	if err != nil {
		return nil, err
	}
	defer m.Close(ctx) // on an early return; a second Close does nothing

	waves := (len(ids) + v.concurrency - 1) / v.concurrency
	var results []Result
	for _, phase := range strategyPhases {
		proxy.SetLatency(phase.latency)
		predicted := time.Duration(waves) * phase.latency
		openedBefore, s := proxy.Opened(), m.Stats()
		lat, total, failed, firstErr := strategiesWave(ctx, m, ids, env.Duration/2)
		if failed == len(ids) {
			return nil, fmt.Errorf("%s wave: all %d operations failed: %w", phase.name, failed, firstErr)
		}
		after := m.Stats()
		r := Result{Scenario: "strategies", Variant: v.name + ", " + phase.name}
		r.Add("predicted", ms(predicted), "ms").
			Add("total", ms(total), "ms").
			Add("p50", ms(lat.Percentile(50)), "ms").
			Add("p95", ms(lat.Percentile(95)), "ms").
			Add("p99", ms(lat.Percentile(99)), "ms").
			Add("sockets opened", float64(proxy.Opened()-openedBefore), "").
			Add("clients created", float64(after.Created-s.Created), "").
			Add("pooled conns before", float64(s.OpenConnections), "").
			Add("failed", float64(failed), "")
		results = append(results, r)
		env.Progress("%s, %s: total %v (predicted %v), p99 %v, %d sockets opened, %d clients created, %d failed",
			v.name, phase.name, total.Round(time.Millisecond), predicted, lat.Percentile(99).Round(time.Millisecond),
			proxy.Opened()-openedBefore, after.Created-s.Created, failed)
		if failed > 0 {
			env.Progress("%s, %s: first failure: %v", v.name, phase.name, firstErr)
		}
	}
	if err := loadCloseManager(m); err != nil {
		return nil, err
	}
	return results, proxy.Close()
}

// strategiesWave starts one goroutine per tenant, releases them together and
// has each run one FindOne through m, all within bound. It returns the
// latency of each successful operation, measured from the release, and the
// wall time until the last one ended.
func strategiesWave(ctx context.Context, m *mongotenant.Manager, ids []string, bound time.Duration) (lat Latencies, total time.Duration, failed int, firstErr error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	took := make([]time.Duration, len(ids))
	errs := make([]error, len(ids))
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			<-gate
			start := time.Now()
			errs[i] = m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error {
				return loadFindTiny(ctx, db, 0)
			})
			took[i] = time.Since(start)
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	total = time.Since(start)
	for i, err := range errs {
		if err != nil {
			failed++
			firstErr = loadFirstError(firstErr, err)
			continue
		}
		lat = append(lat, took[i])
	}
	return lat, total, failed, firstErr
}

func strategiesNotes() []string {
	return []string{
		fmt.Sprintf("%d tenants, one FindOne each on a one-document collection, released together by a gate. Every byte the server sends is delayed %v by a mongotest.Proxy (a fresh one per variant), so every round trip costs at least %v, handshakes and heartbeats included. Cold: a fresh Manager, each tenant's first request. Warm: a second wave on the same Manager. Warm, no latency: the warm wave again with the delay set to 0, the CPU floor of these %d operations here. Each wave is bounded by half of -duration; operations still running then count as failed.",
			strategiesTenants, strategiesLatency, strategiesLatency, strategiesTenants),
		"predicted = ceil(N / concurrency) × L, the reference design's wave arithmetic (concurrency: the pool for shared, groups × pool for grouped, N for dedicated). It leaves out the monitor's first heartbeat, dialing, handshakes and CPU. Sockets opened counts every connection through the proxy, monitoring ones included; pooled conns before is Stats().OpenConnections at the start of the wave.",
		"The driver opens at most maxConnecting connections per pool at a time (default 2), each costing a handshake round trip, so a burst on a shared pool of 100 grows it by about 2 connections per L and reuses the ones it has meanwhile: the pool does not reach 100 in these waves. The maxConnecting 100 variant, not one of the reference design's, sets it through WithClientOptions to show the arithmetic with a pool that can open connections in parallel.",
		"With one operation per tenant, max leases 2 never engages: that row measures the bulkhead's cost, not its effect.",
		fmt.Sprintf("The server (embedded FerretDB on SQLite) runs in this process, sharing %d CPUs with the load generator and the proxy (two goroutines per socket): the no-latency rows show how much of each total is CPU rather than round trips.", runtime.NumCPU()),
	}
}
