// Package migrate runs versioned schema migrations in every tenant's
// database: ordered migrations, each tenant's applied version recorded in
// its own database, applied lazily before a tenant's first lease
// ([Migrator.Init] with mongotenant.WithInit) or in bulk across tenants
// with bounded parallelism ([Migrator.UpAll]).
//
//	mg, err := migrate.New([]migrate.Migration{
//		{Version: 1, Name: "posts by author", Up: func(ctx context.Context, db *mongo.Database) error {
//			_, err := db.Collection("posts").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "author", Value: 1}}})
//			return err
//		}},
//	})
//	m, err := mongotenant.New(uri, mongotenant.WithInit(mg.Init))
//
// Several processes may migrate the same tenant at once, lazily or in bulk:
// a lock document in the tenant's database, with an expiry that its holder
// renews while it works, lets one of them run the pending migrations while
// the others wait, then find nothing left to do. So each migration runs once
// per tenant, unless a process dies between running a migration and
// recording it (the next run then runs it again), or a holder cannot renew
// its lock for a whole TTL while a migration runs (it stops before the
// next one, with ErrLockLost, but the one under way may overlap with the
// run that took over). Expiries are written and compared by each process's
// clock: keep clocks within a small part of the TTL (DefaultLockTTL is a
// minute). Write migrations that can run twice (createIndexes, updates
// with a filter that excludes migrated documents), as with any migration
// tool without transactions.
//
// The state lives in the collection [DefaultCollection] of each tenant's
// database: the document "state" ({version, applied: [{version, name, at}]})
// and, while a run holds it, the document "lock" ({owner, expires}).
package migrate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A Migration is one step of a tenant database's schema. Version orders
// the steps; once released, a migration's Version and effect must never
// change.
type Migration struct {
	Version int
	Name    string
	Up      func(ctx context.Context, db *mongo.Database) error
}

// Defaults of the options of [New].
const (
	DefaultCollection = "mongotenant_migrations"
	DefaultLockTTL    = time.Minute
)

// Errors. Errors of [New] wrap ErrInvalid; a failed migration's error wraps
// ErrFailed and the migration's own error; a database whose recorded
// version is above the latest known one wraps ErrTooNew, which no
// migration is run against.
var (
	ErrInvalid = errors.New("migrate: invalid migrations or options")
	ErrFailed  = errors.New("migrate: migration failed")
	ErrTooNew  = errors.New("migrate: database is at a version this code does not know")
)

// An Option configures [New].
type Option func(*Migrator)

// WithCollection sets the collection that holds the state and the lock in
// each tenant's database. Default [DefaultCollection].
func WithCollection(name string) Option { return func(mg *Migrator) { mg.collection = name } }

// WithLockTTL sets how long a lock outlives a holder that stops renewing
// it (a process that died). The holder renews it every third of the TTL
// while it works. Default [DefaultLockTTL].
func WithLockTTL(d time.Duration) Option { return func(mg *Migrator) { mg.lockTTL = d } }

// WithClock sets the clock that lock expiries are written and compared
// by, and applied migrations stamped with. Default time.Now; tests of
// stalled runs can move time on. A nil now keeps the default.
func WithClock(now func() time.Time) Option {
	return func(mg *Migrator) {
		if now != nil {
			mg.now = now
		}
	}
}

// Migrator applies a fixed list of migrations. It is safe for concurrent
// use.
type Migrator struct {
	migrations []Migration // by Version
	collection string
	lockTTL    time.Duration
	owner      string           // this Migrator's name on the locks it takes
	now        func() time.Time // the lock clock; tests may replace it
	poll       time.Duration    // how often a waiter looks at a held lock
}

// New returns a Migrator for migrations, which it sorts by Version.
// Versions must be positive and distinct, names non-empty, Up non-nil.
func New(migrations []Migration, opts ...Option) (*Migrator, error) {
	mg := &Migrator{
		migrations: slices.Clone(migrations),
		collection: DefaultCollection,
		lockTTL:    DefaultLockTTL,
		now:        time.Now,
		poll:       50 * time.Millisecond,
	}
	for _, o := range opts {
		o(mg)
	}
	slices.SortFunc(mg.migrations, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	for i, m := range mg.migrations {
		switch {
		case m.Version < 1:
			return nil, fmt.Errorf("%w: version %d: versions start at 1", ErrInvalid, m.Version)
		case i > 0 && mg.migrations[i-1].Version == m.Version:
			return nil, fmt.Errorf("%w: version %d appears twice", ErrInvalid, m.Version)
		case m.Name == "":
			return nil, fmt.Errorf("%w: version %d has no name", ErrInvalid, m.Version)
		case m.Up == nil:
			return nil, fmt.Errorf("%w: version %d has no Up", ErrInvalid, m.Version)
		}
	}
	switch {
	case mg.collection == "":
		return nil, fmt.Errorf("%w: WithCollection(\"\")", ErrInvalid)
	case mg.lockTTL <= 0:
		return nil, fmt.Errorf("%w: WithLockTTL(%v): must be > 0", ErrInvalid, mg.lockTTL)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	mg.owner = hex.EncodeToString(id[:])
	return mg, nil
}

// Latest returns the highest version, 0 if there are no migrations.
func (mg *Migrator) Latest() int {
	if len(mg.migrations) == 0 {
		return 0
	}
	return mg.migrations[len(mg.migrations)-1].Version
}

// Migrations returns the migrations, by version.
func (mg *Migrator) Migrations() []Migration { return slices.Clone(mg.migrations) }

// Result is what [Migrator.Up] did to one database.
type Result struct {
	From, To int   // the version before and after
	Applied  []int // the versions this call ran, in order
}

// state is the document "state".
type state struct {
	Version int       `bson:"version"`
	Applied []applied `bson:"applied"`
}

type applied struct {
	Version int       `bson:"version"`
	Name    string    `bson:"name"`
	At      time.Time `bson:"at"`
}

// Version returns db's recorded version: 0 for a database never migrated.
func (mg *Migrator) Version(ctx context.Context, db *mongo.Database) (int, error) {
	var s state
	err := db.Collection(mg.collection).FindOne(ctx, bson.D{{Key: "_id", Value: "state"}}).Decode(&s)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("migrate: read the version: %w", err)
	}
	return s.Version, nil
}

// Init is [Migrator.Up] in the shape of mongotenant.WithInit: it brings a
// tenant's database to the latest version before the tenant's first lease.
func (mg *Migrator) Init(ctx context.Context, tenantID string, db *mongo.Database) error {
	_, err := mg.Up(ctx, db)
	return err
}

// Up brings db to the latest version: it takes db's lock, waiting while
// another run holds it, runs the pending migrations in order, recording
// each, and releases the lock. A database already at the latest version
// costs one read and no lock. The first failing migration ends the run
// with an error wrapping [ErrFailed]; the versions before it stay applied.
func (mg *Migrator) Up(ctx context.Context, db *mongo.Database) (Result, error) {
	v, err := mg.Version(ctx, db)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: v, To: v}
	switch {
	case v > mg.Latest():
		return res, fmt.Errorf("%w: version %d, latest known %d", ErrTooNew, v, mg.Latest())
	case v == mg.Latest():
		return res, nil
	}
	l, err := mg.lock(ctx, db)
	if err != nil {
		return res, err
	}
	defer l.release()

	if v, err = mg.Version(ctx, db); err != nil { // another run may have gone first
		return res, err
	}
	res.From, res.To = v, v
	if v > mg.Latest() {
		return res, fmt.Errorf("%w: version %d, latest known %d", ErrTooNew, v, mg.Latest())
	}
	for _, m := range mg.migrations {
		if m.Version <= v {
			continue
		}
		if err := l.lost(); err != nil {
			return res, err
		}
		if err := m.Up(ctx, db); err != nil {
			return res, fmt.Errorf("%w: version %d (%s): %w", ErrFailed, m.Version, m.Name, err)
		}
		if err := mg.record(ctx, db, m); err != nil {
			return res, err
		}
		res.To = m.Version
		res.Applied = append(res.Applied, m.Version)
	}
	return res, nil
}

// record marks m applied in db.
func (mg *Migrator) record(ctx context.Context, db *mongo.Database, m Migration) error {
	_, err := db.Collection(mg.collection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "state"}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "version", Value: m.Version}}},
			{Key: "$push", Value: bson.D{{Key: "applied", Value: applied{Version: m.Version, Name: m.Name, At: mg.now().UTC()}}}},
		},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("migrate: version %d ran, but recording it failed (it will run again): %w", m.Version, err)
	}
	return nil
}
