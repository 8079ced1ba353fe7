package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"unique"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A Route says where and how a tenant is served. The strategy and the
// routers fill it in on the tenant's first Acquire; the Manager keeps it
// while it holds the tenant, and resolves it again after the route TTL, on
// [Manager.Refresh], or after [Manager.Evict].
type Route struct {
	// Cluster is the URI of the deployment holding the tenant's database; ""
	// means the URI given to New. Clients are per cluster.
	Cluster string

	// Group decides which tenants share a client: those with equal Cluster,
	// Group and PoolSize. The strategy sets it: the tenant ID ([Dedicated]),
	// a group number ([Grouped]) or one name for all ([Shared]).
	Group string

	// Database is the tenant's database name, checked like any other.
	Database string

	// PoolSize is the maxPoolSize of the tenant's client.
	PoolSize uint64

	// MaxLeases caps the tenant's concurrent leases, its bulkhead; 0 means no
	// cap. A tenant at its cap waits in Acquire until a lease is released or
	// its ctx ends, then fails with [ErrTenantBusy].
	MaxLeases int

	// Weight is the tenant's share of a client's turns under
	// [WithFairSharing], relative to the other tenants waiting for it: 0 or
	// 1 is one share, 2 twice that. At most 65536.
	Weight int

	// Tier is the tenant's tier, if tiers are in use; reported in TenantStats.
	Tier string

	// Auth, if set, gives the tenant's client its own credentials. A client
	// authenticates once for all its operations, so per-tenant credentials
	// force a client per tenant, whatever the strategy.
	Auth *options.Credential
}

// A Router fills in part of a tenant's Route. Routers run after the
// strategy, in the order of their options, each seeing the route the
// previous ones left. An error fails the Acquire (wrapped in [ErrRoute]) and
// is not cached. A Router is called concurrently for different tenants and
// must be safe for that; it gets the ctx of the Acquire that needs the
// route, or a ctx that [Manager.Close] cancels for a background refresh.
//
// If a Router panics, the panic propagates to the caller whose Acquire or
// Refresh ran it, and nothing is left behind: callers waiting for the same
// tenant try again. A panic in a background refresh is recovered and
// logged at Warn, and the old route is kept.
type Router func(ctx context.Context, tenantID string, r *Route) error

// WithRouter adds a custom Router: the general seam behind [WithTiers],
// [WithPlacement] and [WithTenantAuth]. A nil Router makes New fail.
func WithRouter(r Router) Option { return func(c *config) { c.routers = append(c.routers, r) } }

// WithPlacement places tenants on deployments: cluster returns the URI of
// the deployment for a tenant ("" for the URI given to New). Use it to spread
// tenants over several replica sets or sharded clusters. A nil cluster makes
// New fail.
func WithPlacement(cluster func(ctx context.Context, tenantID string) (string, error)) Option {
	if cluster == nil {
		return WithRouter(nil)
	}
	return WithRouter(func(ctx context.Context, id string, r *Route) error {
		uri, err := cluster(ctx, id)
		r.Cluster = uri
		return err
	})
}

// WithTenantAuth gives each tenant its own credentials, for deployments with
// a database user per tenant. It forces a client per tenant: see
// [Route.Auth]. When a tenant's credentials change (seen at a route refresh),
// the tenant moves to a new client; the old one serves its last leases and
// is disconnected. A nil auth makes New fail.
func WithTenantAuth(auth func(ctx context.Context, tenantID string) (options.Credential, error)) Option {
	if auth == nil {
		return WithRouter(nil)
	}
	return WithRouter(func(ctx context.Context, id string, r *Route) error {
		cred, err := auth(ctx, id)
		r.Auth = &cred
		return err
	})
}

// routeShape is the part of a resolved route that tenants share. It is
// interned, so that a million tenants of one shared client hold one copy.
type routeShape struct {
	key       clientKey
	group     string // Route.Group; key.group differs with per-tenant credentials
	database  string // Route.Database if a Router changed it, else "": the default name is the tenant's own
	maxLeases int32
	weight    int32
	tier      string
}

// resolve runs the strategy and the routers for tenantID, whose default
// database name is name, and checks the result, with the route hooks
// around. Errors wrap ErrRoute or ErrInvalidTenant.
func (m *Manager) resolve(ctx context.Context, tenantID, name string, refresh bool) (s routeShape, err error) {
	if len(m.hooks.routeStart)+len(m.hooks.routeEnd) == 0 {
		return m.route(ctx, tenantID, name)
	}
	start := m.clock.now()
	ctx = m.startHooks("RouteStart", m.hooks.routeStart, ctx, tenantID)
	err = errPanicked
	defer func() {
		e := RouteEvent{TenantID: tenantID, Refresh: refresh, Err: err}
		if err == nil {
			e.Group, e.Tier = s.label(), s.tier
		}
		e.Start, e.Duration = m.span(start)
		endHooks(m, "RouteEnd", m.hooks.routeEnd, ctx, e)
	}()
	return m.route(ctx, tenantID, name)
}

// route runs the strategy and the routers for tenantID and checks the
// result.
func (m *Manager) route(ctx context.Context, tenantID, name string) (routeShape, error) {
	r := Route{
		Group:     m.cfg.strategy.Group(tenantID),
		Database:  name,
		PoolSize:  m.poolSize,
		MaxLeases: m.cfg.maxLeases,
	}
	if len(m.cfg.routers) > 0 {
		rp := new(Route) // only routers make the route escape
		*rp = r
		for _, route := range m.cfg.routers {
			if err := route(ctx, tenantID, rp); err != nil {
				return routeShape{}, fmt.Errorf("%w: %w", ErrRoute, err)
			}
		}
		r = *rp
	}
	if r.Database != name {
		if err := checkDatabaseName(r.Database); err != nil {
			return routeShape{}, err
		}
	}
	if r.PoolSize == 0 || r.MaxLeases < 0 || r.MaxLeases > leaseMask || r.Weight < 0 || r.Weight > maxWeight {
		return routeShape{}, fmt.Errorf("%w: the route has PoolSize %d, MaxLeases %d and Weight %d", ErrRoute, r.PoolSize, r.MaxLeases, r.Weight)
	}
	s := routeShape{
		key:       clientKey{cluster: r.Cluster, group: r.Group, poolSize: r.PoolSize, dedicated: r.Group == tenantID},
		group:     r.Group,
		maxLeases: int32(r.MaxLeases),
		weight:    int32(r.Weight),
		tier:      r.Tier,
	}
	if r.Database != name {
		s.database = r.Database
	}
	if r.Auth != nil {
		cred := *r.Auth                        // the Router's value may change after it returns
		s.key.group = "\x00tenant:" + tenantID // no strategy's group can collide with it
		s.key.auth = &cred
		s.key.dedicated = true
	}
	return s, nil
}

// label is the route's client group for events and metrics: never a
// tenant ID.
func (s routeShape) label() string {
	if s.key.dedicated {
		return DedicatedGroup
	}
	return s.group
}

// setRouteLocked installs a route on t. The caller holds t.mu.
func (t *tenant) setRouteLocked(s routeShape, now int64) {
	t.route = unique.Make(s)
	if t.adapt != nil {
		t.adapt.setCeilingLocked(s)
		t.maxLeases.Store(t.adapt.whole())
	} else {
		t.maxLeases.Store(s.maxLeases)
	}
	t.weight.Store(s.weight)
	t.routedAt.Store(now)
	t.routeVer++
}

// keepCredentialsLocked returns s with t's credentials if they are equal
// by value to the ones s has, so that s names t's client when nothing else
// changed. The caller holds t.mu.
func (t *tenant) keepCredentialsLocked(s routeShape) routeShape {
	old := t.route.Value().key.auth
	if old != nil && s.key.auth != nil && credentialsEqual(old, s.key.auth) {
		s.key.auth = old
	}
	return s
}

// credentialsEqual compares credentials by value. Callbacks compare by
// code pointer: two closures of one function count as equal.
func credentialsEqual(a, b *options.Credential) bool {
	return a.AuthMechanism == b.AuthMechanism && a.AuthSource == b.AuthSource &&
		a.Username == b.Username && a.Password == b.Password && a.PasswordSet == b.PasswordSet &&
		maps.Equal(a.AuthMechanismProperties, b.AuthMechanismProperties) &&
		funcPointer(a.OIDCMachineCallback) == funcPointer(b.OIDCMachineCallback) &&
		funcPointer(a.OIDCHumanCallback) == funcPointer(b.OIDCHumanCallback)
}

func funcPointer(f any) uintptr {
	v := reflect.ValueOf(f)
	if !v.IsValid() || v.IsNil() {
		return 0
	}
	return v.Pointer()
}

// Refresh resolves tenantID's route again now, as after the route TTL. If
// the tenant's client would change (a new pool size, cluster, group or
// credentials), the tenant leaves its client: the next Acquire binds it to
// the new one, and the old one serves its last leases and is disconnected if
// no other tenant uses it. A new lease limit applies at once, to the leases
// already granted too. A tenant the Manager does not hold is resolved afresh
// at its next Acquire, so Refresh returns nil for it.
//
// A Router error wrapping [ErrUnknownTenant] or [ErrTenantSuspended] makes
// the tenant leave its client (counted in Stats.EvictedRoute), here as in
// the background refresh after the route TTL: its leases finish, and its
// next Acquire asks the Routers again.
//
// Errors wrap [ErrRoute], [ErrInvalidTenant] or [ErrClosed]. A panicking
// Router panics here too, leaving the old route in place.
func (m *Manager) Refresh(ctx context.Context, tenantID string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	name, err := m.validate(tenantID)
	if err != nil {
		return err
	}
	t := m.tenants.load(tenantID)
	if t == nil {
		return nil
	}
	return m.refresh(ctx, t, name)
}

// refresh resolves t's route again and applies it.
func (m *Manager) refresh(ctx context.Context, t *tenant, name string) error {
	t.mu.Lock()
	if t.phase == phaseDropped || t.phase == phaseUnrouted {
		t.mu.Unlock()
		return nil // resolved afresh at its next Acquire
	}
	ver := t.routeVer
	t.mu.Unlock()

	s, err := m.resolve(ctx, t.id, name, true)
	if err != nil {
		if gone(err) {
			m.refreshes.Add(1)
			m.unrouteGone(ctx, t, ver)
		}
		return err
	}
	m.refreshes.Add(1)
	t.mu.Lock()
	if t.routeVer != ver || t.phase == phaseDropped || t.phase == phaseUnrouted {
		t.mu.Unlock()
		return nil // changed meanwhile: the newer change stands
	}
	var gone *client
	s = t.keepCredentialsLocked(s)
	old := t.route.Value()
	change := ""
	switch {
	case s == old:
		t.routedAt.Store(m.coarse.Load())
	case s.key == old.key && s.database == old.database:
		t.setRouteLocked(s, m.coarse.Load()) // a new limit, weight or tier on the same client
		t.wakeLocked()
		change = "a new limit or tier"
	default:
		if t.phase == phaseBound {
			gone = m.leaveClientLocked(t, EvictionRoute)
		}
		t.setRouteLocked(s, m.coarse.Load())
		t.wakeLocked()
		change = "another client"
	}
	m.dropIfUnusedLocked(t)
	t.mu.Unlock()
	if change != "" {
		m.cfg.logger.Debug("mongotenant: route changed", "tenant", t.id, "change", change,
			"group", s.group, "tier", s.tier, "pool", s.key.poolSize, "max_leases", s.maxLeases)
	}
	if gone != nil {
		_ = m.disconnect(ctx, gone) // counted and logged
	}
	return nil
}

// unrouteGone forgets the route of t, which a Router said may no longer be
// served, unless it changed since version ver: a newer route (the tenant
// resumed, say) stands.
func (m *Manager) unrouteGone(ctx context.Context, t *tenant, ver uint32) {
	t.mu.Lock()
	if t.routeVer != ver || t.phase == phaseDropped || t.phase == phaseUnrouted {
		t.mu.Unlock()
		return
	}
	c := m.unrouteLocked(t, EvictionRoute)
	t.mu.Unlock()
	m.cfg.logger.Debug("mongotenant: tenant unknown or suspended: evicted", "tenant", t.id)
	if c != nil {
		_ = m.disconnect(ctx, c) // counted and logged
	}
}

// gone reports whether a Router said the tenant may no longer be served.
func gone(err error) bool {
	return errors.Is(err, ErrUnknownTenant) || errors.Is(err, ErrTenantSuspended)
}

// refreshLater resolves t's route again in the background. Release calls
// it once the route is older than the route TTL, off the Acquire path.
func (m *Manager) refreshLater(t *tenant) {
	if !t.refreshing.CompareAndSwap(false, true) {
		return
	}
	if !m.goBackground(func(ctx context.Context) { m.backgroundRefresh(ctx, t) }) {
		t.refreshing.Store(false)
	}
}

func (m *Manager) backgroundRefresh(ctx context.Context, t *tenant) {
	defer t.refreshing.Store(false)
	defer func() {
		if p := recover(); p != nil {
			m.cfg.logger.Warn("mongotenant: a callback panicked in a background route refresh; the old route is kept", m.tenantAttr(t.id))
			m.cfg.logger.Debug("mongotenant: route refresh panic", "tenant", t.id, "panic", fmt.Sprint(p))
			t.routedAt.Store(m.coarse.Load()) // try again after another TTL
			m.refreshErrors.Add(1)
		}
	}()
	err := m.refresh(ctx, t, m.cfg.databaseName(t.id))
	if err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil && !gone(err) {
		m.cfg.logger.Warn("mongotenant: route refresh failed; the old route is kept", m.tenantAttr(t.id), "error", err)
		t.routedAt.Store(m.coarse.Load())
		m.refreshErrors.Add(1)
	}
}
