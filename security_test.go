package mongotenant_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoCredentialsLeak: passwords in the URI, in a placement URI or in
// per-tenant credentials appear in no error, log line (Debug included) or
// Stats.
func TestNoCredentialsLeak(t *testing.T) {
	const secret = "s3cr3t-pa55"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	_, err := mongotenant.New("mongodb://alice:"+secret+"@127.0.0.1:1/?maxPoolSize=oops", mongotenant.WithLogger(logger))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)

	m := newManager(t, mongotenant.WithLogger(logger), mongotenant.WithTenantIDsInLogs(true),
		mongotenant.WithMaxClients(1),
		mongotenant.WithPlacement(func(_ context.Context, id string) (string, error) {
			if id == "bad" {
				return "mongodb://bob:" + secret + "@127.0.0.1:1/?maxPoolSize=oops", nil
			}
			return "mongodb://carol:" + secret + "@127.0.0.1:1/", nil
		}))
	_, err = m.Acquire(context.Background(), "bad")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)

	for i := range 3 { // creates, evicts and disconnects clients
		l := acquire(t, m, fmt.Sprintf("t%d", i))
		assertConnected(t, l.Client()) // fails server selection: an error path
		l.Release()
	}
	require.NoError(t, m.Evict(context.Background(), "t2"))

	stats, _ := json.Marshal(m.Stats())
	ts, _ := m.TenantStats("t2")
	tenant, _ := json.Marshal(ts)
	for what, text := range map[string]string{"logs": logs.String(), "Stats": string(stats), "TenantStats": string(tenant)} {
		assert.NotContains(t, text, secret, what)
		assert.False(t, strings.Contains(text, "bob:") || strings.Contains(text, "carol:"), "%s names a URI user", what)
	}
	assert.NotEmpty(t, logs.String(), "the test must have logged something to prove anything")
}
