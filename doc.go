// Package mongotenant gives every tenant of a service its own MongoDB
// database through its own *mongo.Client (or one shared with a group of
// tenants), created on first use, cached, capped, and disconnected when
// idle, without ever closing a client that is still in use.
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
// Acquiring a cached tenant is a lock-free lookup and one compare-and-swap on
// the tenant's own state: no lock, no network I/O, no allocation, and no
// memory that acquisitions of other tenants write. The Manager never pings a
// cached client: the driver's own monitor reconnects it after a failure.
//
// # Tenants and clients
//
// What belongs to a tenant ID (its route, bulkhead, lease count, init state)
// lives once per ID for as long as a client, a lease or a caller refers to
// it. What belongs to the tenant's client (the client and the database
// handle) is separate, so that a tenant can move to another client, after an
// eviction or a route change, without losing count of the leases it holds
// on the old one.
//
// # Eviction
//
// A client leaves the cache when the client cap or the connection budget
// needs room (the least recently used unleased client of a random draw),
// when all its tenants have been idle for the idle timeout, when its last
// tenant is evicted ([Manager.Evict], [Manager.Forget]) or moves to another
// route, or at [Manager.Close]. It leaves the cache at once, but it is
// disconnected only after its last lease is released; an unleased client
// evicted to make room may instead be recycled for the new tenant
// ([WithClientRecycling]). Disconnect never runs under a Manager lock.
//
// # Strategies, tiers and limits
//
// A [Strategy] names each tenant's client group ([Dedicated], [Grouped],
// [Shared]); [Router] functions then fill in the rest of its [Route]: pool
// size and lease limit ([WithTiers], [WithMaxLeases]), deployment
// ([WithPlacement]) and credentials ([WithTenantAuth]). Routes are cached
// and refreshed after [WithRouteTTL] or by [Manager.Refresh].
// [WithConnectionBudget] caps the sockets all clients may hold, and
// [PlanCapacity] sizes all of this from a server's connection limit.
//
// # Untrusted input and user callbacks
//
// Tenant IDs usually come from requests and are untrusted. The ID is
// checked ([ValidateTenantID] by default), and so is the database name it
// maps to, before anything else is done with it; failures wrap
// [ErrInvalidTenant] and cost no lock and no round trip to the server.
//
// User callbacks (routers, the strategy, the validator, the naming
// function, the init hook, the log handler) may panic or block. A panic
// propagates to the caller whose call ran the callback and leaves no state
// behind; callers waiting for that work try again (a log handler's panic
// is recovered). Routers and the init hook get their caller's ctx and
// should return when it ends; until a blocked callback returns it holds up
// only its caller: callers waiting for the same work give up with their
// own ctx, no lock is held, and Close does not wait for it.
//
// # Errors
//
// Every error wraps an exported sentinel or the ctx's error, and none
// repeats a value from the URI or the client options. See [ErrRoute],
// [ErrCreateClient], [ErrInit] and the others in errors.go.
//
// # Connections
//
// Every client holds monitoring sockets of its own, one per server in the
// "poll" monitoring mode the Manager selects by default, plus up to its pool
// size ([DefaultPoolSize]) per server. Size MaxClients with that in mind.
//
// # Observability
//
// Manager.Stats returns a Stats snapshot, like database/sql's DBStats,
// in O(clients); Manager.GroupStats breaks it down by client group, also
// in O(clients), and Manager.TierStats by tier; Manager.Tenants iterates
// over every tenant with its TenantStats. WithCommandStats counts commands
// per group. Hooks (WithHooks) observe every acquisition that leaves the
// hot path, route resolution, the init hook and each client's life; the
// nested modules tenantotel (OpenTelemetry) and tenantprom (Prometheus)
// build on them and on the snapshots. Manager.Ping and
// Manager.PingDeployment are health checks. Logs go through log/slog and
// are off by default.
//
// # Jobs and the tenant lifecycle
//
// Manager.ForEach runs a job over many tenants with bounded parallelism:
// it leases tenants whose client is cached and serves the others by
// transient clients, so that the tenants serving traffic stay cached.
// Manager.DoIsolated serves one tenant by a transient client without the
// init hook, and Manager.Drain waits for a tenant's leases and jobs. The
// packages catalog (a tenant registry and its Router), migrate (versioned
// per-tenant migrations) and lifecycle (Provision, Offboard) build on
// them; the nested module cmd/mongotenant is the operator's CLI.
//
// # Testing
//
// The nested module github.com/mongotenant/mongotenant/mongotest starts a
// real server for integration tests: an embedded FerretDB by default, a
// MongoDB container, or the server at MONGODB_URI.
package mongotenant
