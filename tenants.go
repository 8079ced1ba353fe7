package mongotenant

import (
	"iter"
	"maps"
	"slices"
	"unique"
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

// TierStats is a snapshot of the tenants of one tier: the tier of their
// route, or of the last route they had if it was forgotten (by Evict,
// say) while they still hold leases.
type TierStats struct {
	Tier    string // "" for tenants without one
	Tenants int    // tenants the Manager holds that have or had a route in the tier
	Bound   int    // those bound to a client
	Leases  int    // their outstanding leases, on their current client and any they left
}

// TierStats returns a snapshot per tier, sorted by tier. Unlike [Manager.Stats]
// it visits every tenant, locking each in turn: O(tenants), about 30 ns a
// tenant, so call it from an admin endpoint or a scrape, not per request.
func (m *Manager) TierStats() []TierStats {
	tiers := make(map[string]*TierStats)
	var never unique.Handle[routeShape]
	m.tenants.all(func(t *tenant) bool {
		t.mu.Lock()
		counted := t.phase != phaseDropped && t.route != never
		var tier string
		if counted {
			tier = t.route.Value().tier
		}
		bound := t.phase == phaseBound
		leases := int(leasesOf(t.word.Load()) + t.carried.Load()) // under t.mu: detaching moves leases from one to the other
		t.mu.Unlock()
		if !counted {
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
		ts.Leases += leases
		return true
	})
	out := make([]TierStats, 0, len(tiers))
	for _, k := range slices.Sorted(maps.Keys(tiers)) {
		out = append(out, *tiers[k])
	}
	return out
}
