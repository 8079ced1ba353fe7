package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Manager hands out a *mongo.Client per tenant (or per group of tenants, see
// [WithStrategy]), created on first use, cached, and disconnected when
// evicted, idle or closed. Work goes through a [Lease]: a client is never
// disconnected while a lease on it is live.
//
// Clients counts cached clients and never exceeds MaxClients. A client
// evicted while leased leaves the cache at once and is counted in
// Stats.Retiring until its last lease is released; only such clients hold
// the number of open clients above MaxClients.
//
// A Manager is safe for concurrent use. Create it with [New], end it with
// [Manager.Close].
type Manager struct {
	cfg       config
	def       *cluster // the deployment at the URI given to New
	poolSize  uint64   // default pool size, from the options or the URI
	refreshes bool     // routes can change, so Release refreshes them after the TTL
	epoch     time.Time

	// The read lock's counter is written by every Acquire; keep the
	// read-mostly fields above off its cache line.
	_ [64]byte

	mu              sync.RWMutex // protects the fields below, and client.members, tenant.c, tenant.db
	tenants         map[string]*tenant
	clients         map[clientKey]*client
	clusters        map[string]*cluster      // by URI, besides def
	creating        map[clientKey]chan error // client creations under way; each channel gets one result
	initialized     map[string]struct{}      // tenants whose init hook ran; nil without WithInit
	initializing    map[string]chan struct{} // init hooks under way, by tenant
	resolving       map[string]chan struct{} // route resolutions under way, by tenant
	retiring        map[*client]struct{}     // left the cache, not yet disconnected
	draining        map[*tenant]struct{}     // retired records with leases
	retiredAcquires uint64                   // acquires of tenant records removed
	budgetUsed      int                      // sockets charged by live clients
	budgetFreed     chan struct{}            // closed and replaced when budget is freed
	closed          bool
	reaping         bool // the idle reaper is running

	pending     sync.WaitGroup // one count per retiring client, until its Disconnect returns
	background  sync.WaitGroup // the reaper and route refreshes
	done        chan struct{}  // closed by Close: stops the reaper
	closeErrsMu sync.Mutex     // protects closeErrs
	closeErrs   []error        // Disconnect errors of clients closed by Close

	created          atomic.Uint64
	misses           atomic.Uint64
	busy             atomic.Uint64
	evicted          [numCauses]atomic.Uint64
	disconnects      atomic.Uint64
	disconnectsBusy  atomic.Uint64
	disconnectErrors atomic.Uint64
}

// New returns a Manager for the deployment at uri. It validates the URI and
// options but does no network I/O (a mongodb+srv URI is resolved in DNS by the
// driver, here and at each client creation). Clients are created by
// [Manager.Acquire].
func New(uri string, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	def, err := newCluster(uri, &cfg)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:         cfg,
		def:         def,
		poolSize:    *def.opts.MaxPoolSize,
		refreshes:   len(cfg.routers) > 0 && cfg.routeTTL > 0,
		epoch:       time.Now(),
		tenants:     make(map[string]*tenant),
		clients:     make(map[clientKey]*client),
		clusters:    make(map[string]*cluster),
		creating:    make(map[clientKey]chan error),
		resolving:   make(map[string]chan struct{}),
		retiring:    make(map[*client]struct{}),
		draining:    make(map[*tenant]struct{}),
		budgetFreed: make(chan struct{}),
		done:        make(chan struct{}),
	}
	if cfg.init != nil {
		m.initialized = make(map[string]struct{})
		m.initializing = make(map[string]chan struct{})
	}
	return m, nil
}

// newTenantLocked makes a record for a resolved route. It is ready for the
// hot path unless an init hook has yet to run for the tenant. The caller
// holds m.mu.
func (m *Manager) newTenantLocked(id string, r Route, key clientKey) *tenant {
	t := newTenant(id, r, key, m.now())
	_, done := m.initialized[id]
	t.ready = m.cfg.init == nil || done
	return t
}

// now reads the Manager clock: monotonic nanoseconds since New.
func (m *Manager) now() int64 { return int64(time.Since(m.epoch)) }

func (m *Manager) wallTime(clock int64) time.Time { return m.epoch.Add(time.Duration(clock)) }

// Acquire returns a lease on tenantID's client, creating the client on first
// use. A cached tenant costs no network I/O and no exclusive lock. The lease
// must be released; until then its client stays connected.
//
// ctx bounds only the wait for the lease (a busy tenant, the budget, a
// client being created); the lease outlives it. To wait briefly for a busy
// tenant and then do longer work, acquire with a short ctx.
//
// Errors wrap [ErrInvalidTenant], [ErrTenantBusy], [ErrBudgetExceeded],
// [ErrClosed], a Router's error, or ctx's error. An error from waiting also
// wraps ctx's error, so errors.Is(err, context.Canceled) tells a caller that
// gave up from one that timed out.
func (m *Manager) Acquire(ctx context.Context, tenantID string) (l *Lease, err error) {
	// Acquire is small enough to inline, so a lease that does not escape the
	// caller stays on the caller's stack: no allocation on the hot path.
	l = new(Lease)
	if err = m.acquire(ctx, tenantID, l); err != nil {
		l = nil
	}
	return l, err
}

// acquire leases tenantID's client into l: the hot path, then acquireSlow.
func (m *Manager) acquire(ctx context.Context, tenantID string, l *Lease) error {
	m.mu.RLock()
	if t := m.tenants[tenantID]; t != nil && t.ready && t.c != nil && t.tryEnter() {
		t.state.Add(1)
		t.acquires.Add(1)
		m.mu.RUnlock()
		l.t = t
		return nil
	}
	m.mu.RUnlock()
	return m.acquireSlow(ctx, tenantID, l)
}

// errStale sends acquireSlow round again: the tenant's record changed while
// it waited.
var errStale = errors.New("stale tenant record")

// acquireSlow resolves the tenant's route, takes a bulkhead slot, then
// leases the tenant's client, creating it if needed.
func (m *Manager) acquireSlow(ctx context.Context, tenantID string, l *Lease) error {
	for {
		t, err := m.tenantRecord(ctx, tenantID)
		if err != nil {
			return err
		}
		if err := t.enter(ctx); err != nil {
			m.busy.Add(1)
			return err
		}
		err = m.attach(ctx, t)
		if err == nil && m.cfg.init != nil {
			if err = m.initialize(ctx, t); err != nil {
				(&Lease{t: t}).Release()
				return err
			}
		}
		if err == nil {
			m.misses.Add(1)
			l.t = t
			return nil
		}
		t.exit()
		if !errors.Is(err, errStale) {
			return err
		}
	}
}

// tenantRecord returns tenantID's record, resolving its route if it has
// none. Concurrent first callers resolve once; each waits with its own ctx.
func (m *Manager) tenantRecord(ctx context.Context, tenantID string) (*tenant, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		if t := m.tenants[tenantID]; t != nil {
			m.mu.Unlock()
			return t, nil
		}
		wait, busy := m.resolving[tenantID]
		if !busy {
			wait = make(chan struct{})
			m.resolving[tenantID] = wait
		}
		m.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("mongotenant: waiting for the tenant's route: %w", context.Cause(ctx))
			}
		}
		r, key, err := m.resolve(ctx, tenantID)
		m.mu.Lock()
		delete(m.resolving, tenantID)
		close(wait)
		var t *tenant
		if err == nil && !m.closed {
			t = m.newTenantLocked(tenantID, r, key)
			m.tenants[tenantID] = t
			m.startReaperLocked()
		}
		m.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if t == nil {
			return nil, ErrClosed
		}
		return t, nil
	}
}

// attach binds t to its client, creating the client if no tenant has, and
// takes a lease on t. The caller holds a slot of t's bulkhead. If t left the
// cache meanwhile (its client was evicted, its route changed), attach
// returns errStale and the caller starts again.
func (m *Manager) attach(ctx context.Context, t *tenant) error {
	for {
		m.mu.Lock()
		switch {
		case m.closed:
			m.mu.Unlock()
			return ErrClosed
		case m.tenants[t.id] != t:
			m.mu.Unlock()
			return errStale
		case t.c == nil:
			if c := m.clients[t.key]; c != nil {
				m.bindLocked(t, c)
			}
		}
		if t.c != nil {
			t.state.Add(1)
			t.acquires.Add(1)
			m.mu.Unlock()
			return nil
		}
		result, busy := m.creating[t.key]
		if !busy {
			result = make(chan error, 1)
			m.creating[t.key] = result
		}
		m.mu.Unlock()
		if busy {
			select {
			case err := <-result:
				result <- err // pass it on to the next waiter
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				continue // created, or the creator gave up on its own ctx: try again
			case <-ctx.Done():
				return fmt.Errorf("mongotenant: waiting for the tenant's client: %w", context.Cause(ctx))
			}
		}
		err := m.create(ctx, t)
		m.mu.Lock()
		delete(m.creating, t.key)
		m.mu.Unlock()
		result <- err
		return err // on success t is bound and leased
	}
}

// create makes the client for t's key and publishes it with t bound and
// leased for the caller, under one lock: published unleased, the new client
// would be the idle LRU victim of the next creation at the cap.
func (m *Manager) create(ctx context.Context, t *tenant) error {
	cl, err := m.clusterFor(t.key.cluster)
	if err != nil {
		return err
	}
	cost := cl.cost(t.key.poolSize)
	if err := m.reserve(ctx, cost); err != nil {
		return err
	}
	c := &client{m: m, key: t.key, cost: cost, members: make(map[string]*tenant)}
	o := *cl.opts // a shallow copy: each client gets its own pool size and monitor
	o.MaxPoolSize = &t.key.poolSize
	o.PoolMonitor = c.pool.poolMonitor(cl.opts.PoolMonitor)
	if t.route.Auth != nil {
		o.Auth = t.route.Auth
	}
	mc, err := mongo.Connect(&o) // no network I/O: servers are dialled in the background
	if err != nil {
		m.mu.Lock()
		m.unreserveLocked(cost)
		m.mu.Unlock()
		return fmt.Errorf("mongotenant: create client: %w", err)
	}
	c.mc = mc
	c.created = m.now()

	m.mu.Lock()
	c.refs.Store(1) // cached
	if m.closed || m.tenants[t.id] != t {
		stale := !m.closed
		m.unreserveLocked(cost)
		m.mu.Unlock()
		_ = disconnectClient(context.Background(), mc, m.cfg.disconnectTimeout) // never published
		if stale {
			return errStale
		}
		return ErrClosed
	}
	var victim *client // nil if still leased: its last Release disconnects it
	if m.cfg.maxClients > 0 && len(m.clients) >= m.cfg.maxClients {
		victim = m.retireClientLocked(m.lruClientLocked(false), causeLRU)
	}
	m.clients[t.key] = c
	m.bindLocked(t, c)
	t.state.Add(1)
	t.acquires.Add(1)
	m.startReaperLocked()
	m.mu.Unlock()

	m.created.Add(1)
	m.cfg.logger.Debug("mongotenant: client created", "tenant", t.id, "group", t.key.group, "pool", t.key.poolSize)
	if victim != nil {
		go m.disconnect(context.Background(), victim)
	}
	return nil
}

// bindLocked binds unbound t to c for good. The caller holds m.mu.
func (m *Manager) bindLocked(t *tenant, c *client) {
	t.c, t.db = c, c.mc.Database(t.route.Database)
	c.members[t.id] = t
	c.refs.Add(1)
}

// clusterFor returns the merged options of the deployment at uri.
func (m *Manager) clusterFor(uri string) (*cluster, error) {
	if uri == "" {
		return m.def, nil
	}
	m.mu.RLock()
	cl := m.clusters[uri]
	m.mu.RUnlock()
	if cl != nil {
		return cl, nil
	}
	cl, err := newCluster(uri, &m.cfg)
	if err != nil {
		return nil, fmt.Errorf("mongotenant: placement: %w", err) // the URI may hold a password: not repeated
	}
	m.mu.Lock()
	if prev := m.clusters[uri]; prev != nil {
		cl = prev
	} else {
		m.clusters[uri] = cl
	}
	m.mu.Unlock()
	return cl, nil
}

// Do runs fn with tenantID's database under a lease released when fn returns.
// It returns fn's error, or the error of [Manager.Acquire].
func (m *Manager) Do(ctx context.Context, tenantID string, fn func(context.Context, *mongo.Database) error) error {
	var l Lease
	if err := m.acquire(ctx, tenantID, &l); err != nil {
		return err
	}
	defer l.Release()
	return fn(ctx, l.t.db)
}

// Database returns tenantID's database under a lease that ends when ctx is
// done. Use it with a request-scoped ctx. With a ctx that is never done, such
// as context.Background(), the lease lasts until [Manager.Close]: the client
// is never reaped, and if evicted it stays connected until Close.
func (m *Manager) Database(ctx context.Context, tenantID string) (*mongo.Database, error) {
	l := new(Lease)
	if err := m.acquire(ctx, tenantID, l); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, l.Release)
	return l.t.db, nil
}

// Close stops the Manager. It refuses new acquisitions at once (they fail with
// [ErrClosed]), waits until every outstanding lease is released or ctx is
// done, then disconnects every client and stops the reaper. Operations still
// running on leases when ctx is done fail with a closed-connection error.
// Close returns nil, or ctx's error if leases were cut short, joined with any
// Disconnect errors. A second call returns nil at once.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	var idle []*client
	for _, c := range m.clients {
		if d := m.retireClientLocked(c, causeClose); d != nil {
			idle = append(idle, d)
		}
	}
	for _, t := range m.tenants { // unbound records
		m.retireRecordLocked(t, causeClose)
	}
	m.mu.Unlock()

	for _, c := range idle {
		go m.disconnect(ctx, c)
	}
	// Leased clients disconnect on their last Release; wait for that.
	drained := make(chan struct{})
	go func() { m.pending.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("mongotenant: close: leases outstanding: %w", context.Cause(ctx))
		m.mu.RLock()
		leased := make([]*client, 0, len(m.retiring))
		for c := range m.retiring {
			leased = append(leased, c)
		}
		m.mu.RUnlock()
		for _, c := range leased {
			go m.disconnect(context.Background(), c)
		}
		<-drained
	}
	m.background.Wait()
	m.closeErrsMu.Lock()
	defer m.closeErrsMu.Unlock()
	return errors.Join(append([]error{err}, m.closeErrs...)...)
}
