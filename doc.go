// Package mongotenant gives every tenant of a service its own MongoDB
// database through its own *mongo.Client, created on first use, cached,
// capped, and disconnected when idle, without ever closing a client that is
// still in use.
//
// # Leases
//
// All work goes through a lease. [Manager.Acquire] returns a [Lease] on the
// tenant's client; [Lease.Release] ends it. [Manager.Do] wraps the two around
// a function, and [Manager.Database] ties the lease to a request context.
//
//	m, err := mongotenant.New("mongodb://db.internal:27017/",
//		mongotenant.WithMaxClients(500),
//		mongotenant.WithIdleTimeout(10*time.Minute))
//	...
//	defer m.Close(ctx)
//
//	err = m.Do(ctx, tenantID, func(ctx context.Context, db *mongo.Database) error {
//		_, err := db.Collection("posts").InsertOne(ctx, post)
//		return err
//	})
//
// Acquiring a cached tenant takes a read lock and an atomic add: no network
// I/O, no allocation. The Manager never pings a cached client: the driver's
// own monitor reconnects it after a failure.
//
// # Eviction
//
// A client leaves the cache when the LRU cap or the connection budget needs
// room (least recently used unleased client first), when all its tenants
// have been idle for the idle timeout, when its last tenant is evicted
// ([Manager.Evict]) or moves to another route, or at [Manager.Close]. It
// leaves the cache at once, so the tenant's next Acquire binds to a fresh
// client, but it is disconnected only after its last lease is released.
// Disconnect never runs under a Manager lock.
//
// # Strategies, tiers and limits
//
// A [Router] chain decides each tenant's [Route]: which client it shares
// ([WithStrategy]: [Dedicated], [Grouped], [Shared]), its pool size and
// lease limit ([WithTiers], [WithMaxLeases]), its deployment
// ([WithPlacement]) and credentials ([WithTenantAuth]). Routes are cached
// and refreshed after [WithRouteTTL] or by [Manager.Refresh].
// [WithConnectionBudget] caps the sockets all clients may hold, and
// [PlanCapacity] sizes all of this from a server's connection limit.
//
// # Tenant IDs
//
// Tenant IDs usually come from requests and are untrusted. Before a client is
// created the ID is checked ([ValidateTenantID] by default) and so is the
// database name it maps to; failures wrap [ErrInvalidTenant] and cost no
// round trip to the server.
//
// # Connections
//
// Every client holds monitoring sockets of its own, one per server in the
// "poll" monitoring mode the Manager selects by default, plus up to its pool
// size ([DefaultPoolSize]) per server. Size MaxClients with that in mind.
//
// # Observability
//
// [Manager.Stats] returns a [Stats] snapshot, like database/sql's DBStats;
// [Manager.TenantStats] adds per-tenant pool figures derived from the
// driver's pool events. Logs go through log/slog and are off by default.
//
// # Testing
//
// The nested module github.com/mongotenant/mongotenant/mongotest starts a
// real server for integration tests: an embedded FerretDB by default, a
// MongoDB container, or the server at MONGODB_URI.
package mongotenant
