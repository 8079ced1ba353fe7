// Package catalog is a registry of tenants kept in a MongoDB collection:
// each tenant's state (active, suspended, offboarding), tier, placement
// and schema version. It plugs into a Manager as its Router, so that only
// tenants it knows, and that are active, are served:
//
//	cat, err := catalog.New(registry.Database("platform").Collection("tenants"))
//	m, err := mongotenant.New(uri, mongotenant.WithRouter(cat.Router(mongotenant.DefaultTiers())))
//
// An unknown tenant fails with an error wrapping
// mongotenant.ErrUnknownTenant (404 in tenanthttp), and is remembered in a
// bounded negative cache so that a flood of made-up IDs costs no round
// trips; a suspended or offboarding one with mongotenant.ErrTenantSuspended
// (403); a catalog that cannot be reached with a plain error, so ErrRoute
// alone (503). The Manager resolves a cached tenant's route again after
// its route TTL (mongotenant.WithRouteTTL), in the background, starting at
// the first Release past it: a suspension made through any app instance
// is enforced by every instance from then on (the request that started
// the refresh, and leases already granted, are still served), and the
// suspended tenant's client is evicted when the change is seen.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// State is a tenant's place in its life.
type State string

// Tenant states. Only active tenants are served: the Router refuses the
// others with mongotenant.ErrTenantSuspended, and offboarded ones (a
// tombstone) with mongotenant.ErrUnknownTenant.
const (
	Provisioning State = "provisioning" // registered, its database not yet ready
	Active       State = "active"
	Suspended    State = "suspended"
	Offboarding  State = "offboarding" // being drained and dropped
	Offboarded   State = "offboarded"  // a tombstone: gone, its ID kept
)

// Tenant is a catalog entry.
type Tenant struct {
	ID            string    `bson:"_id" json:"id"`
	State         State     `bson:"state" json:"state"`
	Tier          string    `bson:"tier,omitempty" json:"tier,omitempty"`
	Placement     string    `bson:"placement,omitempty" json:"placement,omitempty"` // a name of WithPlacements, "" for the Manager's deployment
	SchemaVersion int       `bson:"schema_version" json:"schema_version"`
	Dropped       bool      `bson:"dropped,omitempty" json:"dropped,omitempty"` // an offboarded tenant's database was dropped
	Created       time.Time `bson:"created" json:"created"`
	Updated       time.Time `bson:"updated" json:"updated"`
}

// Errors of the catalog's own calls. Lookups of tenants it does not know
// wrap mongotenant.ErrUnknownTenant.
var (
	ErrExists       = errors.New("catalog: tenant already registered")
	ErrInvalidState = errors.New("catalog: invalid state")

	// ErrTransition is returned by SetState when the tenant is not in one
	// of the states the change may start from.
	ErrTransition = errors.New("catalog: the tenant is not in a state this change starts from")
)

// Defaults of the options of [New].
const (
	DefaultNegativeCacheSize = 10000
	DefaultNegativeTTL       = 30 * time.Second
)

// An Option configures [New].
type Option func(*Catalog)

// WithNegativeCache sets how many unknown tenant IDs are remembered, and
// for how long, before the catalog is asked again. Defaults
// [DefaultNegativeCacheSize] and [DefaultNegativeTTL]; size 0 turns it off.
// Registering a tenant through this Catalog forgets it at once; through
// another instance, within ttl.
func WithNegativeCache(size int, ttl time.Duration) Option {
	return func(c *Catalog) { c.negSize, c.negTTL = size, ttl }
}

// WithPlacements names the deployments tenants may be placed on: a
// tenant's Placement is one of the names, and the Router sets the route's
// Cluster to its URI. URIs stay in the application's configuration, never
// in the catalog, because they may hold credentials.
func WithPlacements(uris map[string]string) Option {
	return func(c *Catalog) {
		c.placements = maps.Clone(uris)
	}
}

// Catalog is a tenant registry in one collection. It is safe for
// concurrent use.
type Catalog struct {
	coll       *mongo.Collection
	placements map[string]string
	negSize    int
	negTTL     time.Duration
	now        func() time.Time

	negative *lru.Cache[string, time.Time] // unknown IDs and when to ask again; nil when off
	// registered counts Register calls, so that a lookup that found no
	// entry before a Register does not remember the ID as unknown after it.
	registered atomic.Uint64
}

// New returns a Catalog on coll. It does no I/O.
func New(coll *mongo.Collection, opts ...Option) (*Catalog, error) {
	if coll == nil {
		return nil, errors.New("catalog: nil collection")
	}
	c := &Catalog{coll: coll, negSize: DefaultNegativeCacheSize, negTTL: DefaultNegativeTTL, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.negSize < 0 || c.negTTL < 0 {
		return nil, fmt.Errorf("catalog: WithNegativeCache(%d, %v): must be >= 0", c.negSize, c.negTTL)
	}
	if c.negSize > 0 {
		var err error
		if c.negative, err = lru.New[string, time.Time](c.negSize); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Register adds a tenant, active unless t says otherwise, with its
// timestamps set now. It replaces the tombstone of a tenant offboarded
// with its database dropped, and fails with ErrExists if the ID is
// otherwise taken, a tombstone whose database was kept included: a new
// tenant must not inherit an old one's data.
func (c *Catalog) Register(ctx context.Context, t Tenant) (Tenant, error) {
	if t.State == "" {
		t.State = Active
	}
	if !t.State.valid() {
		return Tenant{}, fmt.Errorf("%w: %q", ErrInvalidState, t.State)
	}
	now := c.now().UTC().Truncate(time.Millisecond)
	t.Created, t.Updated = now, now
	if _, err := c.coll.InsertOne(ctx, t); err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			return Tenant{}, fmt.Errorf("catalog: register: %w", err)
		}
		res, err := c.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: t.ID}, {Key: "state", Value: Offboarded}, {Key: "dropped", Value: true}}, t)
		if err != nil {
			return Tenant{}, fmt.Errorf("catalog: register: %w", err)
		}
		if res.MatchedCount == 0 {
			return Tenant{}, ErrExists
		}
	}
	c.registered.Add(1) // after the write, before the Remove: see rememberUnknown
	if c.negative != nil {
		c.negative.Remove(t.ID)
	}
	return t, nil
}

// Get returns the tenant's entry; an unknown tenant's error wraps
// mongotenant.ErrUnknownTenant.
func (c *Catalog) Get(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := c.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Tenant{}, fmt.Errorf("catalog: %w", mongotenant.ErrUnknownTenant)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("catalog: get: %w", err)
	}
	return t, nil
}

// SetState moves a tenant to state, if it is in one of from (in any state
// if from is empty): resuming a tenant that is being offboarded, say, must
// not bring it back. A tenant in another state fails with ErrTransition;
// an unknown tenant's error wraps mongotenant.ErrUnknownTenant.
func (c *Catalog) SetState(ctx context.Context, id string, state State, from ...State) error {
	if !state.valid() {
		return fmt.Errorf("%w: %q", ErrInvalidState, state)
	}
	return c.updateFrom(ctx, id, from, bson.D{{Key: "state", Value: state}})
}

// SetOffboarded makes a tenant in state offboarding a tombstone, noting
// whether its database was dropped.
func (c *Catalog) SetOffboarded(ctx context.Context, id string, dropped bool) error {
	return c.updateFrom(ctx, id, []State{Offboarding, Offboarded}, bson.D{{Key: "state", Value: Offboarded}, {Key: "dropped", Value: dropped}})
}

// SetSchemaVersion records the schema version of a tenant's database.
func (c *Catalog) SetSchemaVersion(ctx context.Context, id string, v int) error {
	return c.update(ctx, id, bson.D{{Key: "schema_version", Value: v}})
}

// SetTier changes a tenant's tier; the Manager moves the tenant to a
// client of the new tier's size after its route TTL.
func (c *Catalog) SetTier(ctx context.Context, id, tier string) error {
	return c.update(ctx, id, bson.D{{Key: "tier", Value: tier}})
}

func (c *Catalog) update(ctx context.Context, id string, set bson.D) error {
	return c.updateFrom(ctx, id, nil, set)
}

// updateFrom sets fields of a tenant in one of states (any if none).
func (c *Catalog) updateFrom(ctx context.Context, id string, states []State, set bson.D) error {
	set = append(set, bson.E{Key: "updated", Value: c.now().UTC().Truncate(time.Millisecond)})
	filter := bson.D{{Key: "_id", Value: id}}
	if len(states) > 0 {
		filter = append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$in", Value: states}}})
	}
	res, err := c.coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("catalog: update: %w", err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	t, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: it is %s", ErrTransition, t.State)
}

// Remove deletes a tenant's entry. Removing an unknown tenant is not an
// error, so that an interrupted offboarding can be retried.
func (c *Catalog) Remove(ctx context.Context, id string) error {
	if _, err := c.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("catalog: remove: %w", err)
	}
	return nil
}

// List yields the entries, by ID, optionally only those in one of states.
// An error ends the sequence, yielded with a zero Tenant.
func (c *Catalog) List(ctx context.Context, states ...State) iter.Seq2[Tenant, error] {
	return func(yield func(Tenant, error) bool) {
		filter := bson.D{}
		if len(states) > 0 {
			filter = bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: states}}}}
		}
		cur, err := c.coll.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			yield(Tenant{}, fmt.Errorf("catalog: list: %w", err))
			return
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			var t Tenant
			if err := cur.Decode(&t); err != nil {
				yield(Tenant{}, fmt.Errorf("catalog: list: %w", err))
				return
			}
			if !yield(t, nil) {
				return
			}
		}
		if err := cur.Err(); err != nil {
			yield(Tenant{}, fmt.Errorf("catalog: list: %w", err))
		}
	}
}

// IDs yields the IDs of the tenants in one of states (all if none),
// stopping at the first error, which it reports through errp if not nil:
// the shape migrate.Migrator.UpAll and Manager-wide jobs take.
func (c *Catalog) IDs(ctx context.Context, errp *error, states ...State) iter.Seq[string] {
	return func(yield func(string) bool) {
		for t, err := range c.List(ctx, states...) {
			if err != nil {
				if errp != nil {
					*errp = err
				}
				return
			}
			if !yield(t.ID) {
				return
			}
		}
	}
}

// Router returns a Router that serves only active tenants of the catalog,
// and sets each one's tier (its pool size and lease limit from tiers; an
// empty tier keeps the Manager's defaults) and its placement. A tier
// missing from tiers, or a placement missing from WithPlacements, fails
// the route. tiers nil means mongotenant.DefaultTiers().
func (c *Catalog) Router(tiers map[string]mongotenant.Tier) mongotenant.Router {
	if tiers == nil {
		tiers = mongotenant.DefaultTiers()
	}
	tiers = maps.Clone(tiers) // the caller's map may change after this returns
	return func(ctx context.Context, id string, r *mongotenant.Route) error {
		if c.knownUnknown(id) {
			return fmt.Errorf("catalog: %w", mongotenant.ErrUnknownTenant)
		}
		gen := c.registered.Load()
		t, err := c.Get(ctx, id)
		if errors.Is(err, mongotenant.ErrUnknownTenant) {
			c.rememberUnknown(id, gen)
		}
		if err != nil {
			return err
		}
		switch {
		case t.State == Active || admitted(ctx, t.State):
		case t.State == Offboarded:
			return fmt.Errorf("catalog: offboarded: %w", mongotenant.ErrUnknownTenant)
		default:
			return fmt.Errorf("catalog: %s: %w", t.State, mongotenant.ErrTenantSuspended)
		}
		if t.Tier != "" {
			tier, ok := tiers[t.Tier]
			if !ok {
				return fmt.Errorf("catalog: the tenant's tier is not configured")
			}
			if tier.PoolSize > 0 {
				r.PoolSize = tier.PoolSize
			}
			if tier.MaxLeases > 0 {
				r.MaxLeases = tier.MaxLeases
			}
			r.Tier = t.Tier
		}
		if t.Placement != "" {
			uri, ok := c.placements[t.Placement]
			if !ok {
				return fmt.Errorf("catalog: the tenant's placement is not configured")
			}
			r.Cluster = uri
		}
		return nil
	}
}

// admitKey marks a ctx whose acquisitions the Router serves in more states
// than active.
type admitKey struct{}

// Admit returns a ctx under which the Router also serves tenants in
// states: for provisioning and offboarding work on a tenant's database.
// Use it with mongotenant.Manager.DoIsolated, which caches nothing (the
// lifecycle package does): a route resolved under it by Acquire would be
// cached and serve every caller until the route TTL.
func Admit(ctx context.Context, states ...State) context.Context {
	return context.WithValue(ctx, admitKey{}, slices.Clone(states))
}

func admitted(ctx context.Context, s State) bool {
	states, _ := ctx.Value(admitKey{}).([]State)
	return slices.Contains(states, s)
}

func (c *Catalog) knownUnknown(id string) bool {
	if c.negative == nil {
		return false
	}
	until, ok := c.negative.Get(id)
	if ok && c.now().Before(until) {
		return true
	}
	if ok {
		c.negative.Remove(id)
	}
	return false
}

// rememberUnknown remembers id as unknown, unless a Register wrote since
// the lookup began (gen): its answer may be stale. A Register that counts
// itself after this check removes the entry itself, after.
func (c *Catalog) rememberUnknown(id string, gen uint64) {
	if c.negative == nil || c.negTTL <= 0 {
		return
	}
	c.negative.Add(id, c.now().Add(c.negTTL))
	if c.registered.Load() != gen {
		c.negative.Remove(id)
	}
}

func (s State) valid() bool {
	switch s {
	case Provisioning, Active, Suspended, Offboarding, Offboarded:
		return true
	}
	return false
}
