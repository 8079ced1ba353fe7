package tenanthttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenanthttp"
)

func ExampleMiddleware() {
	m, err := mongotenant.New("mongodb://127.0.0.1:1/") // no I/O until a handler runs an operation
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())

	tenant := tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"))
	h := tenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db, _ := tenanthttp.DatabaseFrom(r.Context())
		fmt.Fprintln(w, db.Name())
	}))

	for _, id := range []string{"acme", "../admin", ""} {
		req := httptest.NewRequest(http.MethodGet, "/posts", nil)
		req.Header.Set("X-Tenant-ID", id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	// Output:
	// 200 user_acme_db
	// 400 {"error":"invalid tenant"}
	// 400 {"error":"missing tenant"}
}
