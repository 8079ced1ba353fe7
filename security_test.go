package mongotenant_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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

// FuzzSecretsStayOut: a secret anywhere in the URI given to New, in a
// placement URI or in client options, whatever its bytes (%, @, : and /
// included), appears in no error, no log line at any level, and not in
// Stats, in its raw or its percent-decoded form.
func FuzzSecretsStayOut(f *testing.F) {
	for _, s := range []string{"p%ss", "a@b:c/d", "%zz", "%41%42", "x/y?z=w&v", "ünï", ":@/%", ""} {
		f.Add(s)
	}
	f.Fuzz(checkSecretStaysOut)
}

func checkSecretStaysOut(t *testing.T, fuzz string) {
	{
		secret := "S3CR" + fuzz + "T9"
		forms := []string{secret}
		if u, err := url.PathUnescape(secret); err == nil && u != secret {
			forms = append(forms, u)
		}
		check := func(what, text string) {
			for _, form := range forms {
				if strings.Contains(text, form) {
					t.Fatalf("%s repeats the secret %q: %s", what, form, text)
				}
			}
		}
		const base = "mongodb://127.0.0.1:1/"
		uris := []string{
			"mongodb://user:" + secret + "@127.0.0.1:1/",
			"mongodb://user:" + url.QueryEscape(secret) + "@127.0.0.1:1/?maxPoolSize=bad",
			base + "?tlsCertificateKeyFilePassword=" + secret,
			base + "?tlsCertificateKeyFilePassword=" + url.QueryEscape(secret) + "&heartbeatFrequencyMS=1",
			base + "?authMechanismProperties=SERVICE_NAME:" + secret,
			base + "?appname=" + secret + "&maxPoolSize=0",
			base + "?replicaSet=" + secret + "&directConnection=true&loadBalanced=true",
			base + "?maxPoolSize=" + secret,
			base + "?authMechanism=" + secret,
		}
		var logs syncBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx := context.Background()
		for _, uri := range uris {
			if m, err := mongotenant.New(uri, mongotenant.WithLogger(logger)); err != nil {
				check("New", err.Error())
			} else {
				check("Close", fmt.Sprint(m.Close(ctx)))
			}
		}
		m, err := mongotenant.New(unreachable, mongotenant.WithLogger(logger), mongotenant.WithTenantIDsInLogs(true),
			mongotenant.WithPlacement(func(_ context.Context, id string) (string, error) {
				i, _ := strconv.Atoi(strings.TrimPrefix(id, "t"))
				return uris[i], nil
			}),
			mongotenant.WithClientOptions(options.Client().SetAppName(secret)))
		if err != nil {
			check("New", err.Error())
			return
		}
		for i := range uris {
			l, err := m.Acquire(ctx, fmt.Sprintf("t%d", i))
			if err != nil {
				check("Acquire", err.Error())
				continue
			}
			l.Release()
		}
		stats, _ := json.Marshal(m.Stats())
		check("Stats", string(stats))
		check("Close", fmt.Sprint(m.Close(ctx)))
		check("logs", logs.String())
	}
}
