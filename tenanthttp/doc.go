// Package tenanthttp serves HTTP requests under per-tenant MongoDB leases
// from a [mongotenant.Manager], using only net/http.
//
// [Middleware] finds each request's tenant with an [Extractor], acquires a
// lease for the request and releases it when the handler returns. Handlers
// get the tenant's database with [DatabaseFrom]. Refusals are short JSON
// errors with fixed texts: 400 for a missing or invalid tenant, 401 for
// refused credentials, 429 for a tenant at its lease limit, 503 when the
// Manager cannot serve.
//
//	m, err := mongotenant.New("mongodb://db.internal:27017/")
//	if err != nil { ... }
//	defer m.Close(ctx)
//
//	tenant := tenanthttp.Middleware(m, tenanthttp.Chain(
//		tenanthttp.BearerClaim(verifyJWT, "tenant_id"), // verifyJWT is yours: this package never parses tokens
//		tenanthttp.Header("X-Tenant-ID"),
//	))
//	mux := http.NewServeMux()
//	mux.Handle("POST /posts", tenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		db, _ := tenanthttp.DatabaseFrom(r.Context()) // user_<tenant>_db
//		_, err := db.Collection("posts").InsertOne(r.Context(), post)
//		...
//	})))
//
//	admin, err := tenanthttp.Admin(m, isOperator)
//	if err != nil { ... }
//	mux.Handle("/admin/", http.StripPrefix("/admin", admin))
//
// Extractors read [Header], [Query], [PathValue], the request context
// ([FromContext]) or a verified bearer token ([BearerClaim]); [Chain] tries
// several in order. Tenant IDs from requests are untrusted: the extractors
// pass them on unchanged, bounded in length, and the Manager validates them
// before anything reaches the server. Validation checks the form of an ID,
// not that the tenant exists: every well-formed ID gets a route and a
// client. Where callers choose the ID (a header, a query parameter),
// authenticate them first, or refuse unknown tenants with
// [mongotenant.WithTenantValidator].
//
// [Admin] serves the Manager's stats and evicts tenants, behind a required
// authorization check.
package tenanthttp
