package mongotest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/mongotenant/mongotenant/mongotest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// embedded starts an embedded server regardless of the environment.
func embedded(t *testing.T) *mongotest.Server {
	t.Helper()
	t.Setenv("MONGODB_URI", "")
	t.Setenv("MONGOTENANT_TEST_BACKEND", "embedded")
	s := mongotest.New(t)
	if got := s.Backend(); got != mongotest.BackendEmbedded {
		t.Fatalf("Backend() = %q, want %q", got, mongotest.BackendEmbedded)
	}
	return s
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(20 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Disconnect(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

func insert(t *testing.T, c *mongo.Client, name string) {
	t.Helper()
	if _, err := c.Database("db").Collection("c").InsertOne(t.Context(), bson.D{{Key: "name", Value: name}}); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, c *mongo.Client) []string {
	t.Helper()
	cur, err := c.Database("db").Collection("c").Find(t.Context(), bson.D{}, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct{ Name string }
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	var res []string
	for _, d := range docs {
		res = append(res, d.Name)
	}
	return res
}

func TestEmbeddedInsertFind(t *testing.T) {
	s := embedded(t)
	c := connect(t, s.URI())
	insert(t, c, "a")
	if got := names(t, c); fmt.Sprint(got) != "[a]" {
		t.Fatalf("names = %v, want [a]", got)
	}
}

func TestTwoServers(t *testing.T) {
	t.Setenv("MONGODB_URI", "")
	t.Setenv("MONGOTENANT_TEST_BACKEND", "")

	// Start both at once: Start must be safe for concurrent use.
	var servers [2]*mongotest.Server
	var errs [2]error
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = mongotest.Start(t.Context()) })
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	s1, s2 := servers[0], servers[1]
	if s1.URI() == s2.URI() {
		t.Fatalf("both servers have URI %s", s1.URI())
	}
	c1, c2 := connect(t, s1.URI()), connect(t, s2.URI())
	insert(t, c1, "one")
	insert(t, c2, "two")
	if got := names(t, c1); fmt.Sprint(got) != "[one]" {
		t.Errorf("server 1 names = %v, want [one]", got)
	}
	if got := names(t, c2); fmt.Sprint(got) != "[two]" {
		t.Errorf("server 2 names = %v, want [two]", got)
	}
}

func TestStopRestartKeepsData(t *testing.T) {
	s := embedded(t)
	uri := s.URI()
	c := connect(t, uri)
	insert(t, c, "before")

	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start))
	if err := s.Stop(); err != nil { // no-op when stopped
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := c.Ping(ctx, nil); err == nil {
		t.Fatal("Ping succeeded on a stopped server")
	}

	start = time.Now()
	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %v", time.Since(start))
	if s.URI() != uri {
		t.Fatalf("URI changed from %s to %s", uri, s.URI())
	}

	// The client reconnects by itself.
	insert(t, c, "after")
	if got := names(t, c); fmt.Sprint(got) != "[after before]" {
		t.Fatalf("names = %v, want [after before]", got)
	}
}

func TestCloseIdempotent(t *testing.T) {
	t.Setenv("MONGODB_URI", "")
	before := goleak.IgnoreCurrent() // what earlier tests are still ending is not this Close's
	start := time.Now()
	s, err := mongotest.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(start))
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t, before) // Close leaves no goroutine behind
	if err := s.Restart(t.Context()); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestURIBackend(t *testing.T) {
	uri := embedded(t).URI()
	t.Setenv("MONGODB_URI", uri)

	s := mongotest.New(t)
	if s.Backend() != mongotest.BackendURI || s.URI() != uri {
		t.Fatalf("got backend %q URI %q, want %q %q", s.Backend(), s.URI(), mongotest.BackendURI, uri)
	}
	if err := s.Stop(); !errors.Is(err, mongotest.ErrNotEmbedded) {
		t.Errorf("Stop() = %v, want ErrNotEmbedded", err)
	}
	if err := s.Restart(t.Context()); !errors.Is(err, mongotest.ErrNotEmbedded) {
		t.Errorf("Restart() = %v, want ErrNotEmbedded", err)
	}
	if got := mongotest.URI(t); got != uri {
		t.Errorf("URI(t) = %q, want %q", got, uri)
	}
}

func TestUnknownBackend(t *testing.T) {
	t.Setenv("MONGODB_URI", "")
	t.Setenv("MONGOTENANT_TEST_BACKEND", "nope")
	if s, err := mongotest.Start(t.Context()); err == nil {
		s.Close()
		t.Fatal("Start succeeded with an unknown backend")
	}
}

func Example() {
	// In a test, use mongotest.New(t) or mongotest.URI(t) instead.
	s, err := mongotest.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(context.Background())

	coll := c.Database("example").Collection("tenants")
	_ = coll.Drop(context.Background()) // start empty if MONGODB_URI is a shared server
	if _, err := coll.InsertOne(context.Background(), bson.D{{Key: "name", Value: "acme"}}); err != nil {
		log.Fatal(err)
	}
	n, err := coll.CountDocuments(context.Background(), bson.D{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 1
}

// TestProxyAddsLatency: a ping through the proxy takes at least the
// latency set, a command on a database with a delay at least the delay, connections are counted, and Close leaves nothing running.
func TestProxyAddsLatency(t *testing.T) {
	srv := embedded(t)
	p, err := mongotest.NewProxy(srv.URI())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := connect(t, p.URI())
	if err := c.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	p.SetLatency(30 * time.Millisecond)
	start := time.Now()
	if err := c.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("ping through a 30 ms proxy took %v", took)
	}
	if p.Opened() < 1 || p.Open() < 1 {
		t.Errorf("Opened() = %d, Open() = %d", p.Opened(), p.Open())
	}

	// A delay on one database holds the replies to its commands.
	p.SetLatency(0)
	p.SetDatabaseDelay("slow", 40*time.Millisecond)
	start = time.Now()
	if err := c.Database("slow").RunCommand(context.Background(), bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("ping on a database with a 40 ms delay took %v", took)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Open() != 0 {
		t.Errorf("Open() = %d after Close", p.Open())
	}
	if err := c.Ping(context.Background(), nil); err == nil {
		t.Error("ping succeeded through a closed proxy")
	}
}
