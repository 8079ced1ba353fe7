package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/lifecycle"
	"github.com/mongotenant/mongotenant/migrate"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// platform is a Manager routed by a catalog, with migrations run lazily
// and by the lifecycle.
type platform struct {
	m     *mongotenant.Manager
	raw   *mongo.Client
	cat   *catalog.Catalog
	mg    *migrate.Migrator
	log   *runLog
	steps []string // the steps the lifecycle reported, in order
	stop  func(step string)
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	uri := mongotest.URI(t)
	p := &platform{raw: connect(t, uri), log: &runLog{}}
	var err error
	p.cat, err = catalog.New(p.raw.Database("platform").Collection("tenants"))
	require.NoError(t, err)
	p.mg, err = migrate.New(threeMigrations(p.log, nil))
	require.NoError(t, err)
	p.m = newManager(t, uri, mongotenant.WithRouter(p.cat.Router(nil)), mongotenant.WithInit(p.mg.Init),
		mongotenant.WithRouteTTL(200*time.Millisecond))
	return p
}

func (p *platform) lifecycle(t *testing.T) *lifecycle.Lifecycle {
	t.Helper()
	lc, err := lifecycle.New(p.m, p.cat, p.mg, lifecycle.WithProgress(func(_, step string) {
		p.steps = append(p.steps, step)
		if p.stop != nil {
			p.stop(step)
		}
	}))
	require.NoError(t, err)
	return lc
}

// status serves one request for tenant through the middleware.
func (p *platform) status(tenant string) int {
	h := tenanthttp.Middleware(p.m, tenanthttp.Header("X-Tenant-ID"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db, _ := tenanthttp.DatabaseFrom(r.Context())
		if _, err := db.Collection("posts").InsertOne(r.Context(), bson.D{{Key: "author", Value: "x"}}); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("X-Tenant-ID", tenant)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func (p *platform) databases(t *testing.T) []string {
	t.Helper()
	names, err := p.raw.ListDatabaseNames(context.Background(), bson.D{})
	require.NoError(t, err)
	return names
}

// TestLifecycle: provision, serve, suspend (403, clients evicted), resume,
// offboard (database dropped, entry tombstoned, 404).
func TestLifecycle(t *testing.T) {
	p := newPlatform(t)
	lc := p.lifecycle(t)
	ctx := context.Background()

	assert.Equal(t, http.StatusNotFound, p.status("acme"), "unknown before it is provisioned")
	tn, err := lc.Provision(ctx, "acme", lifecycle.Tier("premium"))
	require.NoError(t, err)
	assert.Equal(t, catalog.Active, tn.State)
	assert.Equal(t, 3, tn.SchemaVersion)
	assert.Equal(t, []string{"register", "migrate", "record version", "activate"}, p.steps)
	assert.Equal(t, http.StatusOK, p.status("acme"))
	ts, ok := p.m.TenantStats("acme")
	require.True(t, ok)
	assert.Equal(t, "premium", ts.Tier)
	again, err := lc.Provision(ctx, "acme")
	require.NoError(t, err, "provisioning an active tenant is a no-op")
	assert.Equal(t, tn.Created, again.Created)

	require.NoError(t, p.cat.SetState(ctx, "acme", catalog.Suspended))
	waitFor(t, "the suspension to be enforced", func() bool { return p.status("acme") == http.StatusForbidden })
	_, ok = p.m.TenantStats("acme")
	assert.False(t, ok, "the suspended tenant's client is evicted")
	_, err = lc.Provision(ctx, "acme")
	require.ErrorIs(t, err, lifecycle.ErrWrongState, "provisioning does not undo a suspension")

	require.NoError(t, p.cat.SetState(ctx, "acme", catalog.Active))
	assert.Equal(t, http.StatusOK, p.status("acme"), "resumed")

	p.steps = nil
	require.NoError(t, lc.Offboard(ctx, "acme", lifecycle.DropDatabase(), lifecycle.WaitForOthers(time.Millisecond)))
	assert.Equal(t, []string{"lookup", "suspend", "wait", "drain", "drop", "tombstone"}, p.steps)
	assert.NotContains(t, p.databases(t), "user_acme_db", "the database is dropped")
	tn, err = p.cat.Get(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, catalog.Offboarded, tn.State, "the entry is a tombstone")
	assert.Equal(t, http.StatusNotFound, p.status("acme"))
	require.NoError(t, lc.Offboard(ctx, "acme"), "offboarding again is a no-op")

	tn, err = lc.Provision(ctx, "acme")
	require.NoError(t, err, "an ID offboarded with its database dropped can be provisioned afresh")
	assert.Equal(t, 3, tn.SchemaVersion)
	assert.Equal(t, 2, p.log.count("user_acme_db", 1), "its new database was migrated from scratch")

	// Offboarded with its database kept: the ID is not handed to a new
	// tenant, who would inherit the data, until the database is dropped.
	require.NoError(t, lc.Offboard(ctx, "acme"))
	assert.Contains(t, p.databases(t), "user_acme_db")
	_, err = lc.Provision(ctx, "acme")
	require.ErrorIs(t, err, lifecycle.ErrWrongState)
	require.NoError(t, lc.Offboard(ctx, "acme", lifecycle.DropDatabase()), "a kept database is dropped later")
	assert.NotContains(t, p.databases(t), "user_acme_db")
	_, err = lc.Provision(ctx, "acme")
	require.NoError(t, err)

	// State changes do not undo each other: a tombstone is not resumed.
	require.NoError(t, lc.Offboard(ctx, "acme", lifecycle.DropDatabase()))
	require.ErrorIs(t, p.cat.SetState(ctx, "acme", catalog.Active, catalog.Suspended), catalog.ErrTransition)
	require.ErrorIs(t, lc.Offboard(ctx, "nobody"), mongotenant.ErrUnknownTenant)
	require.ErrorIs(t, lc.Offboard(ctx, "bad id!"), mongotenant.ErrInvalidTenant)
}

// TestOffboardATenantWhoseMigrationsFail: dropping does not run the init
// hook, so a tenant whose database cannot be migrated (a version this code
// does not know, after a rollback) can still be offboarded; and a failed
// Provision leaves nothing that serves the tenant.
func TestOffboardATenantWhoseMigrationsFail(t *testing.T) {
	p := newPlatform(t)
	lc := p.lifecycle(t)
	ctx := context.Background()
	_, err := lc.Provision(ctx, "rolledback")
	require.NoError(t, err)
	_, err = p.raw.Database("user_rolledback_db").Collection(migrate.DefaultCollection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "state"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 9}}}})
	require.NoError(t, err)
	require.NoError(t, p.m.Forget(ctx, "rolledback"))
	assert.Equal(t, http.StatusServiceUnavailable, p.status("rolledback"), "init fails: too new")
	require.NoError(t, lc.Offboard(ctx, "rolledback", lifecycle.DropDatabase()))
	assert.NotContains(t, p.databases(t), "user_rolledback_db")

	_, err = p.raw.Database("user_half_db").Collection(migrate.DefaultCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: "state"}, {Key: "version", Value: 9}})
	require.NoError(t, err)
	_, err = lc.Provision(ctx, "half")
	require.ErrorIs(t, err, migrate.ErrTooNew)
	assert.Equal(t, http.StatusForbidden, p.status("half"), "a tenant still provisioning is not served")
	_, cached := p.m.TenantStats("half")
	assert.False(t, cached, "nothing cached while provisioning")
}

// TestLifecycleResumesAfterACrash: Provision and Offboard stopped before
// each of their steps (a cancelled ctx, as a crash would) complete when run
// again, with each migration run once.
func TestLifecycleResumesAfterACrash(t *testing.T) {
	p := newPlatform(t)
	lc := p.lifecycle(t)
	provisionSteps := []string{"register", "migrate", "record version", "activate"}
	offboardSteps := []string{"lookup", "suspend", "wait", "drain", "drop", "tombstone"}

	for i, crashAt := range provisionSteps {
		id := fmt.Sprintf("crash-p%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		p.stop = func(step string) {
			if step == crashAt {
				cancel()
			}
		}
		_, err := lc.Provision(ctx, id)
		require.ErrorIs(t, err, context.Canceled, "stopped before %s", crashAt)
		cancel()
		p.stop = nil
		tn, err := lc.Provision(context.Background(), id)
		require.NoError(t, err, "retry after a stop before %s", crashAt)
		assert.Equal(t, catalog.Active, tn.State, crashAt)
		assert.Equal(t, 3, tn.SchemaVersion, crashAt)
		for v := 1; v <= 3; v++ {
			assert.Equal(t, 1, p.log.count("user_"+id+"_db", v), "%s: v%d ran once", crashAt, v)
		}
		assert.Equal(t, http.StatusOK, p.status(id), crashAt)
	}

	for i, crashAt := range offboardSteps {
		id := fmt.Sprintf("crash-o%d", i)
		_, err := lc.Provision(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, p.status(id))
		ctx, cancel := context.WithCancel(context.Background())
		p.stop = func(step string) {
			if step == crashAt {
				cancel()
			}
		}
		err = lc.Offboard(ctx, id, lifecycle.DropDatabase(), lifecycle.WaitForOthers(time.Millisecond))
		require.ErrorIs(t, err, context.Canceled, "stopped before %s", crashAt)
		cancel()
		p.stop = nil
		if slices.Index(offboardSteps, crashAt) > 1 { // suspended already
			assert.Contains(t, []int{http.StatusForbidden, http.StatusOK}, p.status(id))
		}
		require.NoError(t, lc.Offboard(context.Background(), id, lifecycle.DropDatabase(), lifecycle.WaitForOthers(time.Millisecond)),
			"retry after a stop before %s", crashAt)
		tn, err := p.cat.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, catalog.Offboarded, tn.State, crashAt)
		assert.NotContains(t, p.databases(t), "user_"+id+"_db", crashAt)
		assert.Equal(t, http.StatusNotFound, p.status(id), crashAt)
	}
}

// TestOffboardWaitsForLeases: Offboard drains this instance's leases
// before it drops the database: a request holding a lease finishes first.
func TestOffboardWaitsForLeases(t *testing.T) {
	p := newPlatform(t)
	lc := p.lifecycle(t)
	ctx := context.Background()
	_, err := lc.Provision(ctx, "busy")
	require.NoError(t, err)
	l, err := p.m.Acquire(ctx, "busy")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- lc.Offboard(ctx, "busy", lifecycle.DropDatabase()) }()
	waitFor(t, "the offboarding to reach the drain", func() bool {
		tn, err := p.cat.Get(ctx, "busy")
		return err == nil && tn.State == catalog.Offboarding
	})
	_, err = l.Database().Collection("posts").InsertOne(ctx, bson.D{{Key: "last", Value: "write"}})
	require.NoError(t, err, "the lease still works while the offboarding waits")
	select {
	case err := <-done:
		t.Fatalf("Offboard returned (%v) while a lease was held", err)
	default:
	}
	l.Release()
	require.NoError(t, <-done)
	assert.NotContains(t, p.databases(t), "user_busy_db")

	// A drain that does not finish ends with its ctx, cancelled once the
	// offboarding has reached it.
	_, err = lc.Provision(ctx, "stuck")
	require.NoError(t, err)
	l, err = p.m.Acquire(ctx, "stuck")
	require.NoError(t, err)
	defer l.Release()
	short, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- lc.Offboard(short, "stuck", lifecycle.DropDatabase()) }()
	waitFor(t, "the offboarding to reach the drain", func() bool {
		tn, err := p.cat.Get(ctx, "stuck")
		return err == nil && tn.State == catalog.Offboarding
	})
	cancel()
	err = <-done
	require.True(t, errors.Is(err, context.Canceled), "a drain that does not finish ends with ctx: %v", err)
	assert.Contains(t, p.databases(t), "user_stuck_db", "nothing is dropped under a live lease")
}
