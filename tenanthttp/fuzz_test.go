package tenanthttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenanthttp"
)

// fixedMessages are the only error texts a refused tenant ID may produce:
// nothing of the input is echoed.
var fixedMessages = map[string]bool{"missing tenant": true, "invalid tenant": true, "unauthenticated": true}

// FuzzExtractors sends arbitrary tenant IDs through each extractor, a chain
// and the middleware of a real Manager. It must never panic; it answers 200,
// 400 or 401 as the ID deserves, and a 200 serves the database of exactly
// the ID the request named, so no request reaches another tenant's data.
func FuzzExtractors(f *testing.F) {
	for _, s := range []string{
		"acme", "", "../admin", "admin", "$cmd", "a\r\nb", "\u0430dmin", "\x00", "a b", "a,b",
		"user_x_db", strings.Repeat("a", 55), strings.Repeat("a", 56), strings.Repeat("x", 300), "\xff\xfe",
	} {
		f.Add(s)
	}
	m := newManager(f, mongotenant.WithMaxClients(10))
	claims := func(_ context.Context, token string) (map[string]any, error) {
		return map[string]any{"tenant": token}, nil
	}
	seen := make(chan served, 1)
	h := tenanthttp.Middleware(m, tenanthttp.Chain(
		tenanthttp.BearerClaim(claims, "tenant"),
		tenanthttp.Header("X-Tenant-ID"),
		tenanthttp.Query("tenant"),
		tenanthttp.PathValue("tenant"),
	))(echo(seen))

	// Each source sets the raw value directly, so bytes that net/http would
	// refuse on the wire (CR, LF, NUL) reach the extractors too.
	sources := map[string]func(r *http.Request, s string){
		"header": func(r *http.Request, s string) { r.Header["X-Tenant-Id"] = []string{s} },
		"query":  func(r *http.Request, s string) { r.URL.RawQuery = url.Values{"tenant": {s}}.Encode() },
		"path":   func(r *http.Request, s string) { r.SetPathValue("tenant", s) },
		"bearer": func(r *http.Request, s string) { r.Header["Authorization"] = []string{"Bearer " + s} },
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := http.StatusBadRequest
		if mongotenant.ValidateTenantID(s) == nil && len("user_"+s+"_db") <= mongotenant.MaxDatabaseNameLen {
			want = http.StatusOK
		}
		for name, set := range sources {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			set(req, s)
			rec := do(h, req)
			wantHere := want
			if name == "bearer" && s == "" {
				wantHere = http.StatusUnauthorized // an empty token is a refused credential
			}
			if rec.Code != wantHere {
				t.Fatalf("%s %q: status %d, want %d (body %q)", name, s, rec.Code, wantHere, rec.Body.String())
			}
			if rec.Code != http.StatusOK {
				var body struct{ Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !fixedMessages[body.Error] {
					t.Fatalf("%s %q: error body %q", name, s, rec.Body.String())
				}
				continue
			}
			if got := <-seen; got != (served{s, "user_" + s + "_db"}) {
				t.Fatalf("%s %q: served %+v", name, s, got)
			}
		}
	})
}
