package integration_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/migrate"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// runLog counts the runs of each migration for each database.
type runLog struct {
	mu   sync.Mutex
	runs map[string]int // "<db> v<version>" -> runs
}

func (r *runLog) add(db *mongo.Database, v int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]int{}
	}
	r.runs[fmt.Sprintf("%s v%d", db.Name(), v)]++
}

func (r *runLog) count(db string, v int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[fmt.Sprintf("%s v%d", db, v)]
}

// threeMigrations writes a document, updates it, and indexes the
// collection; v2 fails for the databases in failFor.
func threeMigrations(log *runLog, failFor map[string]bool) []migrate.Migration {
	return []migrate.Migration{
		{Version: 1, Name: "meta", Up: func(ctx context.Context, db *mongo.Database) error {
			log.add(db, 1)
			_, err := db.Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "meta"}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "schema", Value: 1}}}}, optsUpsert())
			return err
		}},
		{Version: 2, Name: "plan", Up: func(ctx context.Context, db *mongo.Database) error {
			log.add(db, 2)
			if failFor[db.Name()] {
				return errors.New("no plan for this tenant")
			}
			_, err := db.Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "meta"}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "plan", Value: "free"}}}})
			return err
		}},
		{Version: 3, Name: "posts by author", Up: func(ctx context.Context, db *mongo.Database) error {
			log.add(db, 3)
			_, err := db.Collection("posts").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "author", Value: 1}}})
			return err
		}},
	}
}

// TestMigrateBulkTwoCallers: 500 tenants, parallelism 8, two callers at
// once. Every tenant but the 3 whose v2 fails ends at the latest version,
// each migration ran once for each of them, and both reports name the 3.
func TestMigrateBulkTwoCallers(t *testing.T) {
	const tenants = 500
	m, raw := setup(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(20))
	failing := map[string]bool{"user_m007_db": true, "user_m250_db": true, "user_m499_db": true}
	var log runLog
	mg, err := migrate.New(threeMigrations(&log, failing))
	require.NoError(t, err)
	ids := func(yield func(string) bool) {
		for i := range tenants {
			if !yield(fmt.Sprintf("m%03d", i)) {
				return
			}
		}
	}

	ctx := context.Background()
	reports := make([]migrate.Report, 2)
	var progressCalls [2]int
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Go(func() {
			reports[c] = mg.UpAll(ctx, m, ids, 8, func(p migrate.Progress) { progressCalls[c] = p.Done })
		})
	}
	wg.Wait()

	for c, r := range reports {
		assert.Len(t, r.Tenants, tenants, "caller %d", c)
		assert.Equal(t, tenants, progressCalls[c], "caller %d: progress after each tenant", c)
		assert.Equal(t, 3, r.Failed, "caller %d", c)
		assert.Equal(t, tenants-3, r.Migrated+r.Current, "caller %d", c)
		var failed []string
		for _, tr := range r.Tenants {
			if tr.Err != nil {
				failed = append(failed, tr.TenantID)
				assert.ErrorIs(t, tr.Err, migrate.ErrFailed)
				assert.Equal(t, 1, tr.To, "%s stops before the failing version", tr.TenantID)
			}
		}
		assert.Equal(t, []string{"m007", "m250", "m499"}, failed, "caller %d", c)
	}
	assert.Equal(t, tenants-3, reports[0].Migrated+reports[1].Migrated, "each tenant was migrated by one caller")

	for i := range tenants {
		db := fmt.Sprintf("user_m%03d_db", i)
		v, err := mg.Version(ctx, raw.Database(db))
		require.NoError(t, err)
		if failing[db] {
			assert.Equal(t, 1, v, db)
			assert.Equal(t, 1, log.count(db, 1), "%s: v1 ran once", db)
			assert.Equal(t, 0, log.count(db, 3), "%s: nothing after the failure", db)
			continue
		}
		require.Equal(t, 3, v, db)
		for ver := 1; ver <= 3; ver++ {
			require.Equal(t, 1, log.count(db, ver), "%s: v%d ran once", db, ver)
		}
	}
}

// TestMigrateLazyAcrossManagers: with Init as the init hook, two Managers
// (two app instances) that acquire a new tenant at once run each
// migration once, and a later Manager finds the tenant current.
func TestMigrateLazyAcrossManagers(t *testing.T) {
	uri := mongotest.URI(t)
	raw := connect(t, uri)
	var log runLog
	mg, err := migrate.New(threeMigrations(&log, nil))
	require.NoError(t, err)
	m1 := newManager(t, uri, mongotenant.WithInit(mg.Init))
	m2 := newManager(t, uri, mongotenant.WithInit(mg.Init))

	var wg sync.WaitGroup
	for _, m := range []*mongotenant.Manager{m1, m2, m1, m2} {
		wg.Go(func() {
			assert.NoError(t, m.Do(context.Background(), "lazy", func(ctx context.Context, db *mongo.Database) error {
				n, err := db.Collection("meta").CountDocuments(ctx, bson.D{{Key: "plan", Value: "free"}})
				if err == nil && n != 1 {
					err = fmt.Errorf("the lease came before the migrations: %d documents", n)
				}
				return err
			}))
		})
	}
	wg.Wait()
	for v := 1; v <= 3; v++ {
		assert.Equal(t, 1, log.count("user_lazy_db", v), "v%d", v)
	}
	v, err := mg.Version(context.Background(), raw.Database("user_lazy_db"))
	require.NoError(t, err)
	assert.Equal(t, 3, v)
}

func optsUpsert() *options.UpdateOneOptionsBuilder { return options.UpdateOne().SetUpsert(true) }

// TestMigrateLocks: a run waits while another holds an unexpired lock, up
// to its ctx; it takes over the lock of a run that died (expired); and a
// database at a version this code does not know is left alone.
func TestMigrateLocks(t *testing.T) {
	_, raw := setup(t)
	var log runLog
	mg, err := migrate.New(threeMigrations(&log, nil), migrate.WithLockTTL(time.Minute))
	require.NoError(t, err)
	ctx := context.Background()
	db := raw.Database("user_locked_db")
	coll := db.Collection(migrate.DefaultCollection)

	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "lock"}, {Key: "owner", Value: "another process"}, {Key: "expires", Value: time.Now().Add(time.Hour)}})
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = mg.Up(short, db)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a live lock is waited for until ctx ends")
	assert.Equal(t, 0, log.count(db.Name(), 1))

	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "lock"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: time.Now().Add(-time.Second)}}}})
	require.NoError(t, err)
	res, err := mg.Up(ctx, db)
	require.NoError(t, err, "an expired lock is taken over")
	assert.Equal(t, migrate.Result{From: 0, To: 3, Applied: []int{1, 2, 3}}, res)
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: "lock"}})
	require.NoError(t, err)
	assert.Zero(t, n, "the lock is released")

	res, err = mg.Up(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, migrate.Result{From: 3, To: 3}, res, "current: nothing to do")

	newer := raw.Database("user_newer_db")
	_, err = newer.Collection(migrate.DefaultCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: "state"}, {Key: "version", Value: 9}})
	require.NoError(t, err)
	_, err = mg.Up(ctx, newer)
	require.ErrorIs(t, err, migrate.ErrTooNew)
	assert.Equal(t, 0, log.count(newer.Name(), 1))
	assert.Equal(t, 9, mustVersion(t, mg, newer), "left alone")
}

func mustVersion(t *testing.T, mg *migrate.Migrator, db *mongo.Database) int {
	t.Helper()
	v, err := mg.Version(context.Background(), db)
	require.NoError(t, err)
	return v
}

// TestMigrateStopsWhenItsLockMayBeLost: a run that could not renew its
// lock for a whole TTL (here, a migration that took longer, on a clock the
// test moves) stops before its next migration with ErrLockLost, and a
// later run completes the rest.
func TestMigrateStopsWhenItsLockMayBeLost(t *testing.T) {
	_, raw := setup(t)
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	var log runLog
	ms := threeMigrations(&log, nil)
	slow := ms[0].Up
	ms[0].Up = func(ctx context.Context, db *mongo.Database) error {
		mu.Lock()
		now = now.Add(2 * time.Hour) // longer than the TTL, with no renewal in between
		mu.Unlock()
		return slow(ctx, db)
	}
	mg, err := migrate.New(ms, migrate.WithLockTTL(time.Hour), migrate.WithClock(clock))
	require.NoError(t, err)
	db := raw.Database("user_stalled_db")
	res, err := mg.Up(context.Background(), db)
	require.ErrorIs(t, err, migrate.ErrLockLost)
	assert.Equal(t, []int{1}, res.Applied, "the migration under way finished and was recorded; the next did not start")
	assert.Equal(t, 0, log.count(db.Name(), 2))

	res, err = mg.Up(context.Background(), db)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 3}, res.Applied)
	assert.Equal(t, 1, log.count(db.Name(), 1))
}
