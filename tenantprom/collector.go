// Package tenantprom exports a [mongotenant.Manager]'s snapshots as
// Prometheus metrics: a [prometheus.Collector], like client_golang's
// collectors.NewDBStatsCollector for database/sql. It is a module of its
// own, so that the mongotenant module does not depend on Prometheus.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(tenantprom.NewCollector(m))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Each scrape reads [mongotenant.Manager.Stats] and GroupStats, which cost
// O(clients); the Manager's hot path records nothing. Labels are client
// groups (group), never tenant IDs: every single-tenant client is in the
// group mongotenant.DedicatedGroup. The metric names are listed in the
// README's Observability section. Histograms of wait and creation times
// come from the hooks: use the tenantotel module and OpenTelemetry's
// Prometheus exporter for those.
package tenantprom

import (
	"github.com/mongotenant/mongotenant"
	"github.com/prometheus/client_golang/prometheus"
)

// An Option configures [NewCollector].
type Option func(*Collector)

// WithTiers adds mongotenant_tier_tenants and mongotenant_tier_leases, by
// tier. Each scrape then visits every tenant
// ([mongotenant.Manager.TierStats]), about 30 ns each. Default off.
func WithTiers(on bool) Option { return func(c *Collector) { c.tiers = on } }

// WithConstLabels adds labels to every metric, to tell several Managers of
// one process apart (say, {"manager": "orders"}).
func WithConstLabels(l prometheus.Labels) Option { return func(c *Collector) { c.labels = l } }

// Collector is a prometheus.Collector of a Manager's snapshots. It is safe
// for concurrent use.
type Collector struct {
	m      *mongotenant.Manager
	tiers  bool
	labels prometheus.Labels
	descs  []*prometheus.Desc
	d      descs
}

type descs struct {
	clients, tenants, leases, waiting, budgetUsed, budgetLimit, maxClients *prometheus.Desc
	acquisitions, refusals, waits, waitSeconds, evictions, created         *prometheus.Desc
	recycled, transient, disconnects, disconnectsBusy, disconnectErrors    *prometheus.Desc
	expired                                                                *prometheus.Desc
	refreshes, refreshErrors                                               *prometheus.Desc
	connections, connectionsMax, commands, slowCommands, commandSeconds    *prometheus.Desc
	fairTurns, fairWaiting                                                 *prometheus.Desc
	tierTenants, tierLeases                                                *prometheus.Desc
}

// NewCollector returns a Collector of m.
func NewCollector(m *mongotenant.Manager, opts ...Option) *Collector {
	c := &Collector{m: m}
	for _, o := range opts {
		o(c)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		d := prometheus.NewDesc("mongotenant_"+name, help, labels, c.labels)
		c.descs = append(c.descs, d)
		return d
	}
	c.d = descs{
		clients:          desc("clients", "Clients by group and state: cached, or retiring (out of the cache, serving their last leases or disconnecting).", "group", "state"),
		tenants:          desc("tenants", "Tenants the Manager holds: bound to a client, leased, or being acquired."),
		leases:           desc("leases", "Outstanding leases."),
		waiting:          desc("acquire_waiting", "Acquisitions waiting now: for a bulkhead, the budget, or another caller's route, client or init."),
		budgetUsed:       desc("budget_used_sockets", "Sockets charged to the connection budget."),
		budgetLimit:      desc("budget_limit_sockets", "The connection budget; 0 means none."),
		maxClients:       desc("max_clients", "The client cap; 0 means none."),
		acquisitions:     desc("acquisitions_total", "Acquisitions by outcome: hit (served from the cache), miss (served after work or a wait) or refused.", "outcome"),
		refusals:         desc("acquire_refusals_total", "Refused acquisitions by reason.", "reason"),
		waits:            desc("acquire_waits_total", "Acquisitions that waited."),
		waitSeconds:      desc("acquire_wait_seconds_total", "Total time acquisitions waited."),
		evictions:        desc("evictions_total", "Clients removed from the cache, by cause.", "cause"),
		created:          desc("clients_created_total", "Clients connected."),
		recycled:         desc("clients_recycled_total", "Evicted clients handed to a new tenant instead of being disconnected."),
		transient:        desc("clients_transient_total", "Clients ForEach connected for tenants without a cached client, never cached."),
		disconnects:      desc("clients_disconnects_total", "Clients disconnected."),
		disconnectsBusy:  desc("clients_disconnects_busy_total", "Disconnects that found pooled connections checked out."),
		disconnectErrors: desc("clients_disconnect_errors_total", "Disconnects that returned an error."),
		expired:          desc("tenants_expired_total", "Tenants forgotten after the idle timeout."),
		refreshes:        desc("route_refreshes_total", "Routes resolved again, after the route TTL or by Refresh."),
		refreshErrors:    desc("route_refresh_errors_total", "Background route refreshes that failed."),
		connections:      desc("connections", "Pooled connections by group and state: idle or used.", "group", "state"),
		connectionsMax:   desc("connections_max", "The sum of the cached clients' pool sizes, by group.", "group"),
		commands:         desc("commands_total", "Commands by group and outcome (ok, failed), with WithCommandStats.", "group", "outcome"),
		slowCommands:     desc("commands_slow_total", "Commands at or above the slow threshold, with WithCommandStats.", "group"),
		commandSeconds:   desc("commands_seconds_total", "Total duration of commands, with WithCommandStats.", "group"),
		fairTurns:        desc("fair_turns", "Turns of fairly shared clients' capacity by group and state (used; kept free for tenants that just left, with WithFairReserve; free), with WithFairSharing.", "group", "state"),
		fairWaiting:      desc("fair_waiting", "Acquisitions waiting for their turn at a fairly shared client, by group, with WithFairSharing.", "group"),
	}
	if c.tiers {
		c.d.tierTenants = desc("tier_tenants", "Tenants with a route, by tier.", "tier")
		c.d.tierLeases = desc("tier_leases", "Outstanding leases, by tier.", "tier")
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	d, s := &c.d, c.m.Stats()
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(d.tenants, float64(s.Tenants))
	gauge(d.leases, float64(s.Leases))
	gauge(d.waiting, float64(s.Waiting))
	gauge(d.budgetUsed, float64(s.BudgetUsed))
	gauge(d.budgetLimit, float64(s.BudgetLimit))
	gauge(d.maxClients, float64(s.MaxClients))
	counter(d.acquisitions, s.Hits, "hit")
	counter(d.acquisitions, s.Misses, "miss")
	counter(d.acquisitions, s.Refused, "refused")
	counter(d.refusals, s.RefusedBusy, "busy")
	counter(d.refusals, s.RefusedBudget, "budget")
	counter(d.refusals, s.RefusedInvalid, "invalid")
	counter(d.refusals, s.RefusedRoute, "route")
	counter(d.refusals, s.RefusedCreate, "create")
	counter(d.refusals, s.RefusedInit, "init")
	counter(d.refusals, s.RefusedClosed, "closed")
	counter(d.refusals, s.RefusedContext, "context")
	counter(d.waits, s.Waits)
	ch <- prometheus.MustNewConstMetric(d.waitSeconds, prometheus.CounterValue, s.WaitDuration.Seconds())
	counter(d.evictions, s.EvictedLRU, mongotenant.EvictionLRU.String())
	counter(d.evictions, s.EvictedIdle, mongotenant.EvictionIdle.String())
	counter(d.evictions, s.EvictedByApp, mongotenant.EvictionByApp.String())
	counter(d.evictions, s.EvictedClose, mongotenant.EvictionClose.String())
	counter(d.evictions, s.EvictedBudget, mongotenant.EvictionBudget.String())
	counter(d.evictions, s.EvictedRoute, mongotenant.EvictionRoute.String())
	counter(d.created, s.Created)
	counter(d.recycled, s.Recycled)
	counter(d.transient, s.Transient)
	counter(d.disconnects, s.Disconnects)
	counter(d.disconnectsBusy, s.DisconnectsBusy)
	counter(d.disconnectErrors, s.DisconnectErrors)
	counter(d.expired, s.ExpiredTenants)
	counter(d.refreshes, s.RouteRefreshes)
	counter(d.refreshErrors, s.RouteRefreshErrors)
	for _, g := range c.m.GroupStats() {
		gauge(d.clients, float64(g.Clients), g.Group, "cached")
		gauge(d.clients, float64(g.Retiring), g.Group, "retiring")
		gauge(d.connections, float64(g.InUseConnections), g.Group, "used")
		gauge(d.connections, float64(g.OpenConnections-g.InUseConnections), g.Group, "idle")
		gauge(d.connectionsMax, float64(g.MaxConnections), g.Group)
		counter(d.commands, g.Commands-g.CommandFailures, g.Group, "ok")
		counter(d.commands, g.CommandFailures, g.Group, "failed")
		counter(d.slowCommands, g.SlowCommands, g.Group)
		ch <- prometheus.MustNewConstMetric(d.commandSeconds, prometheus.CounterValue, g.CommandTime.Seconds(), g.Group)
		if g.FairCapacity > 0 {
			gauge(d.fairTurns, float64(g.FairInUse), g.Group, "used")
			gauge(d.fairTurns, float64(g.FairKept), g.Group, "kept")
			gauge(d.fairTurns, float64(g.FairCapacity-g.FairInUse-g.FairKept), g.Group, "free")
			gauge(d.fairWaiting, float64(g.FairWaiting), g.Group)
		}
	}
	if c.tiers {
		for _, t := range c.m.TierStats() {
			gauge(d.tierTenants, float64(t.Tenants), t.Tier)
			gauge(d.tierLeases, float64(t.Leases), t.Tier)
		}
	}
}
