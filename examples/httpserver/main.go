// Httpserver is a posts API where every tenant (named by the X-Tenant-ID
// header) has its own database, with admin endpoints, Prometheus metrics,
// a readiness check and a graceful shutdown.
//
//	go run ./examples/httpserver
//	curl -H 'X-Tenant-ID: alice' -d '{"title":"hi"}' localhost:8080/api/posts
//	curl -H 'X-Tenant-ID: alice' localhost:8080/api/posts
//	curl -H "Authorization: Bearer $ADMIN_TOKEN" localhost:8080/admin/stats
//	curl -H "Authorization: Bearer $ADMIN_TOKEN" 'localhost:8080/admin/tenants?limit=10'
//	curl localhost:8080/metrics
//	curl localhost:8080/readyz
//
// It listens on ADDR (default 127.0.0.1:8080), uses MONGODB_URI if set and
// otherwise starts an embedded server. ADMIN_TOKEN guards /admin/; without
// it a random token is printed at start. Ctrl-C stops it: in-flight
// requests finish, then every tenant client is disconnected.
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/mongotenant/mongotenant/tenantprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := mongotest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	token := os.Getenv("ADMIN_TOKEN")
	if token == "" {
		b := make([]byte, 16)
		rand.Read(b)
		token = hex.EncodeToString(b)
		fmt.Printf("admin token: %s\n", token)
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s (Ctrl-C to stop)\n", ln.Addr())
	if err := run(ctx, ln, srv.URI(), token); err != nil {
		log.Fatal(err)
	}
}

// run serves the API on ln until ctx ends, then shuts down gracefully.
func run(ctx context.Context, ln net.Listener, uri, adminToken string) error {
	m, err := mongotenant.New(uri, mongotenant.WithMaxClients(100), mongotenant.WithMaxLeases(20),
		mongotenant.WithCommandStats(100*time.Millisecond))
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(tenantprom.NewCollector(m), collectors.NewGoCollector())
	admin, err := tenanthttp.Admin(m, func(r *http.Request) bool {
		got := []byte(r.Header.Get("Authorization"))
		return subtle.ConstantTimeCompare(got, []byte("Bearer "+adminToken)) == 1
	})
	if err != nil {
		return err
	}
	tenant := tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"))

	mux := http.NewServeMux()
	mux.Handle("POST /api/posts", tenant(http.HandlerFunc(createPost)))
	mux.Handle("GET /api/posts", tenant(http.HandlerFunc(listPosts)))
	mux.Handle("GET /api/posts/{id}", tenant(http.HandlerFunc(getPost)))
	mux.Handle("/admin/", http.StripPrefix("/admin", admin))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /readyz", tenanthttp.Ready(m, 2*time.Second))

	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		m.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	// Stop taking requests and let those in flight finish; their leases end
	// with them, so the Manager can then close without cutting anything.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(shutdownCtx)
	<-served
	return errors.Join(err, m.Close(shutdownCtx))
}

type post struct {
	ID    bson.ObjectID `bson:"_id,omitempty" json:"id"`
	Title string        `bson:"title" json:"title"`
	Body  string        `bson:"body" json:"body"`
}

func posts(r *http.Request) *mongo.Collection {
	db, _ := tenanthttp.DatabaseFrom(r.Context()) // the middleware guarantees it
	return db.Collection("posts")
}

func createPost(w http.ResponseWriter, r *http.Request) {
	var p post
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&p); err != nil || p.Title == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON body with a title"})
		return
	}
	p.ID = bson.NewObjectID()
	if _, err := posts(r).InsertOne(r.Context(), p); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "could not store the post"})
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func listPosts(w http.ResponseWriter, r *http.Request) {
	cur, err := posts(r).Find(r.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(20))
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "could not list posts"})
		return
	}
	list := []post{}
	if err := cur.All(r.Context(), &list); err != nil { // All closes the cursor before the lease ends
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "could not list posts"})
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func getPost(w http.ResponseWriter, r *http.Request) {
	id, err := bson.ObjectIDFromHex(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such post"})
		return
	}
	var p post
	err = posts(r).FindOne(r.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&p)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such post"})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "could not read the post"})
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
