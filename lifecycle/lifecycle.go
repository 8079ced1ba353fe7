// Package lifecycle provisions and offboards tenants: it registers them in
// a catalog, brings their databases to the latest schema version, and
// drains, drops and tombstones them. Every step is idempotent, so a
// Provision or Offboard interrupted at any point (a cancelled ctx, a
// crash) completes when it is run again.
//
//	lc, err := lifecycle.New(m, cat, mg)
//	t, err := lc.Provision(ctx, "acme", lifecycle.Tier("premium"))
//	err = lc.Offboard(ctx, "acme", lifecycle.DropDatabase())
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/migrate"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ErrWrongState is returned by Provision for a tenant that is suspended or
// being offboarded: provisioning would undo an operator's decision.
var ErrWrongState = errors.New("lifecycle: the tenant is in a state this operation does not start from")

// Lifecycle provisions and offboards the tenants of one Manager and
// catalog. It is safe for concurrent use. Each state change is
// conditional on the state it starts from, so concurrent operations on one
// tenant, or an operator's change meanwhile, make one of them fail with
// catalog.ErrTransition instead of undoing the other.
type Lifecycle struct {
	m        *mongotenant.Manager
	cat      *catalog.Catalog
	mg       *migrate.Migrator // nil: no migrations
	progress func(tenantID, step string)
}

// An Option configures [New].
type Option func(*Lifecycle)

// WithProgress calls fn before each step of an operation, with the step's
// name (register, migrate, record version, activate; lookup, suspend,
// wait, drain, drop, tombstone), for a CLI's progress output.
// fn runs on the operation's goroutine and must not block.
func WithProgress(fn func(tenantID, step string)) Option {
	return func(lc *Lifecycle) { lc.progress = fn }
}

// New returns a Lifecycle. The Manager must route through cat.Router, so
// that the states the catalog records are enforced. mg may be nil.
func New(m *mongotenant.Manager, cat *catalog.Catalog, mg *migrate.Migrator, opts ...Option) (*Lifecycle, error) {
	if m == nil || cat == nil {
		return nil, errors.New("lifecycle: New needs a Manager and a Catalog")
	}
	lc := &Lifecycle{m: m, cat: cat, mg: mg}
	for _, o := range opts {
		o(lc)
	}
	return lc, nil
}

// step reports a step and checks ctx before it: an operation stopped
// between steps resumes at the first one not done.
func (lc *Lifecycle) step(ctx context.Context, id, name string) error {
	if lc.progress != nil {
		lc.progress(id, name)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lifecycle: before %s: %w", name, err)
	}
	return nil
}

type provision struct{ tier, placement string }

// A ProvisionOption sets what Provision registers.
type ProvisionOption func(*provision)

// Tier sets the new tenant's tier.
func Tier(name string) ProvisionOption { return func(p *provision) { p.tier = name } }

// Placement sets the new tenant's placement, a name given to
// catalog.WithPlacements.
func Placement(name string) ProvisionOption { return func(p *provision) { p.placement = name } }

// Provision registers tenantID as provisioning, brings its database to the
// latest schema version, records the version and activates it. The
// migrations run through [mongotenant.Manager.DoIsolated]: nothing serves
// the tenant until it is active. For a tenant already active it does
// nothing and returns its entry; for one provisioning (an earlier run
// stopped) it resumes with the entry's options; a tenant offboarded with
// its database dropped is provisioned afresh. Suspended, offboarding and
// offboarded-with-its-database-kept tenants fail with ErrWrongState.
func (lc *Lifecycle) Provision(ctx context.Context, tenantID string, opts ...ProvisionOption) (catalog.Tenant, error) {
	var p provision
	for _, o := range opts {
		o(&p)
	}
	if _, err := lc.m.DatabaseName(tenantID); err != nil {
		return catalog.Tenant{}, err
	}
	if err := lc.step(ctx, tenantID, "register"); err != nil {
		return catalog.Tenant{}, err
	}
	t, err := lc.cat.Register(ctx, catalog.Tenant{ID: tenantID, State: catalog.Provisioning, Tier: p.tier, Placement: p.placement})
	if errors.Is(err, catalog.ErrExists) {
		if t, err = lc.cat.Get(ctx, tenantID); err != nil {
			return catalog.Tenant{}, err
		}
		switch t.State {
		case catalog.Active:
			return t, nil
		case catalog.Provisioning:
		case catalog.Offboarded:
			return t, fmt.Errorf("%w: offboarded with its database kept; offboard it with DropDatabase, or use another ID", ErrWrongState)
		default:
			return t, fmt.Errorf("%w: %s", ErrWrongState, t.State)
		}
	} else if err != nil {
		return catalog.Tenant{}, err
	}

	version := 0
	if lc.mg != nil {
		if err := lc.step(ctx, tenantID, "migrate"); err != nil {
			return t, err
		}
		err := lc.m.DoIsolated(catalog.Admit(ctx, catalog.Provisioning), tenantID, func(ctx context.Context, db *mongo.Database) error {
			res, err := lc.mg.Up(ctx, db)
			version = res.To
			return err
		})
		if err != nil {
			return t, err
		}
		if err := lc.step(ctx, tenantID, "record version"); err != nil {
			return t, err
		}
		if err := lc.cat.SetSchemaVersion(ctx, tenantID, version); err != nil {
			return t, err
		}
	}
	if err := lc.step(ctx, tenantID, "activate"); err != nil {
		return t, err
	}
	if err := lc.cat.SetState(ctx, tenantID, catalog.Active, catalog.Provisioning); err != nil {
		return t, err
	}
	return lc.cat.Get(ctx, tenantID)
}

type offboard struct {
	drop, remove bool
	wait         time.Duration
}

// An OffboardOption changes what Offboard does.
type OffboardOption func(*offboard)

// DropDatabase confirms that Offboard may drop the tenant's database.
// Without it the database is kept.
func DropDatabase() OffboardOption { return func(o *offboard) { o.drop = true } }

// RemoveEntry deletes the catalog entry instead of leaving a tombstone.
func RemoveEntry() OffboardOption { return func(o *offboard) { o.remove = true } }

// WaitForOthers waits d after marking the tenant offboarding, before
// draining it, for the other app instances: each refuses the tenant once
// its route is refreshed, which starts at the first Release past the
// route TTL, and its leases already granted then finish. Set d to the
// route TTL plus the longest request. Offboard drains only its own
// Manager; without a wait, another instance may still be writing when the
// database is dropped.
func WaitForOthers(d time.Duration) OffboardOption { return func(o *offboard) { o.wait = d } }

// Offboard marks tenantID offboarding, so that no Manager serves it once
// its route is refreshed; waits for other instances if asked; drains this
// Manager's leases and transient work; drops the database if DropDatabase
// is given (through [mongotenant.Manager.DoIsolated], without the init
// hook, so that a tenant whose migrations fail can still be dropped); and
// tombstones (or removes) the entry. Run again on a tombstone, it drops
// a database that was kept if DropDatabase is given now. A tenant the
// catalog does not know fails with an error wrapping
// mongotenant.ErrUnknownTenant; one whose entry RemoveEntry removed is
// gone, and so it is unknown too.
func (lc *Lifecycle) Offboard(ctx context.Context, tenantID string, opts ...OffboardOption) error {
	var o offboard
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := lc.m.DatabaseName(tenantID); err != nil {
		return err
	}
	if err := lc.step(ctx, tenantID, "lookup"); err != nil {
		return err
	}
	t, err := lc.cat.Get(ctx, tenantID)
	if err != nil {
		return err
	}
	done := t.State == catalog.Offboarded && (t.Dropped || !o.drop)
	if done {
		if o.remove {
			return lc.cat.Remove(ctx, tenantID)
		}
		return nil
	}
	if t.State != catalog.Offboarded {
		if err := lc.step(ctx, tenantID, "suspend"); err != nil {
			return err
		}
		if err := lc.cat.SetState(ctx, tenantID, catalog.Offboarding); err != nil {
			return err
		}
	}
	if o.wait > 0 {
		if err := lc.step(ctx, tenantID, "wait"); err != nil {
			return err
		}
		timer := time.NewTimer(o.wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("lifecycle: waiting for other instances: %w", ctx.Err())
		case <-timer.C:
		}
	}
	if err := lc.step(ctx, tenantID, "drain"); err != nil {
		return err
	}
	if err := lc.m.Drain(ctx, tenantID); err != nil {
		return err
	}
	if o.drop {
		if err := lc.step(ctx, tenantID, "drop"); err != nil {
			return err
		}
		err := lc.m.DoIsolated(catalog.Admit(ctx, catalog.Offboarding, catalog.Offboarded), tenantID, func(ctx context.Context, db *mongo.Database) error {
			return db.Drop(ctx)
		})
		if err != nil {
			return err
		}
		// Forget, not Evict: the tenant's init state goes with its database.
		if err := lc.m.Forget(ctx, tenantID); err != nil {
			return err
		}
	}
	if err := lc.step(ctx, tenantID, "tombstone"); err != nil {
		return err
	}
	if o.remove {
		return lc.cat.Remove(ctx, tenantID)
	}
	return lc.cat.SetOffboarded(ctx, tenantID, o.drop || t.Dropped)
}
