package mongotenant_test

import (
	"bytes"
	"context"

	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A hook is planted in a user callback. Its first call blocks until open is
// closed, then panics; later calls return.
type hook struct {
	calls atomic.Int32
	open  chan struct{}
}

type boom struct{}

func newHook() *hook { return &hook{open: make(chan struct{})} }

func (h *hook) call() {
	if h.calls.Add(1) == 1 {
		<-h.open
		panic(boom{})
	}
}

type strategyFunc func(string) string

func (f strategyFunc) Group(id string) string { return f(id) }

// callbacks are the user callbacks the Manager calls on an Acquire. shared
// says whether callers of the same tenant wait for the call (they do for
// routes and init; validation is per caller).
var callbacks = []struct {
	name   string
	opt    func(h *hook) mongotenant.Option
	shared bool
}{
	{"Router", func(h *hook) mongotenant.Option {
		return mongotenant.WithRouter(func(context.Context, string, *mongotenant.Route) error { h.call(); return nil })
	}, true},
	{"Strategy", func(h *hook) mongotenant.Option {
		return mongotenant.WithStrategy(strategyFunc(func(id string) string { h.call(); return id }))
	}, true},
	{"tier lookup", func(h *hook) mongotenant.Option {
		return mongotenant.WithTiers(func(context.Context, string) (string, error) { h.call(); return "free", nil }, nil)
	}, true},
	{"placement", func(h *hook) mongotenant.Option {
		return mongotenant.WithPlacement(func(context.Context, string) (string, error) { h.call(); return "", nil })
	}, true},
	{"credentials", func(h *hook) mongotenant.Option {
		return mongotenant.WithTenantAuth(func(context.Context, string) (options.Credential, error) {
			h.call()
			return options.Credential{Username: "u", Password: "p"}, nil
		})
	}, true},
	{"init", func(h *hook) mongotenant.Option {
		return mongotenant.WithInit(func(context.Context, string, *mongo.Database) error { h.call(); return nil })
	}, true},
	{"tenant validator", func(h *hook) mongotenant.Option {
		return mongotenant.WithTenantValidator(func(id string) error { h.call(); return mongotenant.ValidateTenantID(id) })
	}, false},
	{"database name", func(h *hook) mongotenant.Option {
		return mongotenant.WithDatabaseName(func(id string) string { h.call(); return "db_" + id })
	}, false},
}

// TestPanickingCallbacksLeaveNothingBehind: for every callback, the first
// call panics while other callers of the same tenant wait for it. The
// panic reaches the caller that ran the callback; the waiters do not hang,
// they try again and are served; no lease, bulkhead slot, waiter or
// half-made tenant is left; and a later Acquire is served at once.
func TestPanickingCallbacksLeaveNothingBehind(t *testing.T) {
	for _, cb := range callbacks {
		t.Run(cb.name, func(t *testing.T) {
			h := newHook()
			m := newManager(t, cb.opt(h), mongotenant.WithMaxLeases(1))
			panicked := make(chan any, 1)
			go func() {
				defer func() { panicked <- recover() }()
				l, err := m.Acquire(context.Background(), "t")
				if err == nil {
					l.Release()
				}
			}()
			waitFor(t, "the first call", func() bool { return h.calls.Load() == 1 })

			const waiters = 5
			var wg sync.WaitGroup
			var served atomic.Int32
			if cb.shared {
				for range waiters {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						defer cancel()
						l, err := m.Acquire(ctx, "t")
						if err != nil {
							t.Errorf("a waiter failed: %v", err)
							return
						}
						served.Add(1)
						l.Release()
					})
				}
				waitFor(t, "the waiters", func() bool { return m.Stats().Waiting == waiters })
			}
			close(h.open)
			assert.Equal(t, boom{}, <-panicked, "the panic reaches the caller that ran the callback")
			wg.Wait()
			if cb.shared {
				assert.Equal(t, int32(waiters), served.Load(), "the waiters tried again")
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			l, err := m.Acquire(ctx, "t")
			require.NoError(t, err, "the tenant is not wedged")
			_, err = m.Acquire(short(t), "t")
			require.ErrorIs(t, err, mongotenant.ErrTenantBusy, "the bulkhead of 1 counts exactly one lease")
			l.Release()
			s := m.Stats()
			assert.Equal(t, 0, s.Leases)
			assert.Equal(t, 0, s.Waiting)
			assert.LessOrEqual(t, s.Tenants, 1)
			assert.Equal(t, s.Hits+s.Misses, uint64(served.Load())+1)
		})
	}
}

// TestPanicInABackgroundRefreshIsRecovered: a Router that panics in a
// route refresh does not crash the process: the panic is logged at Warn,
// counted, and the old route kept.
func TestPanicInABackgroundRefreshIsRecovered(t *testing.T) {
	var calls atomic.Int32
	var logs syncBuffer
	m, clock := newFakeManager(t,
		mongotenant.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		mongotenant.WithRouteTTL(time.Minute),
		mongotenant.WithTiers(func(context.Context, string) (string, error) {
			if calls.Add(1) > 1 {
				panic(boom{})
			}
			return "premium", nil
		}, nil))
	acquire(t, m, "acme").Release()
	clock.Advance(2 * time.Minute)
	acquire(t, m, "acme").Release() // past the TTL: refresh in the background
	waitFor(t, "the refresh to fail", func() bool { return m.Stats().RouteRefreshErrors == 1 })
	s, ok := m.TenantStats("acme")
	require.True(t, ok)
	assert.Equal(t, "premium", s.Tier, "the old route stays")
	assert.Contains(t, logs.String(), "panicked in a background route refresh")
	assert.NotContains(t, logs.String(), "acme", "tenant IDs stay out of Warn logs by default")
	acquire(t, m, "acme").Release()
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
