package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func init() {
	register(scenario{
		name:  "noisy",
		about: "8 light tenants' point reads, quiet and while one tenant floods from 48 goroutines: with reads the proxy delays 20 ms (server time without CPU), and with unindexed scans (CPU); plain shared, shared with a bulkhead, shared with an adaptive limit, shared and grouped with fair sharing, dedicated",
		run:   runNoisy,
	})
}

const (
	// noisyLightTenants is K: light tenants, one goroutine each, looping
	// FindOne by _id on a collection of noisyTinyDocs documents.
	noisyLightTenants = 8
	noisyTinyDocs     = 10

	// noisyFloodGoroutines goroutines of the noisy tenant loop its
	// expensive operation. In the CPU-bound variant it is an unindexed count
	// over noisyDocs documents that matches none: the embedded server
	// decodes every document in Go (about 50 µs each here), so 1,000
	// documents cost tens of ms per scan. In the delay variant it is a point
	// read whose reply the proxy holds noisyDelay: server time that costs
	// no CPU, so that what remains is the library's doing.
	noisyFloodGoroutines = 48
	noisyDocs            = 1000
	noisyDelay           = 20 * time.Millisecond

	// noisyLatency is the proxy's latency in the delay variant: every
	// round trip takes at least this, as to a server nearby.
	noisyLatency = time.Millisecond

	// noisyPool is every client's pool size, and so the fair capacity.
	noisyPool = 10

	// noisyAdaptiveTarget is the adaptive limit's target: above a light
	// read's quiet p99, below the noisy tenant's operation.
	noisyAdaptiveTarget = 10 * time.Millisecond

	// A flood goroutine waits noisyAcquireWait for a lease; on ErrTenantBusy
	// it counts it, sleeps noisyBackoff and tries again.
	noisyAcquireWait = 10 * time.Millisecond
	noisyBackoff     = 5 * time.Millisecond

	// noisyRamp lets the flood take hold before the light tenants' window.
	noisyRamp = 250 * time.Millisecond

	// noisyOpTimeout bounds one operation; noisyMaxOps bounds each
	// goroutine's loop in a phase, besides the phase's time.
	noisyOpTimeout = 10 * time.Second
	noisyMaxOps    = 1_000_000

	noisyTenant = "noisy"
	noisyColl   = "big"
)

// A noisyVariant is a strategy and the noisy tenant's kind of load.
type noisyVariant struct {
	name string
	cpu  bool // the noisy tenant scans (CPU-bound); else its reads are delayed by the proxy
	opts []mongotenant.Option
}

func runNoisy(ctx context.Context, env *Env) ([]Result, error) {
	light := make([]string, noisyLightTenants)
	for i := range light {
		light[i] = fmt.Sprintf("light%02d", i)
	}
	if err := seedNoisy(ctx, env, light); err != nil {
		return nil, err
	}

	pool := mongotenant.WithPoolSize(noisyPool)
	strategies := []struct {
		name string
		opts []mongotenant.Option
	}{
		{"shared", []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared()), pool}},
		{"shared+bulkhead 2", []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), pool, mongotenant.WithMaxLeases(2)}},
		{fmt.Sprintf("shared+adaptive %v", noisyAdaptiveTarget), []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), pool, mongotenant.WithAdaptiveLimit(noisyAdaptiveTarget)}},
		{"shared+fair", []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Shared()), pool, mongotenant.WithFairSharing(0)}},
		{"grouped(3)+fair", []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Grouped(3)), pool, mongotenant.WithFairSharing(0)}},
		{"dedicated", []mongotenant.Option{
			mongotenant.WithStrategy(mongotenant.Dedicated()), pool, mongotenant.WithMaxClients(0)}},
	}
	var variants []noisyVariant
	for _, cpu := range []bool{false, true} {
		load := fmt.Sprintf("delay %v", noisyDelay)
		if cpu {
			load = "CPU"
		}
		for _, s := range strategies {
			variants = append(variants, noisyVariant{load + ", " + s.name, cpu, s.opts})
		}
	}

	baseline := runtime.NumGoroutine()
	var results []Result
	for _, v := range variants {
		r, err := runNoisyVariant(ctx, env, v, light)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		results = append(results, r)
		env.Progress("%s: closed; goroutines %d (baseline %d)", v.name, loadSettledGoroutines(baseline), baseline)
	}
	results[len(results)-1].Notes = noisyNotes(env)
	return results, nil
}

// seedNoisy gives each light tenant its tiny collection and the noisy
// tenant its large one, directly on the server.
func seedNoisy(ctx context.Context, env *Env, light []string) error {
	c, err := loadConnectDirect(env.URI)
	if err != nil {
		return err
	}
	start := time.Now()
	err = loadSeedTiny(ctx, c, append(light[:len(light):len(light)], noisyTenant), noisyTinyDocs)
	if err == nil {
		err = noisySeedLarge(ctx, c.Database(loadTenantDB(noisyTenant)).Collection(noisyColl))
	}
	if derr := loadDisconnect(c); err == nil {
		err = derr
	}
	if err == nil {
		env.Progress("seeded %d light tenants and %d documents for the noisy one in %v", len(light), noisyDocs, time.Since(start).Round(time.Millisecond))
	}
	return err
}

func noisySeedLarge(ctx context.Context, coll *mongo.Collection) error {
	ctx, cancel := context.WithTimeout(ctx, loadSetupTimeout)
	defer cancel()
	if err := coll.Drop(ctx); err != nil {
		return err
	}
	const batch = 500
	docs := make([]any, 0, batch)
	for i := range noisyDocs {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: i}, {Key: "s", Value: fmt.Sprintf("document %06d", i)}})
		if len(docs) == batch || i == noisyDocs-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				return fmt.Errorf("seeding the noisy tenant: %w", err)
			}
			docs = docs[:0]
		}
	}
	return nil
}

// noisySentAtKey marks an operation's ctx with a *time.Time that
// noisySendMonitor sets when the command goes to the server.
type noisySentAtKey struct{}

// noisySendMonitor records when a marked operation's command is sent: after
// its lease, server selection and the pool check-out. The driver calls
// Started on the operation's own goroutine.
func noisySendMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(ctx context.Context, _ *event.CommandStartedEvent) {
		if at, ok := ctx.Value(noisySentAtKey{}).(*time.Time); ok {
			*at = time.Now()
		}
	}}
}

// noisyLightLoad is what the light tenants measured in one phase.
type noisyLightLoad struct {
	lat      Latencies // Do, end to end
	wait     Latencies // from Do to the command being sent
	failed   int
	firstErr error
}

// noisyRunLight runs one goroutine per light tenant, each looping FindOne by
// _id for d (and at most noisyMaxOps times).
func noisyRunLight(ctx context.Context, m *mongotenant.Manager, light []string, d time.Duration) noisyLightLoad {
	loads := make([]noisyLightLoad, len(light))
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g, id := range light {
		wg.Go(func() {
			l := &loads[g]
			for n := 0; n < noisyMaxOps && time.Now().Before(deadline); n++ {
				var sent time.Time
				opCtx, cancel := context.WithTimeout(context.WithValue(ctx, noisySentAtKey{}, &sent), noisyOpTimeout)
				start := time.Now()
				err := m.Do(opCtx, id, func(ctx context.Context, db *mongo.Database) error {
					return loadFindTiny(ctx, db, n%noisyTinyDocs)
				})
				took := time.Since(start)
				cancel()
				if err != nil {
					l.failed++
					l.firstErr = loadFirstError(l.firstErr, err)
					continue
				}
				l.lat = append(l.lat, took)
				if !sent.IsZero() {
					l.wait = append(l.wait, sent.Sub(start))
				}
			}
		})
	}
	wg.Wait()
	var all noisyLightLoad
	for _, l := range loads {
		all.lat.Merge(l.lat)
		all.wait.Merge(l.wait)
		all.failed += l.failed
		all.firstErr = loadFirstError(all.firstErr, l.firstErr)
	}
	return all
}

// noisyFlood is the noisy tenant's load: noisyFloodGoroutines goroutines
// looping the expensive count until stopped.
type noisyFlood struct {
	completed, busy, failed atomic.Int64
	errMu                   sync.Mutex
	firstErr                error
	stop                    chan struct{}
	wg                      sync.WaitGroup
}

// noisyOp is the noisy tenant's expensive operation in variant v.
func noisyOp(v noisyVariant) func(ctx context.Context, db *mongo.Database) error {
	if v.cpu {
		return func(ctx context.Context, db *mongo.Database) error {
			_, err := db.Collection(noisyColl).CountDocuments(ctx, bson.D{{Key: "v", Value: -1}})
			return err
		}
	}
	return func(ctx context.Context, db *mongo.Database) error { return loadFindTiny(ctx, db, 0) }
}

// noisyStartFlood starts the flood of op; it runs until Stop or the deadline.
func noisyStartFlood(ctx context.Context, m *mongotenant.Manager, op func(context.Context, *mongo.Database) error, deadline time.Time) *noisyFlood {
	f := &noisyFlood{stop: make(chan struct{})}
	pause := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-f.stop:
		}
	}
	for range noisyFloodGoroutines {
		f.wg.Go(func() {
			for n := 0; n < noisyMaxOps && time.Now().Before(deadline); n++ {
				select {
				case <-f.stop:
					return
				default:
				}
				actx, cancel := context.WithTimeout(ctx, noisyAcquireWait)
				lease, err := m.Acquire(actx, noisyTenant)
				cancel()
				if errors.Is(err, mongotenant.ErrTenantBusy) {
					f.busy.Add(1)
					pause(noisyBackoff)
					continue
				}
				if err == nil {
					opCtx, cancel := context.WithTimeout(ctx, noisyOpTimeout)
					err = op(opCtx, lease.Database())
					cancel()
					lease.Release()
				}
				if err != nil {
					f.failed.Add(1)
					f.errMu.Lock()
					f.firstErr = loadFirstError(f.firstErr, err)
					f.errMu.Unlock()
					pause(noisyBackoff)
					continue
				}
				f.completed.Add(1)
			}
		})
	}
	return f
}

// Stop ends the flood and waits for its operations in flight.
func (f *noisyFlood) Stop() {
	close(f.stop)
	f.wg.Wait()
}

// runNoisyVariant measures, on one Manager and proxy, the noisy tenant
// alone, the light tenants quiet, then the light tenants next to the
// noisy one, and closes both. Each phase lasts half the phase duration.
func runNoisyVariant(ctx context.Context, env *Env, v noisyVariant, light []string) (Result, error) {
	proxy, err := mongotest.NewProxy(env.URI)
	if err != nil {
		return Result{}, err
	}
	defer proxy.Close() // on an early return; a second Close does nothing
	if !v.cpu {
		proxy.SetLatency(noisyLatency)
		proxy.SetDatabaseDelay(loadTenantDB(noisyTenant), noisyDelay)
	}
	opts := append(v.opts[:len(v.opts):len(v.opts)],
		mongotenant.WithClientOptions(options.Client().SetMonitor(noisySendMonitor())))
	m, err := mongotenant.New(proxy.URI(), opts...)
	if err != nil {
		return Result{}, err
	}
	defer m.Close(ctx) // on an early return; a second Close does nothing
	op := noisyOp(v)

	// Warm up: every tenant's client and a few connections, and the noisy
	// operation's cost with nothing else running.
	warm, cancel := context.WithTimeout(ctx, noisyOpTimeout)
	defer cancel()
	for _, id := range light {
		for i := range 20 {
			if err := m.Do(warm, id, func(ctx context.Context, db *mongo.Database) error { return loadFindTiny(ctx, db, i%noisyTinyDocs) }); err != nil {
				return Result{}, err
			}
		}
	}
	var alone Latencies
	for range 5 {
		start := time.Now()
		if err := m.Do(warm, noisyTenant, op); err != nil {
			return Result{}, err
		}
		alone = append(alone, time.Since(start))
	}

	phase := env.Duration / 2
	lone := noisyStartFlood(ctx, m, op, time.Now().Add(phase))
	lone.wg.Wait()
	loneRate := float64(lone.completed.Load()) / phase.Seconds()
	env.Progress("%s, noisy alone: %.0f ops/s; %d busy, %d failed", v.name, loneRate, lone.busy.Load(), lone.failed.Load())

	quiet := noisyRunLight(ctx, m, light, phase)
	if len(quiet.lat) == 0 {
		return Result{}, fmt.Errorf("quiet phase: every light operation failed: %w", quiet.firstErr)
	}
	env.Progress("%s, quiet: light p50 %v, p99 %v over %d ops", v.name, quiet.lat.Percentile(50), quiet.lat.Percentile(99), len(quiet.lat))

	floodStart := time.Now()
	f := noisyStartFlood(ctx, m, op, floodStart.Add(noisyRamp+phase))
	time.Sleep(noisyRamp)
	loud := noisyRunLight(ctx, m, light, phase)
	sockets := proxy.Open()
	f.Stop()
	floodRate := float64(f.completed.Load()) / time.Since(floodStart).Seconds()
	if len(loud.lat) == 0 {
		return Result{}, fmt.Errorf("noisy phase: every light operation failed: %w", loud.firstErr)
	}
	env.Progress("%s, noisy: light p50 %v, p99 %v over %d ops; noisy %.0f ops/s, %d busy, %d failed; %d sockets",
		v.name, loud.lat.Percentile(50), loud.lat.Percentile(99), len(loud.lat), floodRate, f.busy.Load(), f.failed.Load(), sockets)
	for _, e := range []error{lone.firstErr, f.firstErr} {
		if e != nil {
			env.Progress("%s: first noisy failure: %v", v.name, e)
		}
	}
	if err := loadFirstError(quiet.firstErr, loud.firstErr); err != nil {
		env.Progress("%s: first light failure: %v", v.name, err)
	}

	ratio := func(a, b time.Duration) float64 {
		if b <= 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	r := Result{Scenario: "noisy", Variant: v.name}
	r.Add("noisy op alone p50", ms(alone.Percentile(50)), "ms").
		Add("quiet p50", ms(quiet.lat.Percentile(50)), "ms").
		Add("noisy p50", ms(loud.lat.Percentile(50)), "ms").
		Add("p50 ratio", ratio(loud.lat.Percentile(50), quiet.lat.Percentile(50)), "x").
		Add("quiet p99", ms(quiet.lat.Percentile(99)), "ms").
		Add("noisy p99", ms(loud.lat.Percentile(99)), "ms").
		Add("p99 ratio", ratio(loud.lat.Percentile(99), quiet.lat.Percentile(99)), "x").
		Add("quiet pre-send p99", ms(quiet.wait.Percentile(99)), "ms").
		Add("noisy pre-send p99", ms(loud.wait.Percentile(99)), "ms").
		Add("light ops quiet", float64(len(quiet.lat)), "").
		Add("light ops noisy", float64(len(loud.lat)), "").
		Add("noisy alone ops/s", loneRate, "").
		Add("noisy ops/s", floodRate, "").
		Add("noisy busy", float64(lone.busy.Load()+f.busy.Load()), "").
		Add("server sockets", float64(sockets), "").
		Add("failed", float64(quiet.failed+loud.failed+int(lone.failed.Load()+f.failed.Load())), "")

	if err := loadCloseManager(m); err != nil {
		return Result{}, err
	}
	if err := proxy.Close(); err != nil {
		return Result{}, err
	}
	return r, nil
}

func noisyNotes(env *Env) []string {
	return []string{
		fmt.Sprintf("Light load: %d tenants, one goroutine each, looping FindOne by _id on %d documents, first for %v alone (quiet), then for %v while the noisy tenant's %d goroutines loop their operation (the flood starts %v earlier and stops with the light window). Before both, the noisy tenant floods alone for %v (noisy alone ops/s); noisy op alone p50 is 5 of its operations one at a time. Pre-send is the time from Do to the command being sent (lease, fair turn, server selection, pool check-out, and waiting for a CPU along the way): the part of a light read that client-side isolation can control.",
			noisyLightTenants, noisyTinyDocs, env.Duration/2, env.Duration/2, noisyFloodGoroutines, noisyRamp, env.Duration/2),
		fmt.Sprintf("Every variant talks to the server through a proxy, which counts server sockets (monitoring included) at the end of the noisy phase. delay: the proxy adds %v to every reply and holds the noisy tenant's replies %v more, so its reads hold a connection like slow queries while the server's CPU stays idle: this isolates what the library does. CPU: no added delay; the noisy tenant loops a count over %d unindexed documents, and the server (embedded FerretDB on SQLite, in this process, on the same %d CPUs) slows every tenant whatever the client does.",
			noisyLatency, noisyDelay, noisyDocs, runtime.NumCPU()),
		fmt.Sprintf("Every client has pool %d; fair sharing's capacity is the pool size, and its reserve the default (a quarter of it, for 1 s). The adaptive limit's target is %v. A noisy goroutine waits up to %v in Acquire; on ErrTenantBusy (noisy busy: its bulkhead of 2, its adaptive limit, or its fair turn not come) it sleeps %v and tries again. grouped(3) shares each client between about a third of the tenants, the noisy one and two or three light ones.",
			noisyPool, noisyAdaptiveTarget, noisyAcquireWait, noisyBackoff),
		fmt.Sprintf("failed counts light and noisy operations that returned an error other than ErrTenantBusy. The flood's %d goroutines, %.1f times the pool, were chosen so that it saturates a plain shared pool with a queue; the numbers are as measured.", noisyFloodGoroutines, float64(noisyFloodGoroutines)/noisyPool),
	}
}
