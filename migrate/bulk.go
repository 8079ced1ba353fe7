package migrate

import (
	"cmp"
	"context"
	"iter"
	"slices"
	"sync"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TenantResult is what a bulk run did for one tenant.
type TenantResult struct {
	TenantID string
	Result
	Err error // the tenant's failure: Acquire's error, or Up's
}

// Report is a bulk run's outcome, one entry per tenant it reached, sorted
// by tenant ID.
type Report struct {
	Tenants  []TenantResult
	Migrated int // tenants that ran at least one migration
	Current  int // tenants that were at the latest version already
	Failed   int // tenants with an error
}

// Progress is passed to the progress callback after each tenant.
type Progress struct {
	Done, Failed int // tenants finished so far, and those that failed
	Last         TenantResult
}

// UpAll brings the databases of the tenants ids yields to the latest
// version, parallelism at a time, each under a lease of m (so the
// Manager's limits, budget and strategy apply). A tenant's failure does not
// stop the others: it is in the report. When ctx ends, no new tenant is
// started; those under way finish or fail with ctx, and the report covers
// the tenants reached. Several callers, in this process or others, may
// run UpAll over the same tenants at once: each tenant's lock makes every
// migration run once, and the callers that wait for it find the tenant
// current.
//
// progress, if not nil, is called after each tenant, from one goroutine at
// a time, never concurrently. If it or ids panics, UpAll stops starting
// tenants, waits for those under way, and panics with the same value.
func (mg *Migrator) UpAll(ctx context.Context, m *mongotenant.Manager, ids iter.Seq[string], parallelism int, progress func(Progress)) Report {
	parallelism = max(parallelism, 1)
	jobs := make(chan string)
	results := make(chan TenantResult)
	var workers sync.WaitGroup
	for range parallelism {
		workers.Go(func() {
			for id := range jobs {
				results <- mg.upTenant(ctx, m, id)
			}
		})
	}
	halt := make(chan struct{}) // closed if progress panics: start no more tenants
	collected := make(chan collection, 1)
	go func() { collected <- collect(results, progress, halt) }()

	fed := false
	defer func() {
		if !fed { // ids panicked: join everything, then let the panic go on
			close(jobs)
			workers.Wait()
			close(results)
			<-collected
		}
	}()
feed:
	for id := range ids {
		select {
		case <-ctx.Done():
			break feed
		case <-halt:
			break feed
		case jobs <- id:
		}
	}
	fed = true
	close(jobs)
	workers.Wait()
	close(results)
	c := <-collected
	if c.panicked {
		panic(c.panicValue)
	}
	return c.report
}

// upTenant migrates one tenant under a lease.
func (mg *Migrator) upTenant(ctx context.Context, m *mongotenant.Manager, id string) TenantResult {
	tr := TenantResult{TenantID: id}
	tr.Err = m.Do(ctx, id, func(ctx context.Context, db *mongo.Database) error {
		var err error
		tr.Result, err = mg.Up(ctx, db)
		return err
	})
	return tr
}

// collection is what collect gathered, and a panic of progress, if any.
type collection struct {
	report     Report
	panicked   bool
	panicValue any
}

// collect gathers results into a report, calling progress after each,
// until results is closed. A panicking progress is not called again: halt
// is closed, and the panic is handed back for the caller of UpAll.
func collect(results <-chan TenantResult, progress func(Progress), halt chan<- struct{}) (c collection) {
	var p Progress
	for tr := range results {
		c.report.Tenants = append(c.report.Tenants, tr)
		p.Done++
		switch {
		case tr.Err != nil:
			p.Failed++
			c.report.Failed++
		case len(tr.Applied) > 0:
			c.report.Migrated++
		default:
			c.report.Current++
		}
		if progress != nil && !c.panicked {
			p.Last = tr
			if c.panicked, c.panicValue = callProgress(progress, p); c.panicked {
				close(halt)
			}
		}
	}
	slices.SortFunc(c.report.Tenants, func(a, b TenantResult) int { return cmp.Compare(a.TenantID, b.TenantID) })
	return c
}

func callProgress(progress func(Progress), p Progress) (panicked bool, value any) {
	defer func() {
		if v := recover(); v != nil {
			panicked, value = true, v
		}
	}()
	progress(p)
	return false, nil
}
