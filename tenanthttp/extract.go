package tenanthttp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mongotenant/mongotenant"
)

// maxIDLen bounds the tenant IDs the extractors of this package return.
// Valid IDs are far shorter (mongotenant accepts at most 63 bytes); the bound
// keeps a huge header or query value from reaching validators, routers,
// error handlers or logs.
const maxIDLen = 256

// An Extractor finds the tenant ID of a request. It returns "", nil when the
// request names no tenant, so that [Chain] can try the next one; an error
// means the request is refused (e.g. a bad token). [Middleware] maps the
// error to a status by the sentinel it wraps: [ErrUnauthenticated] gives 401,
// [ErrNoTenant] or [mongotenant.ErrInvalidTenant] gives 400, anything else
// 503.
//
// The extractors of this package do not trim or normalise what they read:
// checking the ID is the Manager's job. They only refuse values longer than
// 256 bytes, with an error wrapping mongotenant.ErrInvalidTenant. They are
// safe for concurrent use.
type Extractor func(r *http.Request) (string, error)

// bounded passes id on unless it is too long to be worth looking at.
func bounded(id string) (string, error) {
	if len(id) > maxIDLen {
		return "", fmt.Errorf("%w: %d bytes, limit %d", mongotenant.ErrInvalidTenant, len(id), maxIDLen)
	}
	return id, nil
}

// Header reads the tenant ID from the request header name, such as
// "X-Tenant-ID". A header given more than once is refused as ambiguous, with
// an error wrapping mongotenant.ErrInvalidTenant; an empty value names no
// tenant.
//
// Use Header only where the header is set by something you trust, such as a
// gateway that authenticates the caller: any client can send it.
func Header(name string) Extractor {
	return func(r *http.Request) (string, error) {
		vs := r.Header.Values(name)
		switch len(vs) {
		case 0:
			return "", nil
		case 1:
			return bounded(vs[0])
		default:
			return "", fmt.Errorf("%w: header %s given %d times", mongotenant.ErrInvalidTenant, name, len(vs))
		}
	}
}

// Query reads the tenant ID from the URL query parameter name, as in
// ?tenant=acme. A parameter given more than once, or a malformed query
// string, is refused with an error wrapping mongotenant.ErrInvalidTenant:
// parsers that skip what they cannot decode could otherwise hide a second
// value. The same trust caveat as for [Header] applies.
func Query(name string) Extractor {
	return func(r *http.Request) (string, error) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return "", fmt.Errorf("%w: malformed query string", mongotenant.ErrInvalidTenant)
		}
		switch vs := q[name]; len(vs) {
		case 0:
			return "", nil
		case 1:
			return bounded(vs[0])
		default:
			return "", fmt.Errorf("%w: query parameter %s given %d times", mongotenant.ErrInvalidTenant, name, len(vs))
		}
	}
}

// PathValue reads the tenant ID from the wildcard name of the request's
// [http.ServeMux] pattern, as in "GET /tenants/{tenant}/posts", through
// [http.Request.PathValue]. The Middleware must then wrap the handler
// registered on the mux, not the mux itself, because path values are set
// by routing.
func PathValue(name string) Extractor {
	return func(r *http.Request) (string, error) { return bounded(r.PathValue(name)) }
}

// FromContext reads a tenant ID that the application's own authentication
// middleware already put in the request context; fn returns it, and false if
// there is none, and is called concurrently. A nil fn refuses every request
// with an error wrapping [ErrUnauthenticated], so a missing function fails
// closed.
func FromContext(fn func(ctx context.Context) (tenantID string, ok bool)) Extractor {
	if fn == nil {
		return refuse(fmt.Errorf("%w: FromContext has no function", ErrUnauthenticated))
	}
	return func(r *http.Request) (string, error) {
		id, ok := fn(r.Context())
		if !ok {
			return "", nil
		}
		return bounded(id)
	}
}

// BearerClaim reads the tenant ID from the string claim of a bearer token
// ("Authorization: Bearer <token>"). This package never parses a token: it
// hands the token to verify, the application's verifier (signature, expiry,
// audience), and uses only the claims verify returns. So an unverified
// token is never trusted.
//
// A request without an Authorization header, or with another scheme, names
// no tenant. Every other failure is an error wrapping [ErrUnauthenticated]:
// an empty token, more than one Authorization header, an error from verify
// (wrapped too), and a claim that is missing, empty or not a string. A
// verified token that names no tenant is refused rather than passed over,
// so that [Chain] cannot fall back to a tenant of the client's choosing. A
// nil verify refuses every request.
//
// verify gets the request's context and is called concurrently.
func BearerClaim(verify func(ctx context.Context, token string) (map[string]any, error), claim string) Extractor {
	if verify == nil {
		return refuse(fmt.Errorf("%w: BearerClaim has no verifier", ErrUnauthenticated))
	}
	return func(r *http.Request) (string, error) {
		hs := r.Header.Values("Authorization")
		switch {
		case len(hs) == 0:
			return "", nil
		case len(hs) > 1:
			return "", fmt.Errorf("%w: %d Authorization headers", ErrUnauthenticated, len(hs))
		}
		scheme, token, _ := strings.Cut(hs[0], " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", nil
		}
		if token == "" {
			return "", fmt.Errorf("%w: empty bearer token", ErrUnauthenticated)
		}
		claims, err := verify(r.Context(), token)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		id, _ := claims[claim].(string)
		if id == "" {
			return "", fmt.Errorf("%w: the token has no string claim %q", ErrUnauthenticated, claim)
		}
		return bounded(id)
	}
}

func refuse(err error) Extractor {
	return func(*http.Request) (string, error) { return "", err }
}

// Chain tries extractors in order and returns the first tenant ID found.
// The first error stops the chain: a bad token is refused, not passed over
// for a header. A common order is the reference design's: a verified token,
// then a header, then a query parameter, as in
//
//	Chain(BearerClaim(verify, "tenant_id"), Header("X-Tenant-ID"), Query("tenant"))
//
// A chain is only as trustworthy as its weakest link: there, a request
// without a token picks its tenant by header. The chain is safe for
// concurrent use if its extractors are. Chain panics if an extractor is nil.
func Chain(extractors ...Extractor) Extractor {
	for _, extract := range extractors {
		if extract == nil {
			panic("tenanthttp: Chain: nil Extractor")
		}
	}
	extractors = slices.Clone(extractors)
	return func(r *http.Request) (string, error) {
		for _, extract := range extractors {
			id, err := extract(r)
			if err != nil {
				return "", err
			}
			if id != "" {
				return id, nil
			}
		}
		return "", nil
	}
}
