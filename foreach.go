package mongotenant

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ForEachOptions configure [Manager.ForEach].
type ForEachOptions struct {
	// Parallelism is how many tenants are worked on at once. Default 1.
	Parallelism int

	// Progress, if not nil, is called after each tenant, from one
	// goroutine at a time, never concurrently.
	Progress func(ForEachProgress)

	// SkipInit keeps the init hook from running on transient clients, for
	// a fn that does the init hook's work itself (a migration run).
	SkipInit bool
}

// ForEachResult is what [Manager.ForEach] did for one tenant.
type ForEachResult struct {
	TenantID  string
	Transient bool  // it was served by a transient client: it had no cached client
	Err       error // fn's error, or why the tenant could not be served
}

// ForEachProgress is passed to ForEachOptions.Progress after each tenant.
type ForEachProgress struct {
	Done, Failed int // tenants finished so far, and those that failed
	Last         ForEachResult
}

// ForEach runs fn for each tenant ids yields, opts.Parallelism at a time,
// for jobs over many tenants (migrations, reports, clean-ups) that must
// not push the tenants serving traffic out of the cache. A tenant whose
// client is cached is leased as by [Manager.Do]. Any other is served by a
// transient client, made for the tenant's route (Routers included) and
// disconnected when fn returns: it is never cached, creates no cache
// pressure, and is counted in Stats.Transient. The init hook runs before
// fn on a transient client, every time (init must be idempotent), unless
// opts.SkipInit. [Manager.Drain] waits for fn on transient clients too.
// Transient clients are not charged to the connection budget: at most
// Parallelism exist at once, each with its route's pool size.
//
// One tenant's failure does not stop the others: it is in the results,
// which are sorted by tenant ID. When ctx ends, no new tenant is started;
// those under way get ctx. If fn, ids or Progress panics, ForEach stops
// starting tenants, waits for those under way, and panics with the same
// value. Close does not wait for ForEach: end its ctx first.
func (m *Manager) ForEach(ctx context.Context, ids iter.Seq[string], fn func(ctx context.Context, tenantID string, db *mongo.Database) error, opts ForEachOptions) []ForEachResult {
	jobs := make(chan string)
	results := make(chan forEachOutcome)
	halt := make(chan struct{}) // closed on the first panic: start no more tenants
	var haltOnce sync.Once
	stop := func() { haltOnce.Do(func() { close(halt) }) }
	var workers sync.WaitGroup
	for range max(opts.Parallelism, 1) {
		workers.Go(func() {
			for id := range jobs {
				select {
				case <-ctx.Done():
					continue // handed over as ctx ended: not started
				case <-halt:
					continue // or after a panic
				default:
				}
				o := m.forOne(ctx, id, fn, opts.SkipInit)
				if o.panicked {
					stop() // before the next job: nothing starts after a panic
				}
				results <- o
			}
		})
	}
	collected := make(chan forEachCollection, 1)
	go func() { collected <- collectForEach(results, opts.Progress, stop) }()

	finish := func() forEachCollection {
		close(jobs)
		workers.Wait()
		close(results)
		return <-collected
	}
	fed := false
	defer func() {
		if !fed { // ids panicked: join everything, then let its panic go on
			finish()
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
	c := finish()
	if c.panicked {
		panic(c.panicValue)
	}
	return c.results
}

// forEachOutcome is one tenant's result, or the panic of its fn.
type forEachOutcome struct {
	ForEachResult
	panicked   bool
	panicValue any
}

// forOne serves one tenant to fn, recovering fn's panic.
func (m *Manager) forOne(ctx context.Context, id string, fn func(context.Context, string, *mongo.Database) error, skipInit bool) (o forEachOutcome) {
	o.TenantID = id
	defer func() {
		if p := recover(); p != nil {
			o.panicked, o.panicValue = true, p
			o.Err = errPanicked
		}
	}()
	o.Transient, o.Err = m.serveOne(ctx, id, fn, skipInit)
	return o
}

// serveOne leases id if its client is cached, or serves it by a transient
// client.
func (m *Manager) serveOne(ctx context.Context, id string, fn func(context.Context, string, *mongo.Database) error, skipInit bool) (transient bool, err error) {
	leased := func(ctx context.Context, db *mongo.Database) error { return fn(ctx, id, db) }
	if t := m.tenants.load(id); t != nil && t.admits(t.word.Load()) {
		return false, m.Do(ctx, id, leased) // cached and ready
	}
	if m.closed.Load() {
		return false, ErrClosed
	}
	name, err := m.validate(id)
	if err != nil {
		return false, err
	}
	s, err := m.resolve(ctx, id, name, false)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	c := m.clients[s.key]
	cached := c != nil && c.state == clientCached
	m.mu.Unlock()
	if cached {
		// Binding to a cached client evicts nothing. (Should the client be
		// evicted meanwhile, Do makes a new one, as any Acquire would.)
		return false, m.Do(ctx, id, leased)
	}
	return true, m.transient(ctx, id, name, s, fn, !skipInit)
}

// DoIsolated runs fn with tenantID's database on a transient client made
// for its route (the Routers get ctx), without the init hook, and without
// caching the route or the client: for administrative work on a tenant
// that must not be served meanwhile, such as provisioning it or dropping
// its database, which a catalog's Router admits only under a marked ctx.
// [Manager.Drain] waits for it. Errors are Acquire's (ErrInvalidTenant,
// ErrRoute, ErrCreateClient, ErrClosed), or fn's.
func (m *Manager) DoIsolated(ctx context.Context, tenantID string, fn func(context.Context, *mongo.Database) error) error {
	if m.closed.Load() {
		return ErrClosed
	}
	name, err := m.validate(tenantID)
	if err != nil {
		return err
	}
	s, err := m.resolve(ctx, tenantID, name, false)
	if err != nil {
		return err
	}
	return m.transient(ctx, tenantID, name, s, func(ctx context.Context, _ string, db *mongo.Database) error { return fn(ctx, db) }, false)
}

// transient serves id by a client made for route s and disconnected when
// fn returns, running the init hook first if init.
func (m *Manager) transient(ctx context.Context, id, name string, s routeShape, fn func(context.Context, string, *mongo.Database) error, init bool) error {
	m.transientStart(id)
	defer m.transientEnd(id)
	cl, err := m.clusterFor(s.key.cluster)
	if err != nil {
		return err
	}
	c := newClient(m, s.key) // never published
	mc, _, err := m.connect(cl, c)
	if err != nil {
		return err
	}
	m.transients.Add(1)
	defer func() { _ = disconnectClient(context.Background(), m.cut, mc, m.cfg.disconnectTimeout) }()
	if s.database != "" {
		name = s.database
	}
	db := mc.Database(name)
	if init && m.cfg.init != nil {
		if err := m.cfg.init(ctx, id, db); err != nil {
			return fmt.Errorf("%w: %w", ErrInit, err)
		}
	}
	return fn(ctx, id, db)
}

// transientStart and transientEnd count the transient work under way per
// tenant, for Drain.
func (m *Manager) transientStart(id string) {
	m.transMu.Lock()
	m.transBusy[id]++
	m.transMu.Unlock()
}

func (m *Manager) transientEnd(id string) {
	m.transMu.Lock()
	if m.transBusy[id]--; m.transBusy[id] == 0 {
		delete(m.transBusy, id)
	}
	m.transMu.Unlock()
}

// transientBusy reports whether transient work on id is under way.
func (m *Manager) transientBusy(id string) bool {
	m.transMu.Lock()
	defer m.transMu.Unlock()
	return m.transBusy[id] > 0
}

// forEachCollection is what collectForEach gathered, and the first panic.
type forEachCollection struct {
	results    []ForEachResult
	panicked   bool
	panicValue any
}

// collectForEach gathers outcomes until results is closed, calling
// progress after each. On the first panic (fn's or progress's) it calls
// halt and calls progress no more.
func collectForEach(results <-chan forEachOutcome, progress func(ForEachProgress), halt func()) (c forEachCollection) {
	var p ForEachProgress
	for o := range results {
		c.results = append(c.results, o.ForEachResult)
		p.Done++
		if o.Err != nil {
			p.Failed++
		}
		if o.panicked && !c.panicked {
			c.panicked, c.panicValue = true, o.panicValue
			halt()
		}
		if progress != nil && !c.panicked {
			p.Last = o.ForEachResult
			if v, panicked := callProgress(progress, p); panicked {
				c.panicked, c.panicValue = true, v
				halt()
			}
		}
	}
	slices.SortFunc(c.results, func(a, b ForEachResult) int { return cmp.Compare(a.TenantID, b.TenantID) })
	return c
}

func callProgress(progress func(ForEachProgress), p ForEachProgress) (value any, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			value, panicked = v, true
		}
	}()
	progress(p)
	return nil, false
}

// TenantsOnServer lists the databases of client's deployment and returns
// the IDs of the tenants they belong to, for a job over every tenant when
// there is no catalog: idOf maps a database name back to its tenant ID,
// and false for a database that is no tenant's. nil idOf inverts the
// default naming, user_<id>_db, keeping IDs that [ValidateTenantID]
// accepts.
func TenantsOnServer(ctx context.Context, client *mongo.Client, idOf func(database string) (string, bool)) ([]string, error) {
	if idOf == nil {
		idOf = defaultTenantID
	}
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("mongotenant: list databases: %w", err)
	}
	var ids []string
	for _, name := range names {
		if id, ok := idOf(name); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// defaultTenantID inverts defaultDatabaseName.
func defaultTenantID(database string) (string, bool) {
	id, ok := strings.CutPrefix(database, "user_")
	if !ok {
		return "", false
	}
	if id, ok = strings.CutSuffix(id, "_db"); !ok || ValidateTenantID(id) != nil {
		return "", false
	}
	return id, true
}
