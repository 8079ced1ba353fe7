package mongotenant

import (
	"iter"
	"maps"
	"slices"
)

// Tenants returns an iterator over the tenants bound to a client and their
// stats, in no particular order. It holds no lock while it yields, so the
// loop body may call the Manager (Evict, say). Tenants bound for the whole
// loop are yielded once; tenants bound or dropped meanwhile may or may not
// be, and an ID dropped and acquired again meanwhile may be yielded twice.
// A whole loop costs O(tenants): about 100 ns a tenant.
func (m *Manager) Tenants() iter.Seq2[string, TenantStats] {
	return func(yield func(string, TenantStats) bool) {
		m.tenants.all(func(t *tenant) bool {
			ts, ok := m.tenantStats(t)
			return !ok || yield(t.id, ts)
		})
	}
}

// TierStats is a snapshot of the tenants of one tier.
type TierStats struct {
	Tier    string // "" for tenants without one
	Tenants int    // tenants the Manager holds in the tier: bound, leased or being acquired with a route
	Bound   int    // those bound to a client
	Leases  int    // their outstanding leases
}

// TierStats returns a snapshot per tier, sorted by tier. Unlike [Manager.Stats]
// it visits every tenant, locking each in turn: O(tenants), about 30 ns a
// tenant, so call it from an admin endpoint or a scrape, not per request.
func (m *Manager) TierStats() []TierStats {
	tiers := make(map[string]*TierStats)
	m.tenants.all(func(t *tenant) bool {
		t.mu.Lock()
		routed := t.phase == phaseRouted || t.phase == phaseBound
		var tier string
		if routed {
			tier = t.route.Value().tier
		}
		bound := t.phase == phaseBound
		t.mu.Unlock()
		if !routed {
			return true
		}
		ts := tiers[tier]
		if ts == nil {
			ts = &TierStats{Tier: tier}
			tiers[tier] = ts
		}
		ts.Tenants++
		if bound {
			ts.Bound++
		}
		ts.Leases += int(leasesOf(t.word.Load()) + t.carried.Load())
		return true
	})
	out := make([]TierStats, 0, len(tiers))
	for _, k := range slices.Sorted(maps.Keys(tiers)) {
		out = append(out, *tiers[k])
	}
	return out
}
