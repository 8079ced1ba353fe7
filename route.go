package mongotenant

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A Route says where and how a tenant is served. Routers fill it in on the
// tenant's first Acquire; the Manager caches it, and re-resolves it after the
// route TTL or on [Manager.Refresh].
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

	// Tier is the tenant's tier, if tiers are in use; reported in TenantStats.
	Tier string

	// Auth, if set, gives the tenant's client its own credentials. A client
	// authenticates once for all its operations, so per-tenant credentials
	// force a client per tenant, whatever the strategy.
	Auth *options.Credential
}

// A Router fills in part of a tenant's Route. Routers run in the order of
// their options, each seeing the route the previous ones left; errors fail
// the Acquire and are not cached. A Router is called concurrently for
// different tenants and must be safe for that.
type Router func(ctx context.Context, tenantID string, r *Route) error

// WithRouter adds a custom Router: the general seam behind [WithStrategy],
// [WithTiers], [WithPlacement] and [WithTenantAuth].
func WithRouter(r Router) Option { return func(c *config) { c.routers = append(c.routers, r) } }

// WithPlacement places tenants on deployments: cluster returns the URI of
// the deployment for a tenant ("" for the URI given to New). Use it to spread
// tenants over several replica sets or sharded clusters.
func WithPlacement(cluster func(ctx context.Context, tenantID string) (string, error)) Option {
	return WithRouter(func(ctx context.Context, id string, r *Route) error {
		uri, err := cluster(ctx, id)
		r.Cluster = uri
		return err
	})
}

// WithTenantAuth gives each tenant its own credentials, for deployments with
// a database user per tenant. It forces a client per tenant: see
// [Route.Auth].
func WithTenantAuth(auth func(ctx context.Context, tenantID string) (options.Credential, error)) Option {
	return WithRouter(func(ctx context.Context, id string, r *Route) error {
		cred, err := auth(ctx, id)
		r.Auth = &cred
		return err
	})
}

// resolve runs the routers for tenantID and checks the result.
func (m *Manager) resolve(ctx context.Context, tenantID string) (Route, clientKey, error) {
	if err := m.cfg.validateTenant(tenantID); err != nil {
		if !errors.Is(err, ErrInvalidTenant) {
			err = fmt.Errorf("%w: %w", ErrInvalidTenant, err)
		}
		return Route{}, clientKey{}, err
	}
	r := Route{
		Group:     tenantID,
		Database:  m.cfg.databaseName(tenantID),
		PoolSize:  m.poolSize,
		MaxLeases: m.cfg.maxLeases,
	}
	for _, route := range m.cfg.routers {
		if err := route(ctx, tenantID, &r); err != nil {
			return Route{}, clientKey{}, fmt.Errorf("mongotenant: route: %w", err)
		}
	}
	if err := checkDatabaseName(r.Database); err != nil {
		return Route{}, clientKey{}, err
	}
	if r.PoolSize == 0 || r.MaxLeases < 0 {
		return Route{}, clientKey{}, fmt.Errorf("%w: route with PoolSize %d, MaxLeases %d", ErrInvalidOption, r.PoolSize, r.MaxLeases)
	}
	key := clientKey{cluster: r.Cluster, group: r.Group, poolSize: r.PoolSize}
	if r.Auth != nil {
		key.group = "\x00tenant:" + tenantID // no strategy's group can collide with it
	}
	return r, key, nil
}

// Refresh resolves tenantID's route again now, as after the route TTL. If
// the route changed (a new tier, cluster or group), the tenant moves to the
// matching client; a client left with no tenants is disconnected after its
// last lease. Leases granted before the change keep their client and count
// against the old bulkhead until released.
func (m *Manager) Refresh(ctx context.Context, tenantID string) error {
	r, key, err := m.resolve(ctx, tenantID)
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	old := m.tenants[tenantID]
	if old == nil {
		m.mu.Unlock()
		return nil // resolved afresh at its next Acquire
	}
	if old.key == key && old.route.MaxLeases == r.MaxLeases && old.route.Tier == r.Tier && old.route.Database == r.Database {
		old.routed.Store(m.now())
		m.mu.Unlock()
		return nil
	}
	t := m.newTenantLocked(tenantID, r, key)
	if old.route.MaxLeases == r.MaxLeases {
		t.sem = old.sem // the same bulkhead counts leases from before the change
	}
	m.tenants[tenantID] = t
	idle := m.retireRecordLocked(old, causeRoute)
	m.mu.Unlock()
	if idle != nil {
		_ = m.disconnect(ctx, idle) // counted and logged
	}
	return nil
}

// refreshLater re-resolves t's route in the background once it is older
// than the route TTL. Release calls it, off the Acquire path.
func (m *Manager) refreshLater(t *tenant, now int64) {
	if now-t.routed.Load() < int64(m.cfg.routeTTL) || !t.refreshing.CompareAndSwap(false, true) {
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.background.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.disconnectTimeout)
		defer cancel()
		if err := m.Refresh(ctx, t.id); err != nil && !errors.Is(err, ErrClosed) {
			m.cfg.logger.Warn("mongotenant: route refresh failed; keeping the old route", m.tenantAttr(t.id), "error", err)
			t.routed.Store(m.now()) // try again after another TTL
		}
		t.refreshing.Store(false)
	}()
}
