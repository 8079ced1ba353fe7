// Worker is a background job loop over many tenants: fifty tenants queue jobs
// in their own databases, and a pool of workers claims and runs them through
// one shared client, with a bulkhead so that the tenant with the longest
// queue cannot take every worker or every connection. It runs until every
// job is done, then shuts down.
//
//	go run ./examples/worker
//
// It uses MONGODB_URI if set, and otherwise starts an embedded server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/examples/internal/example"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() { example.Main(run) }

const (
	tenants  = 50
	workers  = 8
	poolSize = 4
)

func tenantID(i int) string { return fmt.Sprintf("tenant-%02d", i) }

// jobsFor is how many jobs tenant i queues: tenant-00 is the noisy one.
func jobsFor(i int) int {
	if i == 0 {
		return 40
	}
	return 1 + i%5
}

func run(ctx context.Context, w io.Writer, uri string) error {
	m, err := mongotenant.New(uri,
		// One client and one pool of poolSize connections for all tenants,
		// each in its own database.
		mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithPoolSize(poolSize),
		// One lease per tenant at a time: a tenant holds at most one worker
		// and one connection, and its jobs run one by one, in queue order.
		// (On MongoDB the claim below stays atomic with more leases, or with
		// more worker processes. The embedded test server, FerretDB 1.24,
		// runs findAndModify as a read then a write, so there this limit is
		// also what keeps two workers from claiming the same job.)
		mongotenant.WithMaxLeases(1),
	)
	if err != nil {
		return err
	}
	defer m.Close(ctx)

	// queue holds a notification per job: the tenant to look at. A real
	// service would get them from a message bus, or poll its tenants.
	total := 0
	for i := range tenants {
		total += jobsFor(i)
	}
	queue := make(chan string, total)
	for i := range tenants {
		if err := enqueue(ctx, m, tenantID(i), jobsFor(i)); err != nil {
			return err
		}
		for range jobsFor(i) {
			queue <- tenantID(i)
		}
	}
	fmt.Fprintf(w, "queued   %d jobs for %d tenants; %d workers, one shared client (pool %d), 1 lease per tenant\n",
		total, tenants, workers, poolSize)

	// Workers run until ctx is cancelled: by the last job, or by the
	// first worker to fail.
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		wg       sync.WaitGroup
		done     atomic.Int64
		finished = make(chan struct{})
		audit    = newLedger()
	)
	for n := range workers {
		wg.Go(func() {
			if err := work(wctx, m, fmt.Sprintf("worker-%d", n), queue, audit, func() {
				if done.Add(1) == int64(total) {
					close(finished)
				}
			}); err != nil {
				stop(err)
			}
		})
	}
	select {
	case <-finished:
	case <-wctx.Done():
	}
	stop(nil) // shut the workers down
	wg.Wait()
	if err := context.Cause(wctx); !errors.Is(err, context.Canceled) {
		return err
	}

	var counts []string
	allDone := true
	for i := range tenants {
		var processed, left int64
		err := m.Do(ctx, tenantID(i), func(ctx context.Context, db *mongo.Database) (err error) {
			jobs := db.Collection("jobs")
			processed, err = jobs.CountDocuments(ctx, bson.D{{Key: "status", Value: "done"}, {Key: "processed_by", Value: bson.D{{Key: "$exists", Value: true}}}})
			if err != nil {
				return err
			}
			left, err = jobs.CountDocuments(ctx, bson.D{{Key: "status", Value: bson.D{{Key: "$ne", Value: "done"}}}})
			return err
		})
		if err != nil {
			return err
		}
		allDone = allDone && left == 0 && processed == int64(jobsFor(i))
		counts = append(counts, fmt.Sprintf("%s=%d", tenantID(i), processed))
	}
	for row := range slices.Chunk(counts, 10) {
		fmt.Fprintf(w, "done     %s\n", strings.Join(row, " "))
	}
	fmt.Fprintf(w, "done     every tenant's jobs all done, none left: %t\n", allDone)
	twice, inOrder, maxLeases := audit.check()
	fmt.Fprintf(w, "claims   %d, any job claimed twice: %t, every tenant's in queue order: %t\n", done.Load(), twice, inOrder)
	fmt.Fprintf(w, "bulkhead most leases one tenant held at once: %d\n", maxLeases)

	s := m.Stats()
	ts, _ := m.TenantStats(tenantID(0))
	fmt.Fprintf(w, "stats    clients=%d created=%d tenants=%d leases=%d, %s shares its client with %d others\n",
		s.Clients, s.Created, s.Tenants, s.Leases, tenantID(0), ts.Sharing-1)
	return m.Close(ctx)
}

// enqueue replaces the tenant's jobs with n pending ones, numbered from 1.
func enqueue(ctx context.Context, m *mongotenant.Manager, tenant string, n int) error {
	return m.Do(ctx, tenant, func(ctx context.Context, db *mongo.Database) error {
		jobs := db.Collection("jobs")
		if err := jobs.Drop(ctx); err != nil { // start clean on a shared server
			return err
		}
		docs := make([]bson.D, n)
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: i + 1}, {Key: "status", Value: "pending"}}
		}
		_, err := jobs.InsertMany(ctx, docs)
		return err
	})
}

// work takes tenants off the queue and runs one of their jobs each, until
// ctx is done. A tenant already being worked on goes back to the end of the
// queue: waiting for it would idle this worker while other tenants wait.
func work(ctx context.Context, m *mongotenant.Manager, worker string, queue chan string, audit *ledger, ran func()) error {
	for {
		var tenant string
		select {
		case <-ctx.Done():
			return nil
		case tenant = <-queue:
		}
		err := claim(ctx, m, tenant, worker, audit)
		switch {
		case err == nil:
			ran()
		case errors.Is(err, mongotenant.ErrTenantBusy) && ctx.Err() == nil:
			queue <- tenant // never blocks: the queue has room for every job
		case ctx.Err() != nil:
			return nil // shutting down
		default:
			return fmt.Errorf("%s: %s: %w", worker, tenant, err)
		}
	}
}

// claim marks the tenant's oldest pending job done by worker. The filter and
// the update are one findAndModify, so on MongoDB two workers, in this
// process or another, never get the same job.
func claim(ctx context.Context, m *mongotenant.Manager, tenant, worker string, audit *ledger) error {
	// Wait briefly for the tenant's lease, then give up with ErrTenantBusy.
	// Only the wait is bounded: the lease outlives this context.
	wait, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	lease, err := m.Acquire(wait, tenant)
	cancel()
	if err != nil {
		return err
	}
	defer lease.Release()
	defer audit.enter(tenant)()

	var job struct {
		ID int `bson:"_id"`
	}
	err = lease.Database().Collection("jobs").FindOneAndUpdate(ctx,
		bson.D{{Key: "status", Value: "pending"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "done"}, {Key: "processed_by", Value: worker}}}},
		options.FindOneAndUpdate().SetSort(bson.D{{Key: "_id", Value: 1}}),
	).Decode(&job)
	if err != nil {
		return err // mongo.ErrNoDocuments too: every notification has its job
	}
	audit.claimed(tenant, job.ID) // under the lease, so in claim order
	return nil
}

// A ledger records, for the checks at the end, which jobs were claimed and
// how many leases each tenant held at once.
type ledger struct {
	mu        sync.Mutex
	claims    map[string][]int
	inFlight  map[string]int
	maxLeases int
}

func newLedger() *ledger {
	return &ledger{claims: map[string][]int{}, inFlight: map[string]int{}}
}

// enter counts a lease of the tenant in use until the returned func is called.
func (l *ledger) enter(tenant string) (exit func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight[tenant]++
	l.maxLeases = max(l.maxLeases, l.inFlight[tenant])
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.inFlight[tenant]--
	}
}

func (l *ledger) claimed(tenant string, job int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.claims[tenant] = append(l.claims[tenant], job)
}

// check reports whether a job was claimed twice, whether each tenant's jobs
// were claimed in queue order, and the most leases a tenant held at once.
func (l *ledger) check() (twice, inOrder bool, maxLeases int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	inOrder = true
	for _, jobs := range l.claims {
		inOrder = inOrder && slices.IsSorted(jobs)
		twice = twice || len(slices.Compact(slices.Sorted(slices.Values(jobs)))) != len(jobs)
	}
	return twice, inOrder, l.maxLeases
}
