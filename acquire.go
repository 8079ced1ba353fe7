package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Acquire returns a lease on tenantID's client, creating the client on first
// use. A cached tenant costs no network I/O, no lock and no allocation. The
// lease must be released; until then its client stays connected.
//
// ctx bounds only the wait for the lease (a busy tenant, its turn at a
// fairly shared client, the budget, another caller resolving the tenant's
// route or creating its client); the lease
// outlives it. To wait briefly for a busy tenant and then do longer work,
// acquire with a short ctx.
//
// Errors wrap [ErrInvalidTenant], [ErrTenantBusy], [ErrBudgetExceeded],
// [ErrRoute], [ErrCreateClient], [ErrInit], [ErrClosed], or ctx's error. An
// error from waiting wraps ctx's error and its cause, so errors.Is(err,
// context.DeadlineExceeded) tells a caller that timed out from one that gave
// up, whatever cause the ctx carries. Another caller's ctx never fails this
// one: if the caller it waited for gives up, it tries again.
//
// A panic in a user callback (a Router, the Strategy, the tenant validator,
// the database naming function or the init hook) propagates to the caller
// whose Acquire ran it, after the Manager has undone everything that
// caller started; callers waiting for that work try again.
func (m *Manager) Acquire(ctx context.Context, tenantID string) (l *Lease, err error) {
	// Acquire is small enough to inline, so a lease that does not escape the
	// caller stays on the caller's stack: no allocation on the hot path.
	l = new(Lease)
	if err = m.acquire(ctx, tenantID, l); err != nil {
		l = nil
	}
	return l, err
}

// Do runs fn with tenantID's database under a lease released when fn
// returns, or panics. It returns fn's error, or the error of
// [Manager.Acquire].
func (m *Manager) Do(ctx context.Context, tenantID string, fn func(context.Context, *mongo.Database) error) error {
	var l Lease
	if err := m.acquire(ctx, tenantID, &l); err != nil {
		return err
	}
	defer l.Release()
	return fn(ctx, l.Database())
}

// Database returns tenantID's database under a lease that is released when
// ctx is done. Use it with a request-scoped ctx. A ctx that can never end
// (ctx.Done() returns nil, as for context.Background()) would hold the lease
// until Close, so Database refuses it with an error wrapping
// [ErrInvalidOption]; use [Manager.Acquire] for leases you release yourself.
// Other errors are those of Acquire.
func (m *Manager) Database(ctx context.Context, tenantID string) (*mongo.Database, error) {
	if ctx.Done() == nil {
		return nil, fmt.Errorf("%w: Database needs a ctx that ends; use Acquire and Release", ErrInvalidOption)
	}
	l := new(Lease)
	if err := m.acquire(ctx, tenantID, l); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, l.Release)
	return l.Database(), nil
}

// acquire leases tenantID's client into l: the hot path, then acquireSlow.
//
// The hot path reads the tenant's word, then its binding, and takes the
// lease with a compare-and-swap on the word: the binding changes only while
// the word's ready bit is clear, and every change bumps the word, so a
// successful swap proves the binding read was current.
func (m *Manager) acquire(ctx context.Context, tenantID string, l *Lease) error {
	t := m.tenants.load(tenantID)
	if t != nil {
		for w := t.word.Load(); t.admits(w) && !m.closed.Load(); w = t.word.Load() {
			b := t.cur.Load()
			if t.word.CompareAndSwap(w, w+1) {
				if b.gate != nil && !b.gate.tryTake() {
					// The client is at its fair share: wait for a turn
					// on the slow path, with the lease held.
					t, b, cl, err := m.acquireSlow(ctx, tenantID, t, b)
					return l.grant(m, t, b, cl, err)
				}
				cl := m.counters.cell()
				cl.hits.Add(1)
				return l.grant(m, t, b, cl, nil)
			}
		}
	}
	// The slow path does not see l: it would make every lease escape.
	t, b, cl, err := m.acquireSlow(ctx, tenantID, t, nil)
	return l.grant(m, t, b, cl, err)
}

// acquisition is one Acquire on the slow path.
type acquisition struct {
	m      *Manager
	ctx    context.Context
	id     string
	dbName string     // the tenant's default database name
	t      *tenant    // the lease: its tenant,
	b      *binding   // binding,
	cell   *leaseCell // and the cell that counted it

	miss      bool  // it resolved, bound, created, initialized or waited
	admitted  bool  // its lease has its turn at the client's fair gate, or needs none
	waited    bool  // it waited for something
	waitStart int64 // clock when its current wait began
	waitTime  int64 // time it spent waiting, ns
}

// errDropped sends an acquisition back to the tenant map: the tenant it
// held was dropped before it could take it.
var errDropped = errors.New("mongotenant: tenant dropped")

// errRouteChanged sends an acquisition round again: the tenant's route
// changed while it was binding the tenant.
var errRouteChanged = errors.New("mongotenant: route changed")

// acquireSlow takes the tenant through whatever it lacks, in order:
// validate → route → bind or create → init → lease → turn at the client's
// fair gate. found is the tenant the hot path found, or nil; leased is the
// binding on which the hot path took a lease for found but found no turn
// free at its gate, or nil.
func (m *Manager) acquireSlow(ctx context.Context, tenantID string, found *tenant, leased *binding) (*tenant, *binding, *leaseCell, error) {
	a := &acquisition{m: m, ctx: ctx, id: tenantID}
	if leased != nil {
		a.t, a.b = found, leased
	}
	if m.hooks.acquiring() {
		return a.traced(found)
	}
	err := a.run(found)
	a.account(err) // not reached if a callback panicked: such a call is neither served nor refused
	return a.t, a.b, a.cell, err
}

// traced is acquireSlow with the acquisition hooks around it. A callback
// that panics through the acquisition ends it with errPanicked.
func (a *acquisition) traced(found *tenant) (_ *tenant, _ *binding, _ *leaseCell, err error) {
	m := a.m
	start := m.clock.now()
	a.ctx = m.startHooks("AcquireStart", m.hooks.acquireStart, a.ctx, a.id)
	err = errPanicked
	defer func() {
		e := AcquireEvent{TenantID: a.id, Err: err, Waited: a.waited, Wait: time.Duration(a.waitTime)}
		switch {
		case err == errPanicked:
			e.Reason = "panic"
		case err != nil:
			e.Reason = refusalOf(err, a.ctx.Err() != nil).String()
		default:
			e.Group, e.Hit = a.b.c.group(), !a.miss
		}
		e.Start, e.Duration = m.span(start)
		endHooks(m, "AcquireEnd", m.hooks.acquireEnd, a.ctx, e)
	}()
	err = a.run(found)
	a.account(err)
	return a.t, a.b, a.cell, err
}

// errPanicked is what hooks see of an acquisition or an init hook through
// which a user callback panicked.
var errPanicked = errors.New("mongotenant: a callback panicked")

func (a *acquisition) run(t *tenant) error {
	if a.b != nil { // the hot path leased t: only the turn is missing
		a.miss = true
		a.cell = a.m.counters.cell()
		a.m.slowGrants.Add(1)
	} else if err := a.lease(t); err != nil {
		return err
	}
	for !a.admitted {
		err := a.admit(a.b.gate)
		if err == nil && genOf(a.t.word.Load()) == a.b.gen {
			a.admitted = true
			return nil
		}
		// No turn (ctx, Close), or the tenant left the client while its
		// caller waited for a turn there (Evict, Forget, a new route, a
		// suspension): give the lease back, with the turn if it came, and
		// in the second case go round again, as a caller waiting at the
		// bulkhead does.
		t = a.t
		a.admitted = err == nil
		a.giveBack(a.t, a.b)
		a.t, a.b, a.cell, a.admitted = nil, nil, nil, false
		if err != nil && err != errMoved {
			return err
		}
		if err := a.lease(t); err != nil {
			return err
		}
	}
	return nil
}

// lease takes the acquisition to a lease on t's client, through whatever
// t lacks.
func (a *acquisition) lease(t *tenant) (err error) {
	if a.m.closed.Load() {
		return ErrClosed
	}
	if a.dbName, err = a.m.validate(a.id); err != nil {
		return err
	}
	if t == nil {
		t = a.m.addTenant(a.id) // the hot path just missed: do not look again
	}
	for {
		if err = a.on(t); err != errDropped {
			return err
		}
		if t = a.m.tenants.load(a.id); t == nil {
			t = a.m.addTenant(a.id)
		}
	}
}

// validate checks an untrusted tenant ID, and the database name it maps
// to, before anything else is done with it. It returns the name.
func (m *Manager) validate(tenantID string) (string, error) {
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

// addTenant adds a tenant for tenantID to the map, or returns the one
// another caller added meanwhile.
func (m *Manager) addTenant(tenantID string) *tenant {
	m.nTenants.Add(1)    // before the housekeeper check: see stopHousekeeperIfIdle
	m.startHousekeeper() // before reading the coarse clock: it sets the clock if it stood still
	now := m.coarse.Load()
	t := &tenant{
		id:   strings.Clone(tenantID), // the caller's string may pin a whole request buffer
		hash: m.tenants.hash(tenantID),
	}
	if m.cfg.adaptiveTarget > 0 {
		t.adapt = newAdaptiveLimit()
	}
	t.lastUsed.Store(now)
	if got := m.tenants.insert(t); got != t {
		m.nTenants.Add(-1)
		return got
	}
	if m.expiry != nil {
		m.expiry.add(t, now+int64(m.cfg.idleTimeout))
	}
	return t
}

// on takes t from wherever it is to a lease in a.lease. Each turn of its
// loop holds t.mu, decides, and either finishes or leads or waits for one
// step; a step that leads unlocks t.mu while it calls out and locks it
// again before returning.
func (a *acquisition) on(t *tenant) (err error) {
	m := a.m
	t.mu.Lock()
	if t.phase == phaseDropped {
		t.mu.Unlock()
		return errDropped
	}
	t.refs++
	var queued *bulkheadWaiter
	leading := false // true while a step leads work on t, with t.mu unlocked
	defer func() {
		if leading { // the step panicked: end its work, and its waiters look again
			t.mu.Lock()
			t.endWorkLocked(errRetry)
		}
		if queued != nil {
			t.leaveQueueLocked(queued)
		}
		t.refs--
		m.dropIfUnusedLocked(t)
		t.mu.Unlock()
	}()

	for {
		if m.closed.Load() {
			return ErrClosed
		}
		if t.work != workNone {
			if err := a.await(t); err != nil {
				return err
			}
			continue
		}
		var b *binding
		switch t.phase {
		case phaseUnrouted:
			leading = true
			err = a.resolve(t)
			leading = false
			if err != nil {
				return err
			}
			continue
		case phaseRouted:
			leading = true
			b, err = a.bind(t)
			leading = false
			if err == errRouteChanged {
				continue
			}
			if err != nil {
				return err
			}
			if b == nil {
				continue // bound, but the bulkhead is full: queue below
			}
		case phaseBound:
			if t.firstInLineLocked(queued) {
				b = a.grantLocked(t)
			}
			if b == nil {
				if queued == nil {
					// Look once more with the waiters bit set: a lease
					// released before it was set woke nobody.
					queued = t.enqueueLocked()
					continue
				}
				if err := a.awaitTurn(t, queued); err != nil {
					return err
				}
				continue
			}
		}
		if queued != nil {
			t.leaveQueueLocked(queued) // after the grant: the next in line sees it
			queued = nil
		}
		if m.cfg.init != nil && !t.initDone {
			leading = true
			err = a.initialize(t, b)
			leading = false
			if err != nil {
				return err
			}
		}
		a.t, a.b = t, b
		return nil
	}
}

// grantLocked takes a lease on t's binding for the slow path if the
// bulkhead allows, and returns nil if it does not; it takes a turn at the
// binding's fair gate if one is free, and otherwise leaves the acquisition
// to wait for one (a.admitted false). A lease that needed nothing the hot
// path lacks counts as a hit, the others as slow grants (Misses, once
// served). The caller holds t.mu.
func (a *acquisition) grantLocked(t *tenant) *binding {
	b := t.tryGrantLocked()
	if b == nil {
		return nil
	}
	a.admitted = b.gate == nil || b.gate.tryTake()
	if !a.admitted {
		a.miss = true // it will wait for its turn
	}
	a.cell = a.m.counters.cell()
	if a.miss || (a.m.cfg.init != nil && !t.initDone) {
		a.m.slowGrants.Add(1)
	} else {
		a.cell.hits.Add(1)
	}
	return b
}

// await waits for the work another caller leads on t: its route, its
// client or its init. Called and returns with t.mu held.
func (a *acquisition) await(t *tenant) error {
	if t.flight == nil {
		t.flight = newFlight()
	}
	f, what := t.flight, t.work.String()
	t.mu.Unlock()
	a.startWait()
	err := f.wait(a.ctx, a.m.done, what)
	a.endWait()
	t.mu.Lock()
	if err == errRetry || err == errRouteChanged {
		return nil
	}
	return err
}

// awaitTurn waits in t's bulkhead queue until it is woken or ctx ends.
// Called and returns with t.mu held.
func (a *acquisition) awaitTurn(t *tenant, w *bulkheadWaiter) error {
	limit := t.maxLeases.Load()
	t.mu.Unlock()
	a.startWait()
	defer a.endWait()
	select {
	case <-w.wake:
		t.mu.Lock()
		return nil
	case <-a.m.done:
		t.mu.Lock()
		return ErrClosed
	case <-a.ctx.Done():
		t.mu.Lock()
		return fmt.Errorf("%w (%d): %w", ErrTenantBusy, limit, ctxError(a.ctx))
	}
}

// resolve, bind and initialize each lead one step of work on t: called
// with t.mu held, they unlock it while they call out and lock it again
// before they return. If a callback panics they return nothing and leave
// t.mu unlocked; on ends their work.

// resolve leads the resolution of t's route.
func (a *acquisition) resolve(t *tenant) error {
	m := a.m
	t.work = workResolving
	ver := t.routeVer
	t.mu.Unlock()
	a.miss = true
	s, err := m.resolve(a.ctx, t.id, a.dbName, false)

	t.mu.Lock()
	if err == nil && t.routeVer == ver && t.phase == phaseUnrouted {
		t.setRouteLocked(s, m.coarse.Load())
		t.phase = phaseRouted
	}
	t.endWorkLocked(err)
	return err
}

// bind leads the binding of t to the client for its route, creating the
// client if no tenant has. It returns the binding with a lease taken for
// the caller, or nil if the bulkhead had no room.
func (a *acquisition) bind(t *tenant) (*binding, error) {
	t.work = workBinding
	ver, s := t.routeVer, t.route.Value()
	t.mu.Unlock()
	a.miss = true
	b, err := a.m.bind(a, t, ver, s)

	t.mu.Lock()
	t.endWorkLocked(err) // errRouteChanged: waiters look again
	return b, err
}

// bind attaches t to the cached client for key s.key, waits for the one
// being created, or creates it. t.mu is not held.
func (m *Manager) bind(a *acquisition, t *tenant, ver uint32, s routeShape) (*binding, error) {
	for {
		m.mu.Lock()
		if m.closed.Load() {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		c := m.clients[s.key]
		switch {
		case c == nil:
			c = newClient(m, s.key)
			m.clients[s.key] = c
			m.creating++
			m.building.Add(1)
			victims := m.capVictimsLocked() // now, so that a first Acquire takes m.mu twice
			m.mu.Unlock()
			defer m.building.Done()
			return m.create(a, t, ver, c, victims)
		case c.state == clientCreating:
			if c.flight == nil {
				c.flight = newFlight()
			}
			f := c.flight
			m.mu.Unlock()
			a.startWait()
			err := f.wait(a.ctx, m.done, "the tenant's client")
			a.endWait()
			if err != nil && err != errRetry {
				return nil, err
			}
		default:
			m.mu.Unlock()
			if b, err := m.attach(a, t, ver, c); err != errStale {
				return b, err
			}
		}
	}
}

// errStale sends bind round again: the client it found left the cache.
var errStale = errors.New("mongotenant: client left the cache")

// attach binds t to cached client c, taking a lease for the caller if the
// bulkhead allows.
func (m *Manager) attach(a *acquisition, t *tenant, ver uint32, c *client) (*binding, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.routeVer != ver || t.phase != phaseRouted {
		return nil, errRouteChanged
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed.Load():
		return nil, ErrClosed
	case c.state != clientCached:
		return nil, errStale
	}
	return m.attachLocked(a, t, c), nil
}

// attachLocked binds t to c and, if the bulkhead allows and nobody queues
// before the caller, takes a lease for it. The caller holds t.mu and m.mu.
func (m *Manager) attachLocked(a *acquisition, t *tenant, c *client) *binding {
	m.linkLocked(t, c)
	name := t.route.Value().database
	if name == "" {
		name = a.dbName
	}
	b := &binding{c: c, name: name, gen: genOf(t.word.Load()), gate: c.gate}
	if c.gate != nil {
		b.left = make(chan struct{})
	}
	t.cur.Store(b)
	t.phase = phaseBound
	var granted *binding
	if t.queue == nil {
		granted = a.grantLocked(t) // before the hot path opens: nobody else can take the room
	}
	if m.cfg.init == nil || t.initDone {
		t.setReadyLocked()
	}
	return granted
}

// create leads the creation of client c for t's route: it settles the
// victims evicted to make room at the cap, makes room in the budget,
// recycles an evicted client or connects a new one, and publishes it with
// t bound.
func (m *Manager) create(a *acquisition, t *tenant, ver uint32, c *client, victims []*client) (b *binding, err error) {
	published := false
	v := m.settle(victims, c) // a victim to recycle, held, or nil
	defer func() {
		if !published {
			m.abandonCreate(c, err)
			if v != nil {
				m.letGo([]*client{v})
			}
		}
	}()
	cl, err := m.clusterFor(c.key.cluster)
	if err != nil {
		return nil, err
	}
	c.cost = cl.cost(c.key.poolSize)
	if v == nil && m.cfg.budget > 0 {
		if v, err = m.reserve(a, c); err != nil {
			return nil, err
		}
	}
	if v != nil {
		from, cause := v.group(), v.cause
		adopted := m.adopt(c, v)
		v = nil // adopted, or let go by adopt
		if !adopted {
			return nil, ErrClosed
		}
		if len(m.hooks.recycled) > 0 {
			e := ClientEvent{Group: c.group(), TenantID: t.id, PoolSize: c.key.poolSize, Cause: cause, From: from}
			e.Start = m.clock.wall(m.clock.now())
			endHooks(m, "ClientRecycled", m.hooks.recycled, a.ctx, e)
		}
	} else {
		start := m.clock.now()
		c.mc, c.pool, err = m.connect(cl, c)
		if len(m.hooks.created) > 0 {
			e := ClientEvent{Group: c.group(), TenantID: t.id, PoolSize: c.key.poolSize, Err: err}
			e.Start, e.Duration = m.span(start)
			endHooks(m, "ClientCreated", m.hooks.created, a.ctx, e)
		}
		if err != nil {
			return nil, err
		}
		m.created.Add(1)
	}
	b, err = m.publish(a, t, ver, c)
	published = true
	if err != ErrClosed {
		m.cfg.logger.Debug("mongotenant: client created", "group", c.key.group, "pool", c.key.poolSize)
	}
	return b, err
}

// publish puts c, connected, in the cache, binds t to it if its route is
// still the one c was made for, and evicts to stay within the cap if
// creations raced past it.
func (m *Manager) publish(a *acquisition, t *tenant, ver uint32, c *client) (*binding, error) {
	var b *binding
	var victims []*client
	err := func() error {
		t.mu.Lock()
		defer t.mu.Unlock()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.creating--
		if m.closed.Load() {
			delete(m.clients, c.key)
			c.state = clientClosed
			c.flight.finish(ErrClosed)
			c.flight = nil
			return ErrClosed
		}
		c.flight.finish(nil)
		c.flight = nil
		c.created = m.coarse.Load() // the clock Release stamps, so that LastUsed never precedes it
		m.pending.Add(1)
		c.state = clientCached
		c.pins = 1
		m.cacheLocked(c)
		if t.routeVer == ver && t.phase == phaseRouted {
			b = m.attachLocked(a, t, c)
		} else {
			m.orphanLocked(c)
		}
		for m.cfg.maxClients > 0 && len(m.cached) > m.cfg.maxClients {
			v := m.victimLocked(false, c)
			if v == nil {
				break
			}
			v.pins++ // held until its tenants are detached, below
			m.retireLocked(v, EvictionLRU)
			victims = append(victims, v)
		}
		if t.phase != phaseBound {
			return errRouteChanged
		}
		return nil
	}()
	if err == ErrClosed {
		m.dropUnpublished(c)
		return nil, err
	}
	m.letGo(victims)
	return b, err
}

// abandonCreate undoes the creation of c after a failure or a panic: it
// leaves the Manager's books, and waiters for it look again or share err.
func (m *Manager) abandonCreate(c *client, err error) {
	m.mu.Lock()
	if m.clients[c.key] == c {
		delete(m.clients, c.key)
	}
	m.creating--
	if err == nil {
		err = errRetry // a callback panicked
	}
	c.flight.finish(err)
	c.flight = nil
	c.state = clientClosed
	m.mu.Unlock()
	m.dropUnpublished(c)
}

// initialize leads the init hook for t with lease b, held for the caller.
// A hook that fails or panics leaves no lease and does not mark t
// initialized.
func (a *acquisition) initialize(t *tenant, b *binding) error {
	m := a.m
	t.work = workInit
	ver := t.routeVer
	t.mu.Unlock()
	a.miss = true
	ctx, start := a.ctx, m.clock.now()
	if len(m.hooks.initStart) > 0 {
		ctx = m.startHooks("InitStart", m.hooks.initStart, ctx, t.id)
	}
	err := errPanicked
	defer func() {
		if err == errPanicked { // the init hook panicked; t.mu is not held
			a.giveBack(t, b)
			a.initEnd(ctx, b, start, err)
		}
	}()
	if err = m.cfg.init(ctx, t.id, b.database()); err != nil {
		err = fmt.Errorf("%w: %w", ErrInit, err)
		a.giveBack(t, b)
	}
	a.initEnd(ctx, b, start, err)

	t.mu.Lock()
	if err == nil && t.routeVer == ver {
		t.initDone = true
		if t.phase == phaseBound {
			t.setReadyLocked()
		}
	}
	t.endWorkLocked(err)
	return err
}

// giveBack ends the lease on b the acquisition holds for t, and its turn
// at b's fair gate if it has one.
func (a *acquisition) giveBack(t *tenant, b *binding) {
	if a.admitted {
		a.m.release(t, b, a.cell)
	} else {
		a.m.unlease(t, b, a.cell)
	}
}

// initEnd runs the InitEnd hooks.
func (a *acquisition) initEnd(ctx context.Context, b *binding, start int64, err error) {
	if len(a.m.hooks.initEnd) == 0 {
		return
	}
	e := InitEvent{TenantID: a.id, Group: b.c.group(), Err: err}
	e.Start, e.Duration = a.m.span(start)
	endHooks(a.m, "InitEnd", a.m.hooks.initEnd, ctx, e)
}

// startWait and endWait bracket each wait of the acquisition, for Stats:
// Waiting counts it while it lasts, and its time adds to WaitDuration.
func (a *acquisition) startWait() {
	a.miss, a.waited = true, true
	a.waitStart = a.m.clock.now()
	a.m.waiting.Add(1)
}

func (a *acquisition) endWait() {
	a.m.waiting.Add(-1)
	a.waitTime += a.m.clock.now() - a.waitStart
}

// account counts the acquisition in Stats.
func (a *acquisition) account(err error) {
	m := a.m
	if a.waited {
		m.waits.Add(1)
		m.waitTime.Add(a.waitTime)
	}
	switch {
	case err != nil:
		m.refused[refusalOf(err, a.ctx.Err() != nil)].Add(1)
	case a.miss:
		m.misses.Add(1)
	}
}
