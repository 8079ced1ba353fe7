package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// insertPost inserts a post into the request's tenant database and answers
// {"id":"<hex ObjectID>"}.
func insertPost(w http.ResponseWriter, r *http.Request) {
	db, ok := tenanthttp.DatabaseFrom(r.Context())
	tenant, _ := tenanthttp.TenantFrom(r.Context())
	if !ok {
		http.Error(w, "no tenant database", http.StatusInternalServerError)
		return
	}
	id := bson.NewObjectID()
	if _, err := db.Collection("posts").InsertOne(r.Context(), bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id.Hex()})
}

// send makes a request as tenant ("" for none) and returns the status and
// body.
func send(t *testing.T, c *http.Client, url, tenant string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	require.NoError(t, err)
	if tenant != "" {
		req.Header.Set("X-Tenant-ID", tenant)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestHTTPConcurrentTenants: 1,000 requests over 100 tenants from 50
// concurrent callers, with a cap of 10 clients, so clients are evicted while
// requests use them. No request may fail, and every acknowledged write must
// be in its own tenant's database.
func TestHTTPConcurrentTenants(t *testing.T) {
	const (
		requests = 1000
		tenants  = 100
		workers  = 50
	)
	m, raw := setup(t, patient, mongotenant.WithMaxClients(10))
	srv := httptest.NewServer(tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"))(http.HandlerFunc(insertPost)))
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	t.Cleanup(tr.CloseIdleConnections) // before srv.Close: no client connection outlives the test
	client := &http.Client{Transport: tr}

	var mu sync.Mutex
	statuses := make(map[int]int)
	acked := make(map[string][]string) // tenant -> acknowledged post IDs
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				tenant := fmt.Sprintf("h%03d", i%tenants)
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/posts", nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("X-Tenant-ID", tenant)
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					mu.Lock()
					statuses[0]++
					mu.Unlock()
					continue
				}
				var body struct{ ID string }
				decodeErr := json.NewDecoder(resp.Body).Decode(&body)
				_ = resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusOK && decodeErr == nil {
					acked[tenant] = append(acked[tenant], body.ID)
				}
				mu.Unlock()
			}
		})
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	waitFor(t, "every lease to be released", func() bool { return m.Stats().Leases == 0 })
	s := m.Stats()
	t.Logf("%d requests in %v: statuses %v; created %d clients, evicted lru %d, clients %d, retiring %d",
		requests, elapsed, statuses, s.Created, s.EvictedLRU, s.Clients, s.Retiring)
	require.Equal(t, map[int]int{http.StatusOK: requests}, statuses)
	assert.LessOrEqual(t, s.Clients, 10)
	assert.Positive(t, s.EvictedLRU, "the cap must have evicted")

	ctx := context.Background()
	total := 0
	for tn := range tenants {
		tenant := fmt.Sprintf("h%03d", tn)
		cur, err := raw.Database("user_"+tenant+"_db").Collection("posts").Find(ctx, bson.D{})
		require.NoError(t, err)
		var docs []struct {
			ID     bson.ObjectID `bson:"_id"`
			Tenant string        `bson:"tenant"`
		}
		require.NoError(t, cur.All(ctx, &docs))
		stored := make(map[string]bool, len(docs))
		for _, d := range docs {
			require.Equal(t, tenant, d.Tenant, "a post landed in another tenant's database")
			stored[d.ID.Hex()] = true
		}
		require.Len(t, acked[tenant], requests/tenants)
		for _, id := range acked[tenant] {
			require.True(t, stored[id], "acknowledged post %s of %s is missing", id, tenant)
		}
		require.Len(t, docs, len(acked[tenant]))
		total += len(docs)
	}
	assert.Equal(t, requests, total)
}

// TestHTTPStatuses: the refusals of the middleware against a real server.
func TestHTTPStatuses(t *testing.T) {
	m, raw := setup(t, mongotenant.WithMaxLeases(1))
	entered, release := make(chan struct{}, 1), make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" { // keeps the tenant's only lease until released
			entered <- struct{}{}
			<-release
			return
		}
		insertPost(w, r)
	})
	// Apps bound each request; here a bound on the busy tenant's requests
	// ends the wait for its lease. Others are not bounded: on a loaded
	// machine a first request's client creation and insert can take longer
	// than the bound, and the 200 case is not about time.
	withDeadline := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Tenant-ID") != "beta" {
				h.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
			defer cancel()
			h.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	srv := httptest.NewServer(withDeadline(tenanthttp.Middleware(m, tenanthttp.Header("X-Tenant-ID"))(handler)))
	t.Cleanup(srv.Close)
	t.Cleanup(unblock) // before srv.Close, which waits for the holding handler
	c := srv.Client()
	ctx := context.Background()

	t.Run("200", func(t *testing.T) {
		status, body := send(t, c, srv.URL, "alpha")
		require.Equal(t, http.StatusOK, status, body)
		n, err := raw.Database("user_alpha_db").Collection("posts").CountDocuments(ctx, bson.D{})
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
	})

	t.Run("400", func(t *testing.T) {
		for tenant, want := range map[string]string{
			"":         `{"error":"missing tenant"}`,
			"../admin": `{"error":"invalid tenant"}`,
			"$cmd":     `{"error":"invalid tenant"}`,
			"аdmin":    `{"error":"invalid tenant"}`, // Cyrillic а
		} {
			status, body := send(t, c, srv.URL, tenant)
			assert.Equal(t, http.StatusBadRequest, status, "tenant %q", tenant)
			assert.JSONEq(t, want, body, "tenant %q", tenant)
		}
		names, err := raw.ListDatabaseNames(ctx, bson.D{})
		require.NoError(t, err)
		var tenantDBs []string
		for _, n := range names {
			if strings.HasPrefix(n, "user_") {
				tenantDBs = append(tenantDBs, n)
			}
		}
		assert.Equal(t, []string{"user_alpha_db"}, tenantDBs, "refused tenants reached the server")
	})

	t.Run("429", func(t *testing.T) {
		held := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/hold", nil)
			req.Header.Set("X-Tenant-ID", "beta")
			resp, err := c.Do(req)
			if err != nil {
				held <- 0
				return
			}
			_ = resp.Body.Close()
			held <- resp.StatusCode
		}()
		select {
		case <-entered:
		case status := <-held:
			t.Fatalf("the holding request ended first, with status %d", status)
		}
		status, body := send(t, c, srv.URL, "beta")
		unblock()
		assert.Equal(t, http.StatusOK, <-held)
		require.Equal(t, http.StatusTooManyRequests, status)
		assert.JSONEq(t, `{"error":"tenant busy"}`, body)
		assert.Equal(t, uint64(1), m.Stats().RefusedBusy)
	})

	t.Run("503", func(t *testing.T) {
		require.NoError(t, m.Close(ctx))
		req, err := http.NewRequest(http.MethodPost, srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set("X-Tenant-ID", "alpha")
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		assert.JSONEq(t, `{"error":"service unavailable"}`, string(body))
	})
}

// TestHTTPAuthAndBudget: tenants named by a verified bearer token, against a
// real server: a forged token gets 401, and with a budget that fits one
// client, a second tenant gets 503 while the first holds its lease.
func TestHTTPAuthAndBudget(t *testing.T) {
	const budget = 1 * (1 + 2) // one node, poll monitoring, pool 2: one client
	m, raw := setup(t, mongotenant.WithPoolSize(2),
		mongotenant.WithConnectionBudget(budget, mongotenant.BudgetFailFast))
	verify := func(_ context.Context, token string) (map[string]any, error) {
		tenant, ok := strings.CutPrefix(token, "signed:")
		if !ok {
			return nil, errors.New("bad signature")
		}
		return map[string]any{"tenant": tenant}, nil
	}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
			return
		}
		insertPost(w, r)
	})
	srv := httptest.NewServer(tenanthttp.Middleware(m, tenanthttp.BearerClaim(verify, "tenant"))(handler))
	t.Cleanup(srv.Close)
	t.Cleanup(unblock)
	c := srv.Client()
	do := func(path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	status, body := do("/", "signed:one")
	require.Equal(t, http.StatusOK, status, body)
	status, body = do("/", "forged:one")
	assert.Equal(t, http.StatusUnauthorized, status, body)
	assert.JSONEq(t, `{"error":"unauthenticated"}`, body)

	held := make(chan int, 1)
	go func() {
		status, _ := do("/hold", "signed:one")
		held <- status
	}()
	<-entered
	status, body = do("/", "signed:two")
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	unblock()
	assert.Equal(t, http.StatusOK, <-held)

	status, body = do("/", "signed:two") // one is idle now: evicted to make room
	assert.Equal(t, http.StatusOK, status, body)
	s := m.Stats()
	assert.LessOrEqual(t, s.BudgetUsed, budget)
	assert.Equal(t, uint64(1), s.EvictedBudget)
	n, err := raw.Database("user_two_db").Collection("posts").CountDocuments(context.Background(), bson.D{})
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}
