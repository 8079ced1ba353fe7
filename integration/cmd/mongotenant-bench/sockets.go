package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func init() {
	register(scenario{
		name:  "sockets",
		about: "1,000 active tenants, each reading twice from 32 goroutines through a proxy that counts server sockets: shared with fair sharing against dedicated clients",
		run:   runSockets,
	})
}

const (
	socketsTenants    = 1000
	socketsRounds     = 2
	socketsGoroutines = 32
	socketsTimeout    = 3 * time.Minute
)

func runSockets(ctx context.Context, env *Env) ([]Result, error) {
	variants := []struct {
		name string
		opts []mongotenant.Option
	}{
		{"shared+fair, pool 10", []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(10), mongotenant.WithFairSharing(0)}},
		{"dedicated, pool 10, no cap", []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Dedicated()), mongotenant.WithPoolSize(10), mongotenant.WithMaxClients(0)}},
	}
	var results []Result
	for _, v := range variants {
		r, err := runSocketsVariant(ctx, env, v.name, v.opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		results = append(results, r)
	}
	if shared, dedicated := results[0].value("server sockets"), results[1].value("server sockets"); dedicated > 0 {
		results[0].Add("sockets against dedicated", shared/dedicated, "x")
	}
	results[len(results)-1].Notes = []string{
		fmt.Sprintf("%d tenants (empty databases), each read %d times by FindOne, spread over %d goroutines, through a proxy with no delay. Server sockets are the connections open through the proxy once every read is done, monitoring included; the clients are all still cached.",
			socketsTenants, socketsRounds, socketsGoroutines),
	}
	return results, nil
}

func runSocketsVariant(ctx context.Context, env *Env, name string, opts []mongotenant.Option) (Result, error) {
	proxy, err := mongotest.NewProxy(env.URI)
	if err != nil {
		return Result{}, err
	}
	defer proxy.Close()
	m, err := mongotenant.New(proxy.URI(), opts...)
	if err != nil {
		return Result{}, err
	}
	defer m.Close(ctx)

	ctx, cancel := context.WithTimeout(ctx, socketsTimeout)
	defer cancel()
	var next, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range socketsGoroutines {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= socketsTenants*socketsRounds || ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("sock%04d", i%socketsTenants)
				err := m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error { return loadFindTiny(ctx, db, 0) })
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					firstErr = loadFirstError(firstErr, err)
					errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	sockets, s := proxy.Open(), m.Stats()
	env.Progress("%s: %d reads in %v, %d failed; %d clients, %d server sockets", name, socketsTenants*socketsRounds, took.Round(time.Millisecond), failed.Load(), s.Clients, sockets)
	if firstErr != nil {
		env.Progress("%s: first failure: %v", name, firstErr)
	}
	r := Result{Scenario: "sockets", Variant: name}
	r.Add("active tenants", socketsTenants, "").
		Add("clients", float64(s.Clients), "").
		Add("server sockets", float64(sockets), "").
		Add("reads/s", float64(socketsTenants*socketsRounds)/took.Seconds(), "").
		Add("failed", float64(failed.Load()), "")
	if err := loadCloseManager(m); err != nil {
		return Result{}, err
	}
	return r, proxy.Close()
}

// value returns the metric named name, or 0.
func (r *Result) value(name string) float64 {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	return 0
}
