package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func init() {
	register(scenario{
		name:  "churn",
		about: "2,000 tenants' reads against a plain client; then 10,000 tenants with Zipf access through 200, then 50, clients: failures, evictions, goroutines and heap",
		run:   runChurn,
	})
}

const (
	churnTenants  = 10000
	churnWorkers  = 32
	churnZipfS    = 1.1 // P(tenant k) ∝ (1+k)^-s: tenant 0 is the hottest
	churnSeed     = 2024
	churnIdle     = 20         // clients created and left idle to measure a client's cost
	churnGrow     = 4          // reads each idle client then runs at once, to measure a pooled connection's cost
	churnMaxOps   = 50_000_000 // per worker, a bound besides time
	churnLogged   = 5          // failures logged in full
	churnCauses   = 20         // distinct error messages kept for the report
	churnSample   = 50 * time.Millisecond
	churnGrace    = 15 * time.Second // an operation in flight at the deadline may finish within this
	churnSettle   = 3 * time.Second  // wait for the goroutines of closed connections to exit
	churnSlack    = 50               // goroutines allowed beyond the bound: timers, background disconnects
	churnCloseTTL = 30 * time.Second
)

// churnFind reads by _id from a collection that does not exist: the tenants'
// databases are never created, and ErrNoDocuments is the expected answer.
func churnFind(ctx context.Context, db *mongo.Database) error {
	err := db.Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	return err
}

func runChurn(ctx context.Context, env *Env) ([]Result, error) {
	results, err := churnThroughput(ctx, env)
	if err != nil {
		return nil, err
	}
	ids := make([]string, churnTenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("churn%05d", i)
	}

	idle, goroutinesPer, perConn, heapPerIdle, err := churnClientCost(ctx, env, ids[:churnIdle])
	if err != nil {
		return nil, err
	}

	results = append(results, idle)
	perOpen := map[int]float64{}
	heapPer := map[int]float64{}
	seen := map[int]float64{}
	for _, maxClients := range []int{200, 50} {
		r, err := churnVariant(ctx, env, ids, maxClients, goroutinesPer, perConn)
		if err != nil {
			return nil, err
		}
		results = append(results, r.Result)
		perOpen[maxClients], heapPer[maxClients], seen[maxClients] = r.perOpen, r.heapPer, r.seen
	}
	last := &results[len(results)-1]
	last.Notes = append(last.Notes, fmt.Sprintf(
		"per open client at the end of the run, MaxClients 200 against 50: %.1f against %.1f goroutines above baseline "+
			"(idle clients measured alone: %.1f), %.0f against %.0f KiB of heap released by Close (alone: %.0f), "+
			"while tenants seen were %.0f against %.0f.",
		perOpen[200], perOpen[50], goroutinesPer, heapPer[200], heapPer[50], heapPerIdle, seen[200], seen[50]))
	return results, nil
}

// churnClientCost measures what one idle client costs in goroutines and
// heap: churnIdle tenants each make one request, then nothing. The server
// runs in this process, so its goroutines for the client's connections (one
// monitoring, one pooled) count too. It returns goroutines and KiB of heap
// per client.
func churnClientCost(ctx context.Context, env *Env, ids []string) (r Result, goroutines, perConn, heapKiB float64, err error) {
	g0, _ := churnSettled(0) // what start-up left behind
	h0 := churnHeapMiB()
	m, err := mongotenant.New(env.URI, mongotenant.WithMaxClients(0))
	if err != nil {
		return Result{}, 0, 0, 0, err
	}
	defer m.Close(ctx)
	for _, id := range ids {
		if err := m.Do(ctx, id, churnFind); err != nil {
			return Result{}, 0, 0, 0, err
		}
	}
	time.Sleep(500 * time.Millisecond) // let connection set-up on both sides finish
	g1, h1 := runtime.NumGoroutine(), churnHeapMiB()
	conns1 := m.Stats().OpenConnections

	// Busy clients hold more pooled connections than idle ones: measure
	// what a pooled connection costs by making each pool grow.
	var wg sync.WaitGroup
	for _, id := range ids {
		for range churnGrow {
			wg.Go(func() { _ = m.Do(ctx, id, churnFind) })
		}
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond)
	g3, conns3 := runtime.NumGoroutine(), m.Stats().OpenConnections
	perConn = 0
	if conns3 > conns1 {
		perConn = float64(g3-g1) / float64(conns3-conns1)
	}
	closeCtx, cancel := context.WithTimeout(ctx, churnCloseTTL)
	defer cancel()
	if err := m.Close(closeCtx); err != nil {
		return Result{}, 0, 0, 0, err
	}
	g2, _ := churnSettled(g0)
	k := float64(len(ids))
	per, heapPer := float64(g1-g0)/k, (h1-h0)*1024/k
	r = Result{Scenario: "churn", Variant: fmt.Sprintf("%d idle clients", len(ids))}
	r.Add("goroutines before", float64(g0), "").
		Add("with clients", float64(g1), "").
		Add("per client", per, "goroutines").
		Add("heap per client", heapPer, "KiB").
		Add("per extra pooled connection", perConn, "goroutines").
		Add("goroutines after Close", float64(g2), "")
	r.Notes = append(r.Notes, fmt.Sprintf("the server runs in this process: its goroutines for each client's monitoring and pooled connections are counted, and its heap too. "+
		"Each client then ran %d reads at once, growing the pools from %d to %d connections: the goroutines per extra pooled connection.", churnGrow, conns1, conns3))
	env.Progress("%d idle clients: %d goroutines before, %d with them (%.1f per client, %.1f per extra pooled connection), %d after Close", len(ids), g0, g1, per, perConn, g2)
	return r, per, perConn, heapPer, nil
}

type churnResult struct {
	Result
	perOpen float64 // goroutines above baseline per open client at the end
	heapPer float64 // KiB released by Close per open client
	seen    float64
}

// churnSampler follows the Manager while the workers run.
type churnSampler struct {
	maxClients, maxRetiring, maxOpenConns, maxGoroutines int
	maxHeap                                              float64
	samples                                              int
}

func (s *churnSampler) observe(m *mongotenant.Manager) {
	st := m.Stats()
	s.maxClients = max(s.maxClients, st.Clients)
	s.maxRetiring = max(s.maxRetiring, st.Retiring)
	s.maxOpenConns = max(s.maxOpenConns, st.OpenConnections)
	s.maxGoroutines = max(s.maxGoroutines, runtime.NumGoroutine())
	s.samples++
}

func churnVariant(ctx context.Context, env *Env, ids []string, maxClients int, goroutinesPer, perConn float64) (churnResult, error) {
	baseline, _ := churnSettled(0) // whatever the previous phase left
	m, err := mongotenant.New(env.URI, mongotenant.WithMaxClients(maxClients))
	if err != nil {
		return churnResult{}, err
	}
	defer m.Close(ctx) // on early return; closed explicitly below
	heapStart := churnHeapMiB()

	var (
		wg       sync.WaitGroup
		ops      [churnWorkers]int64
		fails    [churnWorkers]int64
		seen     [churnWorkers][]bool
		failures atomic.Int64
		causesMu sync.Mutex
		causes   = map[string]int{}
	)
	start := time.Now()
	deadline := start.Add(env.Duration)
	runCtx, cancel := context.WithDeadline(ctx, deadline.Add(churnGrace))
	defer cancel()
	for w := range churnWorkers {
		wg.Go(func() {
			z := rand.NewZipf(rand.New(rand.NewPCG(churnSeed, uint64(w))), churnZipfS, 1, churnTenants-1)
			seen[w] = make([]bool, churnTenants)
			for n := 0; n < churnMaxOps && time.Now().Before(deadline); n++ {
				i := z.Uint64()
				seen[w][i] = true
				err := m.Do(runCtx, ids[i], churnFind)
				if err == nil {
					ops[w]++
					continue
				}
				fails[w]++
				if failures.Add(1) <= churnLogged {
					env.Progress("MaxClients %d: tenant %s failed: %v", maxClients, ids[i], err)
				}
				causesMu.Lock()
				if _, ok := causes[err.Error()]; ok || len(causes) < churnCauses {
					causes[err.Error()]++
				} else {
					causes["(other messages)"]++
				}
				causesMu.Unlock()
			}
		})
	}

	// Sample Stats and goroutines often, the heap (after a GC) at each
	// quarter of the run.
	var s churnSampler
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(churnSample)
		defer tick.Stop()
		quarter := 1
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			s.observe(m)
			if quarter < 4 && time.Since(start) >= env.Duration*time.Duration(quarter)/4 {
				h := churnHeapMiB()
				s.maxHeap = max(s.maxHeap, h)
				st := m.Stats()
				env.Progress("MaxClients %d, %d%%: %d failed, clients %d, retiring %d, tenants %d, created %d, goroutines %d, heap %.1f MiB",
					maxClients, quarter*25, failures.Load(), st.Clients, st.Retiring, st.Tenants, st.Created, runtime.NumGoroutine(), h)
				quarter++
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	s.observe(m)

	goroutinesEnd := runtime.NumGoroutine()
	st := m.Stats()
	heapEnd := churnHeapMiB()
	s.maxHeap = max(s.maxHeap, heapEnd)

	closeStart := time.Now()
	closeCtx, cancelClose := context.WithTimeout(ctx, churnCloseTTL)
	defer cancelClose()
	closeErr := m.Close(closeCtx)
	closeTook := time.Since(closeStart)
	goroutinesClosed, settleTook := churnSettled(baseline)
	heapClosed := churnHeapMiB()
	after := m.Stats()

	var total, failed int64
	for w := range churnWorkers {
		total += ops[w]
		failed += fails[w]
	}
	distinct := 0
	for i := range churnTenants {
		for w := range churnWorkers {
			if seen[w][i] {
				distinct++
				break
			}
		}
	}

	r := Result{Scenario: "churn", Variant: fmt.Sprintf("MaxClients %d", maxClients)}
	r.Add("throughput", float64(total)/elapsed.Seconds(), "ops/s").
		Add("failed", float64(failed), "").
		Add("tenants seen", float64(distinct), "").
		Add("created", float64(st.Created), "").
		Add("evicted LRU", float64(st.EvictedLRU), "").
		Add("hits", 100*float64(st.Hits)/float64(max(1, st.Hits+st.Misses)), "%").
		Add("max Clients", float64(s.maxClients), "").
		Add("max Retiring", float64(s.maxRetiring), "").
		Add("max pooled conns", float64(s.maxOpenConns), "").
		Add("goroutines baseline", float64(baseline), "").
		Add("max", float64(s.maxGoroutines), "").
		Add("end", float64(goroutinesEnd), "").
		Add("after Close", float64(goroutinesClosed), "").
		Add("heap start", heapStart, "MiB").
		Add("max", s.maxHeap, "MiB").
		Add("end", heapEnd, "MiB").
		Add("after Close", heapClosed, "MiB").
		Add("Tenants at end", float64(st.Tenants), "").
		Add("disconnect errors", float64(after.DisconnectErrors), "").
		Add("Close", ms(closeTook), "ms")

	open := st.Clients + st.Retiring
	perOpen, heapPer := 0.0, 0.0
	if open > 0 {
		perOpen = float64(goroutinesEnd-baseline) / float64(open)
		heapPer = (heapEnd - heapClosed) * 1024 / float64(open)
	}
	// An open client costs what an idle one does, and each pooled
	// connection beyond its first what the idle phase measured.
	extraConns := max(0, st.OpenConnections-open)
	bound := float64(baseline) + float64(open)*goroutinesPer + float64(extraConns)*perConn + churnWorkers + churnSlack
	check := "holds"
	if float64(goroutinesEnd) > bound {
		check = "DOES NOT HOLD"
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("%s over %v with %d workers, %d operations, Zipf s=%.1f over %d tenants; heap is HeapAlloc after runtime.GC(), sampled at each quarter and at the end; Stats and goroutines every %v (%d samples).",
			churnVerdict(failed), elapsed.Round(time.Millisecond), churnWorkers, total+failed, churnZipfS, churnTenants, churnSample, s.samples),
		fmt.Sprintf("check goroutines_end ≤ baseline + open clients × per client + extra pooled connections × per connection + workers + slack: %d ≤ %d + %d × %.1f + %d × %.1f + %d + %d = %.0f: %s. "+
			"At the end %d clients were cached and %d retiring, with %d pooled connections (the idle clients had one each): %.1f goroutines above baseline per open client. "+
			"Max during the run, workers included: %d.",
			goroutinesEnd, baseline, open, goroutinesPer, extraConns, perConn, churnWorkers, churnSlack, bound, check,
			st.Clients, st.Retiring, st.OpenConnections, perOpen, s.maxGoroutines),
		fmt.Sprintf("heap counts the in-process server too: its connection buffers, and metrics it keeps for every database queried, which Close does not release. "+
			"Close released %.1f MiB, %.0f KiB per open client.", heapEnd-heapClosed, heapPer),
		fmt.Sprintf("Close took %v and returned %v; goroutines were back to %d after %v more (baseline %d); disconnects %d of %d created.",
			closeTook.Round(time.Millisecond), closeErr, goroutinesClosed, settleTook.Round(time.Millisecond), baseline, after.Disconnects, after.Created))
	msgs := slices.SortedFunc(maps.Keys(causes), func(a, b string) int {
		return cmp.Or(cmp.Compare(causes[b], causes[a]), cmp.Compare(a, b))
	})
	for _, msg := range msgs {
		r.Notes = append(r.Notes, fmt.Sprintf("failed %d times: %s", causes[msg], msg))
	}
	for i, n := range r.Notes { // the notes print below the table: say which row
		r.Notes[i] = r.Variant + ": " + n
	}
	env.Progress("MaxClients %d: %.0f ops/s, %d failed, %d tenants seen, %d created, max clients %d, goroutines %d at end, %d after Close, heap %.1f → %.1f MiB",
		maxClients, float64(total)/elapsed.Seconds(), failed, distinct, st.Created, s.maxClients, goroutinesEnd, goroutinesClosed, heapStart, heapEnd)
	return churnResult{Result: r, perOpen: perOpen, heapPer: heapPer, seen: float64(distinct)}, nil
}

// churnVerdict summarises the failures for a note.
func churnVerdict(failed int64) string {
	if failed == 0 {
		return "No failed operation"
	}
	return fmt.Sprintf("%d FAILED operations", failed)
}

// churnHeapMiB collects garbage and returns the live heap in MiB.
func churnHeapMiB() float64 {
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	return float64(mem.HeapAlloc) / (1 << 20)
}

// churnSettled waits up to churnSettle for the goroutine count to fall to target,
// for the goroutines of closed connections to exit, and returns the count
// and how long it waited. A target of 0 waits until the count stops falling.
func churnSettled(target int) (int, time.Duration) {
	start := time.Now()
	last := runtime.NumGoroutine()
	for time.Since(start) < churnSettle {
		if target > 0 && last <= target {
			break
		}
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if target == 0 && n >= last {
			return n, time.Since(start)
		}
		last = n
	}
	return last, time.Since(start)
}
