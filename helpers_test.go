package mongotenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// unreachable is a URI nothing listens on. mongo.Connect does no network I/O,
// so everything but operations works against it.
const unreachable = "mongodb://127.0.0.1:1/"

// newManager returns a Manager closed at the end of the test. Server
// selection is short so an operation against unreachable fails fast.
func newManager(t testing.TB, opts ...mongotenant.Option) *mongotenant.Manager {
	t.Helper()
	opts = append([]mongotenant.Option{mongotenant.WithClientOptions(
		options.Client().SetServerSelectionTimeout(100 * time.Millisecond))}, opts...)
	m, err := mongotenant.New(unreachable, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Bounded, so that a test that failed holding a lease ends.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	return m
}

// newFakeManager is newManager on fake time.
func newFakeManager(t testing.TB, opts ...mongotenant.Option) (*mongotenant.Manager, *mongotenant.FakeClock) {
	t.Helper()
	clock := mongotenant.NewFakeClock()
	return newManager(t, append([]mongotenant.Option{mongotenant.WithFakeClock(clock)}, opts...)...), clock
}

// tick advances clock by d, one housekeeping tick at a time, waiting after
// each until the housekeeper has done its work. It returns false if the
// housekeeper stopped (it had nothing left to look after). The housekeeper
// must be running, or just started, when tick is called.
func tick(t testing.TB, clock *mongotenant.FakeClock, d time.Duration) bool {
	t.Helper()
	if !clock.Armed(10 * time.Second) {
		return false
	}
	for step := time.Duration(0); step < d; step += mongotenant.ClockResolution {
		fired, events := clock.Fire(mongotenant.ClockResolution)
		if fired == 0 || !clock.AfterFire(events, 10*time.Second) {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: a busy machine, real disconnects
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// acquire acquires tenantID or fails the test. Call it from the test's
// goroutine only.
func acquire(t testing.TB, m *mongotenant.Manager, id string) *mongotenant.Lease {
	t.Helper()
	l, err := m.Acquire(context.Background(), id)
	require.NoError(t, err)
	return l
}

// acquireLater acquires and releases tenantID in a goroutine, with no
// deadline, and reports the error: for tests that free a slot and expect
// a waiter to get in.
func acquireLater(m *mongotenant.Manager, tenantID string) <-chan error {
	got := make(chan error, 1)
	go func() {
		l, err := m.Acquire(context.Background(), tenantID)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	return got
}

// short returns a ctx that ends soon, for acquisitions expected to fail.
func short(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}
