package mongotenant

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
)

// Hooks observe a Manager: the acquisitions that leave the hot path, route
// resolution, the init hook, and each client's life. They are what the
// otel and prometheus modules build on; set any subset, the rest stay nil.
//
// A cached acquisition (a hit) runs no hook: the hot path stays as it is
// with hooks set, and hits are counted in [Stats.Hits]. Every other
// acquisition runs AcquireStart and then AcquireEnd, refused ones included,
// and ones a user callback panics through (with Reason "panic").
//
// Hooks run synchronously on the goroutine named on each field, never under
// a Manager lock, and must not block: the acquisition that runs them waits
// for them, and so does [Manager.Close] for every ClientDisconnected. A hook that
// panics is recovered, and the panic is logged at Warn; the Manager goes on
// as if the hook had returned (a Start hook's ctx is then the one it got).
//
// Events carry the tenant ID because hooks are code, not telemetry: a hook
// decides what to export. Group is always safe to export: a client group
// named by the strategy, or [DedicatedGroup] for any client that serves one
// tenant, never a tenant ID.
type Hooks struct {
	// AcquireStart runs, on the caller's goroutine, when an acquisition
	// leaves the hot path. The ctx it returns, which must be ctx or derived
	// from it, is the one the rest of the acquisition uses: the Routers,
	// the init hook and the other hooks get it, and its end bounds the
	// acquisition's waits. Use it to start a span.
	AcquireStart func(ctx context.Context, tenantID string) context.Context

	// AcquireEnd runs, on the caller's goroutine, when that acquisition ends,
	// served or refused.
	AcquireEnd func(ctx context.Context, e AcquireEvent)

	// RouteStart and RouteEnd bracket each resolution of a tenant's route:
	// the strategy and the Routers. They run on the goroutine of the
	// Acquire or Refresh that resolves it, or of a background refresh.
	// RouteStart's ctx, derived from ctx, is the one the Routers get.
	RouteStart func(ctx context.Context, tenantID string) context.Context
	RouteEnd   func(ctx context.Context, e RouteEvent)

	// InitStart and InitEnd bracket each run of the init hook ([WithInit]),
	// on the goroutine of the Acquire that runs it. InitStart's ctx, derived
	// from ctx, is the one the init hook gets.
	InitStart func(ctx context.Context, tenantID string) context.Context
	InitEnd   func(ctx context.Context, e InitEvent)

	// ClientCreated runs, on the goroutine of the Acquire that created it,
	// after each attempt to create a client: Err is nil if it was created.
	// Duration is the time mongo.Connect took, which does no network I/O.
	ClientCreated func(ctx context.Context, e ClientEvent)

	// ClientRecycled runs, on the goroutine of the Acquire that needed a
	// client, when an evicted client is handed to it instead of a new one
	// being connected (see [WithClientRecycling]). Cause is why the
	// recycled client left the cache; From is its group.
	ClientRecycled func(ctx context.Context, e ClientEvent)

	// ClientDisconnected runs after each client is disconnected, on the
	// goroutine that disconnected it: the caller of Evict, Forget or
	// Refresh, or a goroutine of the Manager's (after a Release, when a
	// client creation evicted it, at Close, for the idle reaper). Cause is why it left the cache (close for a client that
	// Close kept from reaching it); an evicted client that still had leases
	// is disconnected, and reported here, after its last lease is released.
	// Duration is the time Disconnect took; Err is its error.
	ClientDisconnected func(e ClientEvent)

	// PoolEvent runs for each of the driver's connection pool events, on
	// the driver goroutine that emits it, with the group of the client
	// whose pool it is. It runs before a PoolMonitor set with
	// [WithClientOptions]. Connection pool events happen per operation:
	// keep it to a few atomic operations.
	PoolEvent func(group string, e *event.PoolEvent)
}

// DedicatedGroup is the group that events, [GroupStats] and metrics give
// every client serving a single tenant (under [Dedicated], or with
// per-tenant credentials), so that a tenant ID never becomes a label.
const DedicatedGroup = "dedicated"

// AcquireEvent describes an acquisition that left the hot path.
type AcquireEvent struct {
	TenantID string
	Group    string        // the group of the client the lease is on; "" if refused
	Err      error         // nil if the lease was granted
	Hit      bool          // granted with nothing to resolve, bind, create, initialize or wait for: a hit in Stats, which left the hot path only because it lost a race
	Reason   string        // why it was refused, as in Stats: busy, budget, invalid, route, create, init, closed or context; panic if a callback panicked through it; "" if granted
	Waited   bool          // it waited: for the bulkhead, a fair turn, the budget, or another caller's route, client or init
	Wait     time.Duration // the time it waited
	Start    time.Time
	Duration time.Duration
}

// RouteEvent describes one resolution of a tenant's route.
type RouteEvent struct {
	TenantID string
	Group    string // the route's client group; "" if it failed
	Tier     string
	Refresh  bool  // a resolution again, after the route TTL or by Manager.Refresh
	Err      error // wraps ErrRoute or ErrInvalidTenant if it failed; if a callback panicked, an error that wraps neither
	Start    time.Time
	Duration time.Duration
}

// InitEvent describes one run of the init hook.
type InitEvent struct {
	TenantID string
	Group    string
	Err      error // wraps ErrInit if it failed; if the init hook panicked, an error that does not
	Start    time.Time
	Duration time.Duration
}

// ClientEvent describes a change in a client's life.
type ClientEvent struct {
	Group    string
	TenantID string        // the tenant whose Acquire created or recycled it; "" for a disconnect
	PoolSize uint64        // its maxPoolSize
	Cause    EvictionCause // for ClientRecycled and ClientDisconnected: why it left the cache
	From     string        // for ClientRecycled: the group it served before
	Err      error
	Start    time.Time
	Duration time.Duration
}

// WithHooks adds hooks. Hooks given in several calls all run, in the order
// of the calls.
func WithHooks(h Hooks) Option { return func(c *config) { c.hooks = append(c.hooks, h) } }

// hookSet is the hooks of all WithHooks calls, one list per hook, so that
// a hook nobody set costs a length check.
type hookSet struct {
	acquireStart []func(context.Context, string) context.Context
	acquireEnd   []func(context.Context, AcquireEvent)
	routeStart   []func(context.Context, string) context.Context
	routeEnd     []func(context.Context, RouteEvent)
	initStart    []func(context.Context, string) context.Context
	initEnd      []func(context.Context, InitEvent)
	created      []func(context.Context, ClientEvent)
	recycled     []func(context.Context, ClientEvent)
	disconnected []func(ClientEvent)
	pool         []func(string, *event.PoolEvent)
}

func newHookSet(hs []Hooks) hookSet {
	var s hookSet
	for _, h := range hs {
		s.acquireStart = appendSet(s.acquireStart, h.AcquireStart, h.AcquireStart != nil)
		s.acquireEnd = appendSet(s.acquireEnd, h.AcquireEnd, h.AcquireEnd != nil)
		s.routeStart = appendSet(s.routeStart, h.RouteStart, h.RouteStart != nil)
		s.routeEnd = appendSet(s.routeEnd, h.RouteEnd, h.RouteEnd != nil)
		s.initStart = appendSet(s.initStart, h.InitStart, h.InitStart != nil)
		s.initEnd = appendSet(s.initEnd, h.InitEnd, h.InitEnd != nil)
		s.created = appendSet(s.created, h.ClientCreated, h.ClientCreated != nil)
		s.recycled = appendSet(s.recycled, h.ClientRecycled, h.ClientRecycled != nil)
		s.disconnected = appendSet(s.disconnected, h.ClientDisconnected, h.ClientDisconnected != nil)
		s.pool = appendSet(s.pool, h.PoolEvent, h.PoolEvent != nil)
	}
	return s
}

// appendSet appends hook f to list if it is set.
func appendSet[F any](list []F, f F, set bool) []F {
	if set {
		list = append(list, f)
	}
	return list
}

// acquiring reports whether acquisitions run hooks.
func (s *hookSet) acquiring() bool { return len(s.acquireStart)+len(s.acquireEnd) > 0 }

// start runs Start hooks in order, each on the ctx the previous returned.
func (m *Manager) startHooks(name string, hooks []func(context.Context, string) context.Context, ctx context.Context, id string) context.Context {
	for _, h := range hooks {
		ctx = m.startHook(name, h, ctx, id)
	}
	return ctx
}

func (m *Manager) startHook(name string, h func(context.Context, string) context.Context, ctx context.Context, id string) (out context.Context) {
	out = ctx
	defer m.recoverHook(name)
	if got := h(ctx, id); got != nil {
		out = got
	}
	return out
}

// endHooks runs hooks that take a ctx and an event.
func endHooks[E any](m *Manager, name string, hooks []func(context.Context, E), ctx context.Context, e E) {
	for _, h := range hooks {
		func() {
			defer m.recoverHook(name)
			h(ctx, e)
		}()
	}
}

// recoverHook recovers a panicking hook and logs it: a hook only observes,
// so its panic must not undo the work it observed.
func (m *Manager) recoverHook(name string) {
	if p := recover(); p != nil {
		m.cfg.logger.Warn("mongotenant: a hook panicked; the panic was recovered", "hook", name)
		m.cfg.logger.Debug("mongotenant: hook panic", "hook", name, "panic", fmt.Sprint(p))
	}
}

// clientDisconnected runs the ClientDisconnected hooks for c, which left
// the cache for cause why.
func (m *Manager) clientDisconnected(c *client, why EvictionCause, start int64, err error) {
	if len(m.hooks.disconnected) == 0 {
		return
	}
	e := ClientEvent{Group: c.group(), PoolSize: c.key.poolSize, Cause: why, Err: err}
	e.Start, e.Duration = m.span(start)
	for _, h := range m.hooks.disconnected {
		func() {
			defer m.recoverHook("ClientDisconnected")
			h(e)
		}()
	}
}

// poolEvent runs the PoolEvent hooks.
func (m *Manager) poolEvent(group string, e *event.PoolEvent) {
	for _, h := range m.hooks.pool {
		func() {
			defer m.recoverHook("PoolEvent")
			h(group, e)
		}()
	}
}

// span returns the wall time of start and the time since, for events.
func (m *Manager) span(start int64) (time.Time, time.Duration) {
	return m.clock.wall(start), time.Duration(m.clock.now() - start)
}
