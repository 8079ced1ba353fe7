package tenanthttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// extractCase is a request and what an extractor should make of it: an ID,
// or an error wrapping wantErr.
type extractCase struct {
	name    string
	req     func() *http.Request
	want    string
	wantErr error
}

func runExtract(t *testing.T, extract tenanthttp.Extractor, cases []extractCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := extract(c.req())
			if c.wantErr != nil {
				require.ErrorIs(t, err, c.wantErr)
				assert.Empty(t, id)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, id)
		})
	}
}

// withHeader returns a GET / request with name set to each of values, one
// header line each.
func withHeader(name string, values ...string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, v := range values {
			r.Header.Add(name, v)
		}
		return r
	}
}

func withURL(target string) func() *http.Request {
	return func() *http.Request { return httptest.NewRequest(http.MethodGet, target, nil) }
}

func TestHeader(t *testing.T) {
	runExtract(t, tenanthttp.Header("X-Tenant-ID"), []extractCase{
		{name: "one", req: withHeader("X-Tenant-ID", "acme"), want: "acme"},
		{name: "name is case-insensitive", req: withHeader("x-tenant-id", "acme"), want: "acme"},
		{name: "missing", req: withHeader("X-Other", "acme"), want: ""},
		{name: "empty", req: withHeader("X-Tenant-ID", ""), want: ""},
		{name: "not trimmed", req: withHeader("X-Tenant-ID", " acme "), want: " acme "},
		{name: "duplicated", req: withHeader("X-Tenant-ID", "acme", "evil"), wantErr: mongotenant.ErrInvalidTenant},
		{name: "256 bytes", req: withHeader("X-Tenant-ID", strings.Repeat("a", 256)), want: strings.Repeat("a", 256)},
		{name: "257 bytes", req: withHeader("X-Tenant-ID", strings.Repeat("a", 257)), wantErr: mongotenant.ErrInvalidTenant},
	})
}

func TestQuery(t *testing.T) {
	runExtract(t, tenanthttp.Query("tenant"), []extractCase{
		{name: "one", req: withURL("/?tenant=acme&x=1"), want: "acme"},
		{name: "unescaped, not normalised", req: withURL("/?tenant=a%0d%0ab"), want: "a\r\nb"},
		{name: "missing", req: withURL("/?x=1"), want: ""},
		{name: "empty", req: withURL("/?tenant="), want: ""},
		{name: "other name", req: withURL("/?Tenant=acme"), want: ""},
		{name: "duplicated", req: withURL("/?tenant=acme&tenant=evil"), wantErr: mongotenant.ErrInvalidTenant},
		{name: "second value malformed", req: withURL("/?tenant=acme&tenant=%zz"), wantErr: mongotenant.ErrInvalidTenant},
		{name: "semicolon", req: withURL("/?tenant=acme;tenant=evil"), wantErr: mongotenant.ErrInvalidTenant},
		{name: "257 bytes", req: withURL("/?tenant=" + strings.Repeat("a", 257)), wantErr: mongotenant.ErrInvalidTenant},
	})
}

func TestPathValue(t *testing.T) {
	extract := tenanthttp.PathValue("tenant")
	type result struct {
		id  string
		err error
	}
	got := make(chan result, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := extract(r)
		got <- result{id, err}
	})
	mux := http.NewServeMux()
	mux.Handle("GET /t/{tenant}/posts", handler)
	mux.Handle("GET /plain", handler)

	for _, c := range []struct {
		target  string
		want    string
		wantErr error
	}{
		{target: "/t/acme/posts", want: "acme"},
		{target: "/t/a%2Fb/posts", want: "a/b"},
		{target: "/t/%24cmd/posts", want: "$cmd"},
		{target: "/plain", want: ""},
		{target: "/t/" + strings.Repeat("a", 257) + "/posts", wantErr: mongotenant.ErrInvalidTenant},
	} {
		t.Run(c.target, func(t *testing.T) {
			do(mux, httptest.NewRequest(http.MethodGet, c.target, nil))
			r := <-got
			if c.wantErr != nil {
				require.ErrorIs(t, r.err, c.wantErr)
				return
			}
			require.NoError(t, r.err)
			assert.Equal(t, c.want, r.id)
		})
	}
}

type identityKey struct{}

func identity(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(identityKey{}).(string)
	return id, ok
}

func withIdentity(id string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	}
}

func TestFromContext(t *testing.T) {
	runExtract(t, tenanthttp.FromContext(identity), []extractCase{
		{name: "present", req: withIdentity("acme"), want: "acme"},
		{name: "absent", req: withURL("/"), want: ""},
		{name: "257 bytes", req: withIdentity(strings.Repeat("a", 257)), wantErr: mongotenant.ErrInvalidTenant},
	})
	runExtract(t, tenanthttp.FromContext(nil), []extractCase{
		{name: "nil function refuses", req: withIdentity("acme"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "nil function refuses without identity", req: withURL("/"), wantErr: tenanthttp.ErrUnauthenticated},
	})
}

var errBadSignature = errors.New("bad signature")

// fakeVerifier accepts the tokens in its map and records every token it is
// given.
type fakeVerifier struct {
	tokens map[string]map[string]any
	seen   []string
}

func (v *fakeVerifier) verify(ctx context.Context, token string) (map[string]any, error) {
	v.seen = append(v.seen, token)
	claims, ok := v.tokens[token]
	if !ok {
		return nil, errBadSignature
	}
	return claims, nil
}

func newVerifier() *fakeVerifier {
	return &fakeVerifier{tokens: map[string]map[string]any{
		"good":       {"tenant": "acme", "sub": "u1"},
		"other":      {"tenant": "globex"},
		"noclaim":    {"sub": "u1"},
		"numclaim":   {"tenant": 42},
		"emptyclaim": {"tenant": ""},
		"longclaim":  {"tenant": strings.Repeat("a", 257)},
	}}
}

// unsignedJWT is {"alg":"none"}.{"tenant":"acme"}: a token anyone can make.
const unsignedJWT = "eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJhY21lIn0."

func TestBearerClaim(t *testing.T) {
	v := newVerifier()
	auth := func(values ...string) func() *http.Request { return withHeader("Authorization", values...) }
	runExtract(t, tenanthttp.BearerClaim(v.verify, "tenant"), []extractCase{
		{name: "valid", req: auth("Bearer good"), want: "acme"},
		{name: "scheme is case-insensitive", req: auth("bearer other"), want: "globex"},
		{name: "no header", req: withURL("/"), want: ""},
		{name: "other scheme", req: auth("Basic dTpw"), want: ""},
		{name: "forged", req: auth("Bearer " + unsignedJWT), wantErr: errBadSignature},
		{name: "forged is unauthenticated", req: auth("Bearer " + unsignedJWT), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "empty token", req: auth("Bearer "), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "scheme only", req: auth("Bearer"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "two headers", req: auth("Bearer good", "Bearer other"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "claim missing", req: auth("Bearer noclaim"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "claim not a string", req: auth("Bearer numclaim"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "claim empty", req: auth("Bearer emptyclaim"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "claim too long", req: auth("Bearer longclaim"), wantErr: mongotenant.ErrInvalidTenant},
	})
	// Only the requests with one Bearer header and a token reach the
	// verifier, with the token exactly as sent.
	assert.Equal(t, []string{"good", "other", unsignedJWT, unsignedJWT, "noclaim", "numclaim", "emptyclaim", "longclaim"}, v.seen)
}

func TestBearerClaimNilVerifier(t *testing.T) {
	runExtract(t, tenanthttp.BearerClaim(nil, "tenant"), []extractCase{
		{name: "unsigned token", req: withHeader("Authorization", "Bearer "+unsignedJWT), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "no header", req: withURL("/"), wantErr: tenanthttp.ErrUnauthenticated},
	})
	// In a chain it fails closed instead of falling through to the header.
	chain := tenanthttp.Chain(tenanthttp.BearerClaim(nil, "tenant"), tenanthttp.Header("X-Tenant-ID"))
	runExtract(t, chain, []extractCase{
		{name: "chain", req: withHeader("X-Tenant-ID", "acme"), wantErr: tenanthttp.ErrUnauthenticated},
	})
}

func TestChain(t *testing.T) {
	v := newVerifier()
	var after int // calls of the extractor after the reference chain
	spy := func(*http.Request) (string, error) { after++; return "spy", nil }
	chain := tenanthttp.Chain(
		tenanthttp.BearerClaim(v.verify, "tenant"),
		tenanthttp.Header("X-Tenant-ID"),
		tenanthttp.Query("tenant"),
		spy,
	)
	req := func(target, token string, headers ...string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, target, nil)
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			for _, h := range headers {
				r.Header.Add("X-Tenant-ID", h)
			}
			return r
		}
	}
	runExtract(t, chain, []extractCase{
		{name: "token wins", req: req("/?tenant=query", "good", "header"), want: "acme"},
		{name: "then header", req: req("/?tenant=query", "", "header"), want: "header"},
		{name: "then query", req: req("/?tenant=query", ""), want: "query"},
		{name: "bad token stops the chain", req: req("/?tenant=query", "forged", "header"), wantErr: tenanthttp.ErrUnauthenticated},
		{name: "bad header stops the chain", req: req("/?tenant=query", "", "a", "b"), wantErr: mongotenant.ErrInvalidTenant},
		{name: "bad query stops the chain", req: req("/?tenant=a&tenant=b", ""), wantErr: mongotenant.ErrInvalidTenant},
	})
	assert.Zero(t, after, "a chain that found an ID or an error must stop")
	id, err := chain(httptest.NewRequest(http.MethodGet, "/", nil))
	require.NoError(t, err)
	assert.Equal(t, "spy", id, "a request naming no tenant reaches the last extractor")
	assert.Equal(t, 1, after)

	id, err = tenanthttp.Chain()(httptest.NewRequest(http.MethodGet, "/", nil))
	require.NoError(t, err)
	assert.Empty(t, id)
	assert.Panics(t, func() { tenanthttp.Chain(tenanthttp.Header("X"), nil) })
}
