package mongotenant_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var errMyCause = errors.New("the request's budget ran out")

// TestWaitErrorsWrapTheContextAndItsCause: whatever the wait (a bulkhead,
// the budget, another caller's init), an error from a ctx that carries a
// cause wraps both ctx.Err() and the cause.
func TestWaitErrorsWrapTheContextAndItsCause(t *testing.T) {
	release := make(chan struct{})
	for _, tc := range []struct {
		name     string
		opts     []mongotenant.Option
		setup    func(t *testing.T, m *mongotenant.Manager) // leaves "t" unable to get a lease
		sentinel error
	}{
		{"bulkhead", []mongotenant.Option{mongotenant.WithMaxLeases(1)}, func(t *testing.T, m *mongotenant.Manager) {
			t.Cleanup(acquire(t, m, "t").Release)
		}, mongotenant.ErrTenantBusy},
		{"budget", []mongotenant.Option{mongotenant.WithConnectionBudget(clientCost, mongotenant.BudgetWait)}, func(t *testing.T, m *mongotenant.Manager) {
			t.Cleanup(acquire(t, m, "other").Release)
		}, mongotenant.ErrBudgetExceeded},
		{"another caller's init", []mongotenant.Option{mongotenant.WithInit(func(context.Context, string, *mongo.Database) error {
			<-release
			return nil
		})}, func(t *testing.T, m *mongotenant.Manager) {
			first := acquireLater(m, "t")
			t.Cleanup(func() { close(release); require.NoError(t, <-first) })
			waitFor(t, "the init to start", func() bool { return m.Stats().Leases == 1 })
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, tc.opts...)
			tc.setup(t, m)
			ctx, cancel := context.WithTimeoutCause(context.Background(), 20*time.Millisecond, errMyCause)
			defer cancel()
			_, err := m.Acquire(ctx, "t")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, errMyCause)
			if tc.sentinel != nil {
				require.ErrorIs(t, err, tc.sentinel)
			}

			ctx, cancelCause := context.WithCancelCause(context.Background())
			cancelCause(errMyCause)
			_, err = m.Acquire(ctx, "t")
			require.ErrorIs(t, err, context.Canceled)
			require.ErrorIs(t, err, errMyCause)
		})
	}
}

// TestAWaiterIsNeverFailedByAnotherCallersContext: the leader of a
// client creation waits for the budget and gives up with its own ctx and
// cause; the caller waiting for that creation does not inherit the failure:
// it leads in turn, with its own ctx, and is served.
func TestAWaiterIsNeverFailedByAnotherCallersContext(t *testing.T) {
	m := newManager(t, mongotenant.WithConnectionBudget(clientCost, mongotenant.BudgetWait))
	held := acquire(t, m, "a") // the budget is full while this is held

	leaderCtx, cancelLeader := context.WithCancelCause(context.Background())
	leader := make(chan error, 1)
	go func() {
		_, err := m.Acquire(leaderCtx, "b")
		leader <- err
	}()
	waitFor(t, "the leader to wait for the budget", func() bool { return m.Stats().Waiting == 1 })
	waiter := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := m.Acquire(ctx, "b")
		if err == nil {
			l.Release()
		}
		waiter <- err
	}()
	waitFor(t, "the second caller to wait", func() bool { return m.Stats().Waiting == 2 })

	cancelLeader(errMyCause)
	err := <-leader
	require.ErrorIs(t, err, errMyCause)
	require.ErrorIs(t, err, mongotenant.ErrBudgetExceeded)
	waitFor(t, "the waiter to take over the wait with its own ctx", func() bool { return m.Stats().Waiting == 1 })
	held.Release() // a's client can go now
	require.NoError(t, <-waiter)
	s := m.Stats()
	assert.Equal(t, uint64(1), s.RefusedBudget)
	assert.Equal(t, uint64(2), s.Misses)
}

// TestEveryErrorWrapsASentinel: the errors of Acquire, Do, Database, Evict
// and Refresh for each cause, and that none repeats a secret.
func TestEveryErrorWrapsASentinel(t *testing.T) {
	const secret = "pa55-WORD-s3cr3t"
	billingDown := errors.New("billing down")
	var fineDown atomic.Bool
	m := newManager(t,
		mongotenant.WithTiers(func(_ context.Context, id string) (string, error) {
			switch {
			case id == "unknown":
				return "platinum", nil
			case id == "down", id == "fine" && fineDown.Load():
				return "", billingDown
			}
			return "free", nil
		}, nil),
		mongotenant.WithPlacement(func(_ context.Context, id string) (string, error) {
			if id == "badplace" {
				return "mongodb://u:" + secret + "@127.0.0.1:1/?maxPoolSize=" + secret, nil
			}
			return "", nil
		}),
		mongotenant.WithTenantAuth(func(_ context.Context, id string) (options.Credential, error) {
			if id == "badauth" {
				return options.Credential{AuthMechanism: "BOGUS-" + secret, Username: "u", Password: secret}, nil
			}
			return options.Credential{}, nil
		}),
		mongotenant.WithInit(func(_ context.Context, id string, _ *mongo.Database) error {
			if id == "badinit" {
				return errors.New("index build failed")
			}
			return nil
		}))
	ctx := context.Background()
	for _, tc := range []struct {
		id       string
		sentinel error
	}{
		{"unknown", mongotenant.ErrRoute},
		{"down", mongotenant.ErrRoute},
		{"badplace", mongotenant.ErrRoute},
		{"badauth", mongotenant.ErrCreateClient},
		{"badinit", mongotenant.ErrInit},
		{"../admin", mongotenant.ErrInvalidTenant},
	} {
		_, err := m.Acquire(ctx, tc.id)
		require.ErrorIs(t, err, tc.sentinel, tc.id)
		assert.NotContains(t, err.Error(), secret, tc.id)
		err = m.Do(ctx, tc.id, func(context.Context, *mongo.Database) error { return nil })
		require.ErrorIs(t, err, tc.sentinel, tc.id)
		dctx, cancel := context.WithCancel(ctx)
		_, err = m.Database(dctx, tc.id)
		cancel()
		require.ErrorIs(t, err, tc.sentinel, tc.id)
	}
	_, err := m.Acquire(ctx, "down")
	require.ErrorIs(t, err, billingDown, "the router's own error is wrapped too")

	acquire(t, m, "fine").Release()
	require.NoError(t, m.Refresh(ctx, "fine"))
	fineDown.Store(true)
	require.ErrorIs(t, m.Refresh(ctx, "fine"), mongotenant.ErrRoute)
	ts, ok := m.TenantStats("fine")
	require.True(t, ok, "a failed refresh keeps the old route")
	assert.Equal(t, "free", ts.Tier)
	require.NoError(t, m.Refresh(ctx, "nobody"), "a tenant not held resolves at its next Acquire")
	require.ErrorIs(t, m.Refresh(ctx, "$cmd"), mongotenant.ErrInvalidTenant)
	require.ErrorIs(t, m.Evict(ctx, "nobody"), mongotenant.ErrTenantNotFound)
	require.ErrorIs(t, m.Evict(ctx, "$cmd"), mongotenant.ErrInvalidTenant)

	s := m.Stats()
	assert.Equal(t, uint64(3*3+1), s.RefusedRoute)
	assert.Equal(t, uint64(3), s.RefusedCreate)
	assert.Equal(t, uint64(3), s.RefusedInit)
	assert.Equal(t, uint64(3), s.RefusedInvalid)

	require.NoError(t, m.Close(ctx))
	_, err = m.Acquire(ctx, "fine")
	require.ErrorIs(t, err, mongotenant.ErrClosed)
	require.ErrorIs(t, m.Evict(ctx, "fine"), mongotenant.ErrClosed)
	require.ErrorIs(t, m.Refresh(ctx, "fine"), mongotenant.ErrClosed)
	assert.Equal(t, uint64(1), m.Stats().RefusedClosed)
}

// TestNewErrorsNameTheOptionNotItsValue: a URI the driver refuses gets an
// error that names the failing option and repeats none of the URI.
func TestNewErrorsNameTheOptionNotItsValue(t *testing.T) {
	const secret = "zz%%s3cr3t"
	for uri, want := range map[string]string{
		"mongodb://127.0.0.1/?maxPoolSize=" + secret:                        "maxPoolSize",
		"mongodb://127.0.0.1/?tlsCertificateKeyFilePassword=" + secret:      "tlsCertificateKeyFilePassword",
		"mongodb://u:" + secret + "@127.0.0.1/":                             "does not parse",
		"mongodb://127.0.0.1/?appname=ok&connectTimeoutMS=" + secret + "ms": "connectTimeoutMS",
		"postgres://u:" + secret + "@127.0.0.1/":                            "mongodb://",
	} {
		_, err := mongotenant.New(uri)
		require.ErrorIs(t, err, mongotenant.ErrInvalidOption, uri)
		assert.Contains(t, err.Error(), want, uri)
		assert.NotContains(t, err.Error(), "s3cr3t", uri)
	}
	_, err := mongotenant.New(unreachable, mongotenant.WithClientOptions(
		options.Client().SetAppName("s3cr3t-app").SetHeartbeatInterval(time.Millisecond)))
	require.ErrorIs(t, err, mongotenant.ErrInvalidOption)
	assert.NotContains(t, err.Error(), "s3cr3t")
	assert.True(t, strings.Contains(err.Error(), "do not validate"), err.Error())
}
