package migrate

import (
	"context"
	"iter"
	"sync"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TenantResult is what a bulk run did for one tenant.
type TenantResult struct {
	TenantID string
	Result
	Err error // the tenant's failure: why it could not be served, or Up's error
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
// version, parallelism at a time, through [mongotenant.Manager.ForEach]: a
// tenant whose client is cached is leased, any other is served by a
// transient client, so that a migration over every tenant does not push
// the tenants serving traffic out of the cache. A tenant's failure does
// not stop the others: it is in the report. When ctx ends, no new tenant
// is started; those under way finish or fail with ctx, and the report
// covers the tenants reached. Several callers, in this process or others,
// may run UpAll over the same tenants at once: each tenant's lock makes
// every migration run once, and the callers that wait for it find the
// tenant current.
//
// progress, if not nil, is called after each tenant, from one goroutine at
// a time, never concurrently. If it or ids panics, UpAll stops starting
// tenants, waits for those under way, and panics with the same value.
func (mg *Migrator) UpAll(ctx context.Context, m *mongotenant.Manager, ids iter.Seq[string], parallelism int, progress func(Progress)) Report {
	var mu sync.Mutex // guards done
	done := map[string]Result{}
	up := func(ctx context.Context, id string, db *mongo.Database) error {
		res, err := mg.Up(ctx, db)
		mu.Lock()
		done[id] = res
		mu.Unlock()
		return err
	}
	tenantResult := func(r mongotenant.ForEachResult) TenantResult {
		mu.Lock()
		defer mu.Unlock()
		return TenantResult{TenantID: r.TenantID, Result: done[r.TenantID], Err: r.Err}
	}
	// SkipInit: with WithInit(mg.Init), the hook would migrate the
	// tenant before up could, and the report would call it current.
	opts := mongotenant.ForEachOptions{Parallelism: parallelism, SkipInit: true}
	if progress != nil {
		opts.Progress = func(p mongotenant.ForEachProgress) {
			progress(Progress{Done: p.Done, Failed: p.Failed, Last: tenantResult(p.Last)})
		}
	}
	var report Report
	for _, r := range m.ForEach(ctx, ids, up, opts) {
		tr := tenantResult(r)
		report.Tenants = append(report.Tenants, tr)
		switch {
		case tr.Err != nil:
			report.Failed++
		case len(tr.Applied) > 0:
			report.Migrated++
		default:
			report.Current++
		}
	}
	return report
}
