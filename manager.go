package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
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
	// Read-only after New, and read by every lease.
	cfg           config
	clock         clock
	tenants       *tenantMap
	counters      *leaseCounters
	refreshRoutes bool        // routes can change, so Release refreshes them after the route TTL
	closed        atomic.Bool // set once, under mu, by Close
	adaptive      bool        // WithAdaptiveLimit: leases are stamped, and Release feeds the tenant's limit

	def      *cluster // the deployment at the URI given to New
	poolSize uint64   // default pool size, from the options or the URI
	expiry   *expiry  // the idle reaper's index; nil without idle reaping
	hooks    hookSet
	nTenants atomic.Int64

	// coarse is the clock Release stamps, advanced by the housekeeper every
	// clockResolution; it has a cache line of its own, so that its ticks do
	// not evict the fields above from every core.
	_      [64]byte
	coarse atomic.Int64
	_      [56]byte

	// mu guards clients, cached, creating, retiring, orphans, clusters,
	// groups, budgetUsed, freeing, budgetFreed, rng and closeErrs; the fields of
	// client that say so; tenant.in, prev and next; and the Add of a first
	// count to housekeeper, background, pending and building, which must
	// not race with Close's Wait. Nothing holds it across I/O, a callback, or work
	// proportional to tenants; the hot path never takes it.
	mu          sync.Mutex
	clients     map[clientKey]*client // clients being created and cached, by key
	cached      []*client             // cached clients, for drawing LRU victims
	creating    int                   // clients being created
	retiring    map[*client]struct{}  // retired clients not yet disconnected, or still leased
	orphans     map[*client]struct{}  // cached clients without tenants
	clusters    map[string]*cluster   // deployments named by placement, by URI
	groups      map[string]*group     // every client group since New, by name
	budgetUsed  int                   // sockets charged by clients
	freeing     int                   // sockets of clients being disconnected
	budgetFreed chan struct{}         // closed and replaced when budget is freed
	rng         *rand.Rand            // draws LRU victims
	closeErrs   []error               // Disconnect errors of clients closed by Close

	// transMu guards transBusy. Nothing is taken under it.
	transMu   sync.Mutex
	transBusy map[string]int // transient work under way, by tenant ID (ForEach, DoIsolated)

	// pingMu guards pinging. It is taken before mu, never after.
	pingMu  sync.Mutex
	pinging *pingFlight // the ping of PingDeployment's own client, while one runs

	// gatesMu guards gatesToPoke. It is taken under a fair gate's mu, and
	// never held while taking one.
	gatesMu     sync.Mutex
	gatesToPoke []*fairGate // fair gates whose callers wait on slots kept for tenants: see fairGate.poke

	housekeeping atomic.Bool    // the housekeeper runs; set under mu when it starts
	housekeeper  sync.WaitGroup // the housekeeper
	background   sync.WaitGroup // route refreshes
	pending      sync.WaitGroup // one count per published client, until it is disconnected or recycled
	building     sync.WaitGroup // one count per client being created, until it is published or given up
	done         chan struct{}  // closed by Close: stops the housekeeper and budget waits
	bgCtx        context.Context
	stopBg       context.CancelFunc // cancels route refreshes
	cut          context.Context
	cutNow       context.CancelFunc // cuts disconnects short when Close's ctx ends

	created          atomic.Uint64
	recycled         atomic.Uint64
	transients       atomic.Uint64
	slowGrants       atomic.Uint64 // leases the slow path granted, served or not: see Stats.Leases
	misses           atomic.Uint64
	waits            atomic.Uint64
	waiting          atomic.Int64
	waitTime         atomic.Int64
	refused          [numRefusals]atomic.Uint64
	evicted          [numCauses]atomic.Uint64
	expired          atomic.Uint64
	refreshes        atomic.Uint64
	refreshErrors    atomic.Uint64
	disconnects      atomic.Uint64
	disconnectsBusy  atomic.Uint64
	disconnectErrors atomic.Uint64
}

// New returns a Manager for the deployment at uri. It validates the URI and
// options but does no network I/O (a mongodb+srv URI is resolved in DNS by the
// driver, here and at each client creation). Clients are created by
// [Manager.Acquire]. Errors wrap [ErrInvalidOption] and never repeat a value
// from the URI or the client options.
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
	cfg.logger = slog.New(safeHandler{cfg.logger.Handler()})
	clk := cfg.clock
	if clk == nil {
		clk = newRealClock()
	}
	m := &Manager{
		cfg:           cfg,
		clock:         clk,
		tenants:       newTenantMap(),
		counters:      newLeaseCounters(),
		refreshRoutes: cfg.routeTTL > 0 && len(cfg.routers) > 0,
		adaptive:      cfg.adaptiveTarget > 0,
		def:           def,
		hooks:         newHookSet(cfg.hooks),
		poolSize:      *def.opts.MaxPoolSize,
		clients:       make(map[clientKey]*client),
		retiring:      make(map[*client]struct{}),
		orphans:       make(map[*client]struct{}),
		clusters:      make(map[string]*cluster),
		groups:        make(map[string]*group),
		transBusy:     make(map[string]int),
		budgetFreed:   make(chan struct{}),
		rng:           rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		done:          make(chan struct{}),
	}
	m.bgCtx, m.stopBg = context.WithCancel(context.Background())
	m.cut, m.cutNow = context.WithCancel(context.Background())
	m.coarse.Store(clk.now())
	if tc, ok := clk.(tickingClock); ok {
		tc.onAdvance(m.advanceClock)
	}
	if cfg.idleTimeout > 0 {
		m.expiry = newExpiry(cfg.idleTimeout)
	}
	if cfg.logger.Enabled(context.Background(), slog.LevelDebug) {
		cfg.logger.Debug("mongotenant: new manager", "strategy", fmt.Sprintf("%T", cfg.strategy),
			"max_clients", cfg.maxClients, "idle_timeout", cfg.idleTimeout, "pool_size", m.poolSize,
			"max_leases", cfg.maxLeases, "routers", len(cfg.routers), "route_ttl", cfg.routeTTL,
			"budget", cfg.budget, "recycle", cfg.recycle, "init", cfg.init != nil,
			"fair_sharing", cfg.fair, "fair_capacity", cfg.fairCapacity)
	}
	return m, nil
}

// goBackground runs fn on a goroutine that Close waits for and whose ctx
// Close cancels. It returns false if the Manager is closed.
func (m *Manager) goBackground(fn func(ctx context.Context)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return false
	}
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		fn(m.bgCtx)
	}()
	return true
}

// Close stops the Manager. It refuses new acquisitions at once (they fail
// with [ErrClosed]), cancels background route refreshes, and waits until
// every outstanding lease is released and every client is disconnected, or
// until ctx is done. Then it disconnects what is left: operations still
// running on leases fail with a closed-connection error.
//
// Close returns soon after ctx is done: the Disconnects it then starts are
// cancelled at once, and it does not wait for a Router that ignores its ctx
// (that goroutine ends when the Router returns). It returns nil, or ctx's
// error if it cut leases short, joined with any Disconnect errors. A second
// call returns nil at once.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return nil
	}
	m.closed.Store(true)
	close(m.done)
	m.stopBg()
	clients := slices.Clone(m.cached)
	var gone []*client
	for _, c := range clients {
		gone = append(gone, m.retireLocked(c, EvictionClose))
	}
	m.mu.Unlock()
	for _, c := range clients {
		gone = append(gone, m.detachMembers(c)...)
	}
	m.disconnectAll(ctx, gone)

	var err error
	built := make(chan struct{}) // clients being created: their creators disconnect them
	go func() { m.building.Wait(); close(built) }()
	drained := make(chan struct{})
	go func() { m.pending.Wait(); close(drained) }()
	cut := false
	select {
	case <-ctx.Done():
		cut = true
	case <-built:
		select {
		case <-drained:
		case <-ctx.Done():
			cut = true
		}
	}
	if cut {
		err = fmt.Errorf("mongotenant: close: leases or client creations outstanding: %w", ctxError(ctx))
		m.cutNow()
		m.mu.Lock()
		var leased []*client
		for c := range m.retiring {
			if c.state == clientRetired {
				m.claimLocked(c)
				leased = append(leased, c)
			}
		}
		m.mu.Unlock()
		m.disconnectAll(ctx, leased)
		<-drained // bounded: these Disconnects are cut short
	}
	m.housekeeper.Wait()
	background := make(chan struct{})
	go func() { m.background.Wait(); close(background) }()
	select {
	case <-background:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("mongotenant: close: a route refresh is still running: %w", ctxError(ctx))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(append([]error{err}, m.closeErrs...)...)
}

// DatabaseName returns the database tenantID maps to by the naming
// function ([WithDatabaseName]), checked as Acquire checks it. A Router
// may put the tenant's database elsewhere ([Route.Database]). Errors wrap
// [ErrInvalidTenant].
func (m *Manager) DatabaseName(tenantID string) (string, error) { return m.validate(tenantID) }

// tenantAttr is the tenant attribute for log lines at Info and above: present
// only if the user opted in.
func (m *Manager) tenantAttr(id string) slog.Attr {
	if m.cfg.logTenantIDs {
		return slog.String("tenant", id)
	}
	return slog.Attr{}
}
