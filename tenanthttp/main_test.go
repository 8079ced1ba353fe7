package tenanthttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// unreachable is a URI nothing listens on. mongo.Connect does no network
// I/O, so leases work against it; only operations would fail.
const unreachable = "mongodb://127.0.0.1:1/"

// newManager returns a Manager on unreachable, closed at the end of the test.
func newManager(t testing.TB, opts ...mongotenant.Option) *mongotenant.Manager {
	t.Helper()
	opts = append([]mongotenant.Option{mongotenant.WithClientOptions(
		options.Client().SetServerSelectionTimeout(100 * time.Millisecond))}, opts...)
	m, err := mongotenant.New(unreachable, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Bounded, so that a leaked lease fails the test instead of hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	return m
}

// served is what the handler behind the middleware saw.
type served struct {
	tenant, database string
}

// echo is a handler that answers 200 and reports the tenant and database
// it was given on seen, which must have room.
func echo(seen chan<- served) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := tenanthttp.TenantFrom(r.Context())
		db, ok := tenanthttp.DatabaseFrom(r.Context())
		if !ok {
			http.Error(w, "no database in context", http.StatusInternalServerError)
			return
		}
		seen <- served{id, db.Name()}
		w.WriteHeader(http.StatusOK)
	})
}

// do serves req through h and returns the recorded response.
func do(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// errorBody decodes a JSON error response, failing the test if it is not one.
func errorBody(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "body %q", rec.Body.String())
	require.Len(t, body, 1, "body %q", rec.Body.String())
	return body["error"]
}
