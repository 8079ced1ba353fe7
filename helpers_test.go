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
	t.Cleanup(func() { require.NoError(t, m.Close(context.Background())) })
	return m
}

// waitFor polls cond until it holds or the test's deadline is near; a
// failure means cond never held.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

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
