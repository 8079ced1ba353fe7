package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServer drives the API over real HTTP: posts land in each tenant's own
// database, bad requests get 4xx, the admin API needs its token, and
// shutdown is clean.
func TestServer(t *testing.T) {
	uri := mongotest.URI(t)
	raw, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Disconnect(context.Background())
	for _, id := range []string{"alice", "bob"} {
		if err := raw.Database("user_" + id + "_db").Drop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, uri, "s3cret") }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	call := func(method, path, tenant, auth, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tenant != "" {
			req.Header.Set("X-Tenant-ID", tenant)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(what string, gotStatus, want int, body string) {
		t.Helper()
		if gotStatus != want {
			t.Errorf("%s: status %d, want %d (body %s)", what, gotStatus, want, body)
		}
	}

	status, body := call("POST", "/api/posts", "alice", "", `{"title":"Hello from Alice"}`)
	expect("create alice's post", status, 201, body)
	var created post
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	status, body = call("POST", "/api/posts", "bob", "", `{"title":"Bob here"}`)
	expect("create bob's post", status, 201, body)

	status, body = call("GET", "/api/posts/"+created.ID.Hex(), "alice", "", "")
	expect("alice reads her post", status, 200, body)
	status, body = call("GET", "/api/posts/"+created.ID.Hex(), "bob", "", "")
	expect("bob cannot see alice's post", status, 404, body)
	status, body = call("GET", "/api/posts", "bob", "", "")
	expect("bob lists", status, 200, body)
	if !strings.Contains(body, "Bob here") || strings.Contains(body, "Alice") {
		t.Errorf("bob's list: %s", body)
	}

	status, body = call("GET", "/api/posts", "", "", "")
	expect("no tenant", status, 400, body)
	status, body = call("GET", "/api/posts", "../admin", "", "")
	expect("hostile tenant", status, 400, body)

	status, body = call("GET", "/admin/stats", "", "", "")
	expect("admin without token", status, 403, body)
	status, body = call("GET", "/admin/stats", "", "Bearer wrong", "")
	expect("admin with a wrong token", status, 403, body)
	status, body = call("GET", "/admin/stats", "", "Bearer s3cret", "")
	expect("admin stats", status, 200, body)
	status, body = call("DELETE", "/admin/tenants/alice", "", "Bearer s3cret", "")
	expect("admin evicts alice", status, 204, body)
	status, body = call("GET", "/api/posts", "alice", "", "")
	expect("alice after eviction", status, 200, body)
	status, body = call("GET", "/admin/tenants", "", "Bearer s3cret", "")
	expect("admin lists tenants", status, 200, body)
	if !strings.Contains(body, `"tenant":"alice"`) || !strings.Contains(body, `"tenant":"bob"`) {
		t.Errorf("tenant list: %s", body)
	}

	status, body = call("GET", "/readyz", "", "", "")
	expect("ready", status, 200, body)
	status, body = call("GET", "/metrics", "", "", "")
	expect("metrics", status, 200, body)
	for _, want := range []string{
		`mongotenant_acquisitions_total{outcome="miss"} 3`,
		`mongotenant_clients_created_total 3`,
		`mongotenant_evictions_total{cause="app"} 1`,
		`mongotenant_commands_total{group="dedicated",outcome="ok"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "alice") || strings.Contains(body, "bob") {
		t.Error("/metrics names a tenant")
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	// What landed where, read without the server.
	for id, want := range map[string]int64{"alice": 1, "bob": 1} {
		n, err := raw.Database("user_"+id+"_db").Collection("posts").CountDocuments(context.Background(), bson.D{})
		if err != nil || n != want {
			t.Errorf("%s has %d posts (err %v), want %d", id, n, err, want)
		}
	}
}
