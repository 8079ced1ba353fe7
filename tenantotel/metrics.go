package tenantotel

import (
	"context"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Attribute keys. Pool names are client groups: a group the strategy
// names, or mongotenant.DedicatedGroup for every single-tenant client.
const (
	PoolNameKey = attribute.Key("db.client.connection.pool.name")
	StateKey    = attribute.Key("db.client.connection.state")
	OutcomeKey  = attribute.Key("mongotenant.outcome")
	ReasonKey   = attribute.Key("mongotenant.reason")
	CauseKey    = attribute.Key("mongotenant.cause")
	TierKey     = attribute.Key("mongotenant.tier")
	TenantIDKey = attribute.Key("mongotenant.tenant.id")
)

// syncInstruments are recorded by the hooks, off the Manager's hot path.
type syncInstruments struct {
	acquireDuration metric.Float64Histogram // slow-path acquisitions
	acquireWait     metric.Float64Histogram // acquisitions that waited
	createTime      metric.Float64Histogram // db.client.connection.create_time
	waitTime        metric.Float64Histogram // db.client.connection.wait_time
	pending         metric.Int64UpDownCounter
	timeouts        metric.Int64Counter
}

// seconds are the histogram buckets of durations, from 100 µs to 10 s.
var seconds = metric.WithExplicitBucketBoundaries(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)

func newSyncInstruments(m metric.Meter) (s syncInstruments, err error) {
	errs := func(e error) {
		if err == nil {
			err = e
		}
	}
	var e error
	s.acquireDuration, e = m.Float64Histogram("mongotenant.acquire.duration", metric.WithUnit("s"), seconds,
		metric.WithDescription("Duration of acquisitions that left the hot path (a route to resolve, a client to bind or create, init to run, a wait), by outcome: miss, refused, or hit for the few hits that lost a race on the hot path. Other hits are counted in mongotenant.acquisitions only."))
	errs(e)
	s.acquireWait, e = m.Float64Histogram("mongotenant.acquire.wait_time", metric.WithUnit("s"), seconds,
		metric.WithDescription("Time acquisitions waited: for a tenant's bulkhead, the connection budget, or another caller's route, client or init."))
	errs(e)
	s.createTime, e = m.Float64Histogram("db.client.connection.create_time", metric.WithUnit("s"), seconds,
		metric.WithDescription("The time it took to create a new connection."))
	errs(e)
	s.waitTime, e = m.Float64Histogram("db.client.connection.wait_time", metric.WithUnit("s"), seconds,
		metric.WithDescription("The time it took to obtain an open connection from the pool."))
	errs(e)
	s.pending, e = m.Int64UpDownCounter("db.client.connection.pending_requests", metric.WithUnit("{request}"),
		metric.WithDescription("The number of current pending requests for an open connection."))
	errs(e)
	s.timeouts, e = m.Int64Counter("db.client.connection.timeouts", metric.WithUnit("{timeout}"),
		metric.WithDescription("The number of connection timeouts that have occurred trying to obtain a connection from the pool."))
	errs(e)
	return s, err
}

// pool returns the measurement option of a group's attributes, made once.
func (in *Instrumentation) pool(group string) metric.MeasurementOption {
	if o, ok := in.groups.Load(group); ok {
		return o.(metric.MeasurementOption)
	}
	o, _ := in.groups.LoadOrStore(group, metric.WithAttributeSet(attribute.NewSet(PoolNameKey.String(group))))
	return o.(metric.MeasurementOption)
}

// poolEvent records the driver's pool events as the semantic conventions'
// connection pool instruments. It runs on driver goroutines, per operation.
func (in *Instrumentation) poolEvent(group string, e *event.PoolEvent) {
	ctx := context.Background()
	switch e.Type {
	case event.ConnectionCheckOutStarted:
		in.sync.pending.Add(ctx, 1, in.pool(group))
	case event.ConnectionCheckedOut:
		in.sync.pending.Add(ctx, -1, in.pool(group))
		in.sync.waitTime.Record(ctx, e.Duration.Seconds(), in.pool(group))
	case event.ConnectionCheckOutFailed:
		in.sync.pending.Add(ctx, -1, in.pool(group))
		in.sync.waitTime.Record(ctx, e.Duration.Seconds(), in.pool(group))
		if e.Reason == event.ReasonTimedOut {
			in.sync.timeouts.Add(ctx, 1, in.pool(group))
		}
	case event.ConnectionReady:
		in.sync.createTime.Record(ctx, e.Duration.Seconds(), in.pool(group))
	}
}

// acquireEnd records a slow-path acquisition.
func (in *Instrumentation) acquireEnd(ctx context.Context, e mongotenant.AcquireEvent) {
	outcome := metric.WithAttributeSet(outcomeSet(e.Hit, e.Reason))
	in.sync.acquireDuration.Record(ctx, e.Duration.Seconds(), outcome)
	if e.Waited {
		in.sync.acquireWait.Record(ctx, e.Wait.Seconds(), outcome)
	}
}

// outcomeSet is an acquisition's outcome as in mongotenant.acquisitions:
// hit, miss, or refused with a reason.
func outcomeSet(hit bool, reason string) attribute.Set {
	switch {
	case hit:
		return attribute.NewSet(OutcomeKey.String("hit"))
	case reason == "":
		return attribute.NewSet(OutcomeKey.String("miss"))
	}
	return attribute.NewSet(OutcomeKey.String("refused"), ReasonKey.String(reason))
}

// snapshotInstruments read the Manager's snapshots at each collection.
type snapshotInstruments struct {
	connCount, connMax                                                           metric.Int64ObservableUpDownCounter
	clients, tenants, leases, waiting, budgetUsed, budgetLimit, maxClients       metric.Int64ObservableUpDownCounter
	acquisitions, refusals, waits, evictions, created                            metric.Int64ObservableCounter
	recycled, transient, disconnects, disconnectsBusy, disconnectErrors, expired metric.Int64ObservableCounter
	refreshes, refreshErrors, commands, slowCommands                             metric.Int64ObservableCounter
	waitTotal, commandTime                                                       metric.Float64ObservableCounter
	tierTenants, tierLeases                                                      metric.Int64ObservableUpDownCounter
	fairTurns, fairWaiting                                                       metric.Int64ObservableUpDownCounter
}

func registerSnapshots(mt metric.Meter, m *mongotenant.Manager, tiers bool) (metric.Registration, error) {
	var s snapshotInstruments
	var err error
	upDown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		i, e := mt.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err == nil {
			err = e
		}
		return i
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		i, e := mt.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err == nil {
			err = e
		}
		return i
	}
	floatCounter := func(name, unit, desc string) metric.Float64ObservableCounter {
		i, e := mt.Float64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err == nil {
			err = e
		}
		return i
	}
	s.connCount = upDown("db.client.connection.count", "{connection}", "The number of connections that are currently in state described by the `state` attribute.")
	s.connMax = upDown("db.client.connection.max", "{connection}", "The maximum number of open connections allowed.")
	s.clients = upDown("mongotenant.clients", "{client}", "Clients by group and state: cached, or retiring (out of the cache, serving their last leases or disconnecting).")
	s.tenants = upDown("mongotenant.tenants", "{tenant}", "Tenants the Manager holds: bound to a client, leased, or being acquired.")
	s.leases = upDown("mongotenant.leases", "{lease}", "Outstanding leases.")
	s.waiting = upDown("mongotenant.acquire.waiting", "{acquisition}", "Acquisitions waiting now.")
	s.budgetUsed = upDown("mongotenant.budget.used", "{socket}", "Sockets charged to the connection budget.")
	s.budgetLimit = upDown("mongotenant.budget.limit", "{socket}", "The connection budget; 0 means none.")
	s.maxClients = upDown("mongotenant.clients.max", "{client}", "The client cap; 0 means none.")
	s.acquisitions = counter("mongotenant.acquisitions", "{acquisition}", "Acquisitions by outcome: hit (served from the cache), miss (served after work or a wait) or refused.")
	s.refusals = counter("mongotenant.acquire.refusals", "{acquisition}", "Refused acquisitions by reason.")
	s.waits = counter("mongotenant.acquire.waits", "{acquisition}", "Acquisitions that waited.")
	s.waitTotal = floatCounter("mongotenant.acquire.wait_time.total", "s", "Total time acquisitions waited.")
	s.evictions = counter("mongotenant.evictions", "{client}", "Clients removed from the cache, by cause.")
	s.created = counter("mongotenant.clients.created", "{client}", "Clients connected.")
	s.recycled = counter("mongotenant.clients.recycled", "{client}", "Evicted clients handed to a new tenant instead of being disconnected.")
	s.transient = counter("mongotenant.clients.transient", "{client}", "Clients ForEach connected for tenants without a cached client, never cached.")
	s.disconnects = counter("mongotenant.clients.disconnects", "{client}", "Clients disconnected.")
	s.disconnectsBusy = counter("mongotenant.clients.disconnects_busy", "{client}", "Disconnects that found pooled connections checked out: cursors that outlived their lease, or Close cutting leases short.")
	s.disconnectErrors = counter("mongotenant.clients.disconnect_errors", "{client}", "Disconnects that returned an error.")
	s.expired = counter("mongotenant.tenants.expired", "{tenant}", "Tenants forgotten after the idle timeout.")
	s.refreshes = counter("mongotenant.route.refreshes", "{route}", "Routes resolved again.")
	s.refreshErrors = counter("mongotenant.route.refresh_errors", "{route}", "Background route refreshes that failed.")
	s.commands = counter("mongotenant.commands", "{command}", "Commands by group and outcome (ok, failed), with WithCommandStats.")
	s.slowCommands = counter("mongotenant.commands.slow", "{command}", "Commands at or above the slow threshold, with WithCommandStats.")
	s.commandTime = floatCounter("mongotenant.commands.time", "s", "Total duration of commands, with WithCommandStats.")
	s.fairTurns = upDown("mongotenant.fair.turns", "{turn}", "Turns of fairly shared clients' capacity by group and state (used; kept free for tenants that just left, with WithFairReserve; free), with WithFairSharing.")
	s.fairWaiting = upDown("mongotenant.fair.waiting", "{acquisition}", "Acquisitions waiting for their turn at a fairly shared client, with WithFairSharing.")
	insts := []metric.Observable{s.connCount, s.connMax, s.clients, s.tenants, s.leases, s.waiting, s.budgetUsed,
		s.budgetLimit, s.maxClients, s.acquisitions, s.refusals, s.waits, s.waitTotal, s.evictions, s.created, s.recycled, s.transient,
		s.disconnects, s.disconnectsBusy, s.disconnectErrors, s.expired, s.refreshes, s.refreshErrors, s.commands, s.slowCommands, s.commandTime, s.fairTurns, s.fairWaiting}
	if tiers {
		s.tierTenants = upDown("mongotenant.tier.tenants", "{tenant}", "Tenants with a route, by tier.")
		s.tierLeases = upDown("mongotenant.tier.leases", "{lease}", "Outstanding leases, by tier.")
		insts = append(insts, s.tierTenants, s.tierLeases)
	}
	if err != nil {
		return nil, err
	}
	return mt.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s.observe(o, m, tiers)
		return nil
	}, insts...)
}

func (s *snapshotInstruments) observe(o metric.Observer, m *mongotenant.Manager, tiers bool) {
	st := m.Stats()
	kv := func(k attribute.Key, v string) metric.ObserveOption { return metric.WithAttributes(k.String(v)) }
	o.ObserveInt64(s.tenants, int64(st.Tenants))
	o.ObserveInt64(s.leases, int64(st.Leases))
	o.ObserveInt64(s.waiting, int64(st.Waiting))
	o.ObserveInt64(s.budgetUsed, int64(st.BudgetUsed))
	o.ObserveInt64(s.budgetLimit, int64(st.BudgetLimit))
	o.ObserveInt64(s.maxClients, int64(st.MaxClients))
	o.ObserveInt64(s.acquisitions, int64(st.Hits), kv(OutcomeKey, "hit"))
	o.ObserveInt64(s.acquisitions, int64(st.Misses), kv(OutcomeKey, "miss"))
	o.ObserveInt64(s.acquisitions, int64(st.Refused), kv(OutcomeKey, "refused"))
	for reason, n := range map[string]uint64{
		"busy": st.RefusedBusy, "budget": st.RefusedBudget, "invalid": st.RefusedInvalid, "route": st.RefusedRoute,
		"create": st.RefusedCreate, "init": st.RefusedInit, "closed": st.RefusedClosed, "context": st.RefusedContext,
	} {
		o.ObserveInt64(s.refusals, int64(n), kv(ReasonKey, reason))
	}
	o.ObserveInt64(s.waits, int64(st.Waits))
	o.ObserveFloat64(s.waitTotal, st.WaitDuration.Seconds())
	for cause, n := range map[mongotenant.EvictionCause]uint64{
		mongotenant.EvictionLRU: st.EvictedLRU, mongotenant.EvictionIdle: st.EvictedIdle,
		mongotenant.EvictionByApp: st.EvictedByApp, mongotenant.EvictionClose: st.EvictedClose,
		mongotenant.EvictionBudget: st.EvictedBudget, mongotenant.EvictionRoute: st.EvictedRoute,
	} {
		o.ObserveInt64(s.evictions, int64(n), kv(CauseKey, cause.String()))
	}
	o.ObserveInt64(s.created, int64(st.Created))
	o.ObserveInt64(s.recycled, int64(st.Recycled))
	o.ObserveInt64(s.transient, int64(st.Transient))
	o.ObserveInt64(s.disconnects, int64(st.Disconnects))
	o.ObserveInt64(s.disconnectsBusy, int64(st.DisconnectsBusy))
	o.ObserveInt64(s.disconnectErrors, int64(st.DisconnectErrors))
	o.ObserveInt64(s.expired, int64(st.ExpiredTenants))
	o.ObserveInt64(s.refreshes, int64(st.RouteRefreshes))
	o.ObserveInt64(s.refreshErrors, int64(st.RouteRefreshErrors))

	for _, g := range m.GroupStats() {
		pool := PoolNameKey.String(g.Group)
		with := func(kvs ...attribute.KeyValue) metric.ObserveOption {
			return metric.WithAttributes(append(kvs, pool)...)
		}
		o.ObserveInt64(s.connCount, int64(g.InUseConnections), with(StateKey.String("used")))
		o.ObserveInt64(s.connCount, int64(g.OpenConnections-g.InUseConnections), with(StateKey.String("idle")))
		o.ObserveInt64(s.connMax, int64(g.MaxConnections), with())
		o.ObserveInt64(s.clients, int64(g.Clients), with(attribute.String("mongotenant.state", "cached")))
		o.ObserveInt64(s.clients, int64(g.Retiring), with(attribute.String("mongotenant.state", "retiring")))
		o.ObserveInt64(s.commands, int64(g.Commands-g.CommandFailures), with(OutcomeKey.String("ok")))
		o.ObserveInt64(s.commands, int64(g.CommandFailures), with(OutcomeKey.String("failed")))
		o.ObserveInt64(s.slowCommands, int64(g.SlowCommands), with())
		o.ObserveFloat64(s.commandTime, g.CommandTime.Seconds(), with())
		if g.FairCapacity > 0 {
			o.ObserveInt64(s.fairTurns, int64(g.FairInUse), with(StateKey.String("used")))
			o.ObserveInt64(s.fairTurns, int64(g.FairKept), with(StateKey.String("kept")))
			o.ObserveInt64(s.fairTurns, int64(g.FairCapacity-g.FairInUse-g.FairKept), with(StateKey.String("free")))
			o.ObserveInt64(s.fairWaiting, int64(g.FairWaiting), with())
		}
	}
	if tiers {
		for _, t := range m.TierStats() {
			o.ObserveInt64(s.tierTenants, int64(t.Tenants), kv(TierKey, t.Tier))
			o.ObserveInt64(s.tierLeases, int64(t.Leases), kv(TierKey, t.Tier))
		}
	}
}
