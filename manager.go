package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/singleflight"
)

// Manager hands out one *mongo.Client per tenant, created on first use,
// cached, and disconnected when evicted, idle or closed. Work goes through a
// [Lease]: a client is never disconnected while a lease on it is live.
//
// Clients counts cached clients and never exceeds MaxClients. A client evicted
// while leased leaves the cache at once and is counted in Stats.Retiring until
// its last lease is released; only such clients hold the number of open
// clients above MaxClients.
//
// A Manager is safe for concurrent use. Create it with [New], end it with
// [Manager.Close].
type Manager struct {
	cfg      config
	base     *options.ClientOptions // merged client options; copied per tenant
	poolSize uint64
	epoch    time.Time // zero of the Manager clock; carries a monotonic reading

	mu              sync.RWMutex // protects the fields below
	tenants         map[string]*tenant
	retiring        map[*tenant]struct{} // evicted, not yet disconnected
	retiredAcquires uint64               // acquires of tenants that left the cache
	closed          bool
	reaping         bool // the idle reaper is running

	creating    singleflight.Group // one client creation per tenant at a time
	pending     sync.WaitGroup     // one count per retiring tenant, until its Disconnect returns
	background  sync.WaitGroup     // the idle reaper
	done        chan struct{}      // closed by Close: stops the reaper
	closeErrsMu sync.Mutex         // protects closeErrs
	closeErrs   []error            // Disconnect errors of clients closed by Close

	created          atomic.Uint64
	misses           atomic.Uint64
	evicted          [numCauses]atomic.Uint64
	disconnects      atomic.Uint64
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
	base, err := baseClientOptions(uri, &cfg)
	if err != nil {
		return nil, err
	}
	return &Manager{
		cfg:      cfg,
		base:     base,
		poolSize: *base.MaxPoolSize,
		epoch:    time.Now(),
		tenants:  make(map[string]*tenant),
		retiring: make(map[*tenant]struct{}),
		done:     make(chan struct{}),
	}, nil
}

// now reads the Manager clock: monotonic nanoseconds since New.
func (m *Manager) now() int64 { return int64(time.Since(m.epoch)) }

func (m *Manager) wallTime(clock int64) time.Time { return m.epoch.Add(time.Duration(clock)) }

// Acquire returns a lease on tenantID's client, creating the client on first
// use. A cached tenant costs no network I/O and no exclusive lock. The lease
// must be released; until then its client stays connected.
//
// Errors wrap [ErrInvalidTenant], [ErrClosed], or ctx's error.
func (m *Manager) Acquire(ctx context.Context, tenantID string) (l *Lease, err error) {
	// Acquire is small enough to inline, so a lease that does not escape the
	// caller stays on the caller's stack: no allocation on the hot path.
	l = new(Lease)
	err = m.acquireInto(ctx, tenantID, &l)
	return l, err
}

// acquireInto leases tenantID's client into *l, or sets *l to nil on error.
func (m *Manager) acquireInto(ctx context.Context, tenantID string, l **Lease) error {
	t, err := m.acquire(ctx, tenantID)
	if err != nil {
		*l = nil
		return err
	}
	(*l).t = t
	return nil
}

// acquire leases tenantID's client: the hot path, then acquireSlow.
func (m *Manager) acquire(ctx context.Context, tenantID string) (*tenant, error) {
	m.mu.RLock()
	t, ok := m.tenants[tenantID]
	if ok {
		t.state.Add(1)
		t.acquires.Add(1)
		m.mu.RUnlock()
		return t, nil
	}
	m.mu.RUnlock()
	return m.acquireSlow(ctx, tenantID)
}

// acquireSlow creates tenantID's client or waits for its creation. The
// creating caller gets its lease under the lock that publishes the client;
// the others lease through the cache and, if the client was evicted again
// before they got to it, go round once more.
func (m *Manager) acquireSlow(ctx context.Context, tenantID string) (*tenant, error) {
	// Validate only here: a cached ID was valid when its client was created.
	dbName, err := m.databaseName(tenantID)
	if err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var mine *tenant // set only when this caller runs the creation
		_, err, _ := m.creating.Do(tenantID, func() (any, error) {
			t, err := m.create(tenantID, dbName)
			mine = t
			return nil, err
		})
		if err != nil {
			return nil, err
		}
		if mine == nil {
			mine = m.tryLease(tenantID)
		}
		if mine != nil {
			m.misses.Add(1)
			return mine, nil
		}
	}
}

func (m *Manager) databaseName(tenantID string) (string, error) {
	if err := m.cfg.validateTenant(tenantID); err != nil {
		if !errors.Is(err, ErrInvalidTenant) {
			err = fmt.Errorf("%w: %w", ErrInvalidTenant, err)
		}
		return "", err
	}
	name := m.cfg.databaseName(tenantID)
	if err := checkDatabaseName(name); err != nil {
		return "", err
	}
	return name, nil
}

// tryLease leases tenantID's cached client, or returns nil if there is none.
func (m *Manager) tryLease(tenantID string) *tenant {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tenants[tenantID]
	if !ok {
		return nil
	}
	t.state.Add(1)
	t.acquires.Add(1)
	return t
}

// create makes tenantID's client and publishes it holding one lease for the
// caller. If another caller published it first, create leases that one.
func (m *Manager) create(tenantID, dbName string) (*tenant, error) {
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if t := m.tryLease(tenantID); t != nil {
		return t, nil
	}
	t := &tenant{m: m, id: tenantID}
	o := *m.base // a shallow copy: each client gets its own PoolMonitor
	o.PoolMonitor = t.poolMonitor(m.base.PoolMonitor)
	client, err := mongo.Connect(&o) // no network I/O: servers are dialled in the background
	if err != nil {
		return nil, fmt.Errorf("mongotenant: create client: %w", err)
	}
	t.client, t.db = client, client.Database(dbName)
	t.created = m.now()
	t.lastUsed.Store(t.created)
	t.state.Store(1)
	t.acquires.Store(1)

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.dropUnpublished(t)
		return nil, ErrClosed
	}
	var victim *tenant
	if m.cfg.maxClients > 0 && len(m.tenants) >= m.cfg.maxClients {
		victim = m.lruVictimLocked()
		if !m.retireLocked(victim, causeLRU) {
			victim = nil // still leased: its last Release disconnects it
		}
	}
	m.tenants[tenantID] = t
	m.startReaperLocked()
	m.mu.Unlock()

	m.created.Add(1)
	m.cfg.logger.Debug("mongotenant: client created", "tenant", tenantID, "database", dbName)
	if victim != nil {
		go m.disconnect(context.Background(), victim)
	}
	return t, nil
}

// dropUnpublished disconnects a client that lost the race with Close. No one
// else has seen it, so this needs no accounting.
func (m *Manager) dropUnpublished(t *tenant) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.disconnectTimeout)
	defer cancel()
	_ = t.client.Disconnect(ctx) // no connection is checked out: nothing waits on the deadline
}

// Do runs fn with tenantID's database under a lease released when fn returns.
// It returns fn's error, or the error of [Manager.Acquire].
func (m *Manager) Do(ctx context.Context, tenantID string, fn func(context.Context, *mongo.Database) error) error {
	t, err := m.acquire(ctx, tenantID)
	if err != nil {
		return err
	}
	l := Lease{t: t}
	defer l.Release()
	return fn(ctx, t.db)
}

// Database returns tenantID's database under a lease that ends when ctx is
// done. Use it with a request-scoped ctx. With a ctx that is never done, such
// as context.Background(), the lease lasts until [Manager.Close]: the client
// is never reaped, and if evicted it stays connected until Close.
func (m *Manager) Database(ctx context.Context, tenantID string) (*mongo.Database, error) {
	t, err := m.acquire(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	l := &Lease{t: t}
	context.AfterFunc(ctx, l.Release)
	return t.db, nil
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
	var idle []*tenant
	for _, t := range m.tenants {
		if m.retireLocked(t, causeClose) {
			idle = append(idle, t)
		}
	}
	m.mu.Unlock()

	for _, t := range idle {
		go m.disconnect(ctx, t)
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
		leased := make([]*tenant, 0, len(m.retiring))
		for t := range m.retiring {
			leased = append(leased, t)
		}
		m.mu.RUnlock()
		for _, t := range leased {
			go m.disconnect(context.Background(), t)
		}
		<-drained
	}
	m.background.Wait()
	m.closeErrsMu.Lock()
	defer m.closeErrsMu.Unlock()
	return errors.Join(append([]error{err}, m.closeErrs...)...)
}
