package mongotenant_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDebugLogs: at Debug, New logs a one-line config summary, and client
// creation, recycling, disconnection (with its eviction cause) and route
// changes are logged; refusals are counted, never logged; nothing is
// logged above Debug on these paths.
func TestDebugLogs(t *testing.T) {
	var logs syncBuffer
	tier := "free"
	m, clock := newFakeManager(t,
		mongotenant.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		mongotenant.WithMaxClients(1),
		mongotenant.WithTiers(func(context.Context, string) (string, error) { return tier, nil }, nil))
	lines := func() []string {
		out := strings.Split(strings.TrimSpace(logs.String()), "\n")
		logs.mu.Lock()
		logs.buf.Reset()
		logs.mu.Unlock()
		return out
	}
	summary := lines()
	require.Len(t, summary, 1, "one line on New")
	assert.Contains(t, summary[0], "level=DEBUG")
	assert.Contains(t, summary[0], "new manager")
	assert.Contains(t, summary[0], "max_clients=1")

	acquire(t, m, "a").Release()
	clock.Advance(time.Second)
	acquire(t, m, "b").Release()
	got := strings.Join(lines(), "\n")
	assert.Contains(t, got, "client created")
	assert.Contains(t, got, "client recycled")

	tier = "premium"
	require.NoError(t, m.Refresh(context.Background(), "b"))
	got = strings.Join(lines(), "\n")
	assert.Contains(t, got, "route changed")
	assert.Contains(t, got, "client disconnected")
	assert.Contains(t, got, "cause=route")

	for range 5 {
		_, err := m.Acquire(context.Background(), "bad id")
		require.ErrorIs(t, err, mongotenant.ErrInvalidTenant)
	}
	assert.Equal(t, "", strings.TrimSpace(logs.String()), "refusals are not logged")
	assert.Equal(t, uint64(5), m.Stats().RefusedInvalid, "but counted")
}
