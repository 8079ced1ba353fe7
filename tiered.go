package mongotenant

import (
	"context"
	"fmt"
	"time"
)

// A Tier sets the pool size, bulkhead and fair-sharing weight of the
// tenants in it.
type Tier struct {
	PoolSize  uint64 // maxPoolSize of the tenant's client; 0 keeps the Manager's
	MaxLeases int    // concurrent leases per tenant; 0 keeps the Manager's (WithMaxLeases)
	Weight    int    // the tenant's share of a shared client's turns (WithFairSharing, Route.Weight); 0 means 1
}

// DefaultTiers are the reference design's pool sizes. They set no
// bulkheads; add MaxLeases where tenants share clients.
func DefaultTiers() map[string]Tier {
	return map[string]Tier{
		"free":       {PoolSize: 3},
		"basic":      {PoolSize: 5},
		"premium":    {PoolSize: 10},
		"enterprise": {PoolSize: 20},
	}
}

// DefaultRouteTTL is how long a resolved route, and so a tenant's tier, is
// trusted before it is resolved again.
const DefaultRouteTTL = 5 * time.Minute

// WithTiers sizes tenants by tier. tierOf is the application's lookup (a
// billing table, say); its answer is cached for the route TTL
// ([WithRouteTTL]), then looked up again in the background while the old
// answer keeps serving. An unknown tier fails the Acquire with [ErrRoute].
// A tier change moves the tenant to a client of the new pool size; leases
// on the old client finish first. tiers nil means [DefaultTiers]; a nil
// tierOf makes New fail.
func WithTiers(tierOf func(ctx context.Context, tenantID string) (string, error), tiers map[string]Tier) Option {
	if tierOf == nil {
		return WithRouter(nil)
	}
	if tiers == nil {
		tiers = DefaultTiers()
	}
	table := make(map[string]Tier, len(tiers)) // a copy: the caller's map may change
	for k, v := range tiers {
		table[k] = v
	}
	return WithRouter(func(ctx context.Context, id string, r *Route) error {
		name, err := tierOf(ctx, id)
		if err != nil {
			return fmt.Errorf("tier lookup: %w", err)
		}
		tier, ok := table[name]
		if !ok {
			return fmt.Errorf("unknown tier %q", name)
		}
		r.Tier = name
		if tier.PoolSize > 0 {
			r.PoolSize = tier.PoolSize
		}
		if tier.MaxLeases > 0 {
			r.MaxLeases = tier.MaxLeases
		}
		if tier.Weight > 0 {
			r.Weight = tier.Weight
		}
		return nil
	})
}

// WithRouteTTL sets how long a tenant's route is trusted before a Release
// has it resolved again in the background, while the old route keeps
// serving. 0 keeps routes until [Manager.Refresh] or eviction. Default
// [DefaultRouteTTL]. Only routers can change a route ([WithTiers],
// [WithPlacement], [WithTenantAuth], [WithRouter]): without one there is
// nothing to refresh, and no refresh runs, whatever the TTL and however the
// strategy was chosen.
func WithRouteTTL(d time.Duration) Option { return func(c *config) { c.routeTTL = d } }
