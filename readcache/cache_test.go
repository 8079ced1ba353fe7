package readcache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant/readcache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// client returns a client on a URI nothing listens on: mongo.Connect does no
// network I/O, and the fake server below answers every query, so the client
// only names databases. It is disconnected at the end of the test.
func client(t testing.TB) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").
		SetServerSelectionTimeout(100 * time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Disconnect(context.Background())) })
	return c
}

// server is a fake FindOne. It answers every query with a document naming
// the database, collection and filter it was asked and its current version,
// and counts the queries.
type server struct {
	version atomic.Int64
	calls   atomic.Int64
	err     error // returned instead of a document, if set
}

type answer struct {
	DB     string   `bson:"db"`
	Coll   string   `bson:"coll"`
	Filter bson.Raw `bson:"filter"`
	V      int64    `bson:"v"`
}

func (s *server) find(_ context.Context, db *mongo.Database, collection string, filter any,
	_ ...options.Lister[options.FindOneOptions]) (bson.Raw, error) {
	s.calls.Add(1)
	if s.err != nil {
		return nil, s.err
	}
	return bson.Marshal(bson.D{
		{Key: "db", Value: db.Name()}, {Key: "coll", Value: collection},
		{Key: "filter", Value: filter}, {Key: "v", Value: s.version.Load()},
	})
}

// clock is a fake clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newCache returns a Cache on a fake server and a fake clock, closed at the
// end of the test.
func newCache(t testing.TB, size int, ttl time.Duration) (*readcache.Cache, *server, *clock) {
	t.Helper()
	c, err := readcache.New(size, ttl)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	srv := &server{}
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	readcache.SetFind(c, srv.find)
	readcache.SetClock(c, clk.Now)
	return c, srv, clk
}

// find runs c.FindOne and decodes the answer.
func find(t testing.TB, c *readcache.Cache, tenant string, db *mongo.Database, coll string, filter any,
	opts ...options.Lister[options.FindOneOptions]) answer {
	t.Helper()
	raw, err := c.FindOne(context.Background(), tenant, db, coll, filter, opts...)
	require.NoError(t, err)
	var a answer
	require.NoError(t, bson.Unmarshal(raw, &a))
	return a
}

func byID(id any) bson.D { return bson.D{{Key: "_id", Value: id}} }

func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		size int
		ttl  time.Duration
	}{{0, time.Minute}, {-1, time.Minute}, {10, 0}, {10, -time.Second}} {
		c, err := readcache.New(tc.size, tc.ttl)
		assert.ErrorIs(t, err, readcache.ErrInvalidConfig, "size %d, ttl %v", tc.size, tc.ttl)
		assert.Nil(t, c)
	}
}

func TestHitAfterMiss(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	db := client(t).Database("user_alice_db")

	first := find(t, c, "alice", db, "settings", byID("ui"))
	second := find(t, c, "alice", db, "settings", byID("ui"))
	assert.Equal(t, first, second)
	assert.Equal(t, answer{DB: "user_alice_db", Coll: "settings", Filter: mustMarshal(t, byID("ui"))}, first,
		"the query sent is the encoded filter")
	assert.Equal(t, int64(1), srv.calls.Load())
	assert.Equal(t, readcache.Stats{Hits: 1, Misses: 1, Len: 1}, c.Stats())

	find(t, c, "alice", db, "settings", byID("other"))
	assert.Equal(t, int64(2), srv.calls.Load(), "another filter is another key")
}

func mustMarshal(t testing.TB, v any) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestReturnedBytesAreTheCallers(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	db := client(t).Database("user_alice_db")
	buf := mustMarshal(t, bson.D{{Key: "name", Value: "alice"}})
	readcache.SetFind(c, func(context.Context, *mongo.Database, string, any,
		...options.Lister[options.FindOneOptions]) (bson.Raw, error) {
		srv.calls.Add(1)
		return buf, nil // like the driver, whose bytes point into its reply buffer
	})

	got, err := c.FindOne(context.Background(), "alice", db, "users", byID(1))
	require.NoError(t, err)
	clear(buf) // the driver reuses its buffer
	clear(got) // the caller scribbles on its result
	got, err = c.FindOne(context.Background(), "alice", db, "users", byID(1))
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Lookup("name").StringValue())
	clear(got)
	got, err = c.FindOne(context.Background(), "alice", db, "users", byID(1))
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Lookup("name").StringValue())
	assert.Equal(t, int64(1), srv.calls.Load())
}

// TestScoping: one filter, asked of two tenants, two databases or two
// collections, is four queries, each answered with its own document.
func TestScoping(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	cl := client(t)
	queries := []struct {
		tenant, db, coll string
	}{
		{"alice", "user_alice_db", "settings"},
		{"bob", "user_bob_db", "settings"},
		{"alice", "user_alice_db", "profiles"},
		{"alice", "alice_archive", "settings"},
	}
	for range 2 {
		for _, q := range queries {
			a := find(t, c, q.tenant, cl.Database(q.db), q.coll, byID("x"))
			assert.Equal(t, q.db, a.DB)
			assert.Equal(t, q.coll, a.Coll)
		}
	}
	assert.Equal(t, int64(len(queries)), srv.calls.Load())
	assert.Equal(t, readcache.Stats{Hits: 4, Misses: 4, Len: 4}, c.Stats())
}

// TestSameDatabaseOtherTenant: a tenant ID is part of the key even if a
// caller passes one database under two IDs.
func TestSameDatabaseOtherTenant(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	db := client(t).Database("shared")
	find(t, c, "alice", db, "settings", byID("x"))
	find(t, c, "bob", db, "settings", byID("x"))
	assert.Equal(t, int64(2), srv.calls.Load())
}

func TestInvalidateCollection(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	cl := client(t)
	alice, bob := cl.Database("user_alice_db"), cl.Database("user_bob_db")
	find(t, c, "alice", alice, "settings", byID(1))
	find(t, c, "alice", alice, "profiles", byID(1))
	find(t, c, "bob", bob, "settings", byID(1))

	srv.version.Store(1)
	c.InvalidateCollection("alice", "settings")
	assert.Equal(t, int64(1), find(t, c, "alice", alice, "settings", byID(1)).V)
	assert.Equal(t, int64(0), find(t, c, "alice", alice, "profiles", byID(1)).V, "other collection kept")
	assert.Equal(t, int64(0), find(t, c, "bob", bob, "settings", byID(1)).V, "other tenant kept")
	assert.Equal(t, int64(4), srv.calls.Load())
}

func TestInvalidateTenant(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	cl := client(t)
	alice, bob := cl.Database("user_alice_db"), cl.Database("user_bob_db")
	find(t, c, "alice", alice, "settings", byID(1))
	find(t, c, "alice", alice, "profiles", byID(1))
	find(t, c, "bob", bob, "settings", byID(1))

	srv.version.Store(1)
	c.InvalidateTenant("alice")
	assert.Equal(t, int64(1), find(t, c, "alice", alice, "settings", byID(1)).V)
	assert.Equal(t, int64(1), find(t, c, "alice", alice, "profiles", byID(1)).V)
	assert.Equal(t, int64(0), find(t, c, "bob", bob, "settings", byID(1)).V, "other tenant kept")
	assert.Equal(t, int64(5), srv.calls.Load())
}

// TestNoStaleAfterGenerationsRestart: InvalidateTenant restarts the
// collection generations at 0. No invalidation sequence may bring back a
// document cached before one of them.
func TestNoStaleAfterGenerationsRestart(t *testing.T) {
	c, srv, _ := newCache(t, 100, time.Minute)
	db := client(t).Database("user_alice_db")
	steps := []func(){
		func() { c.InvalidateCollection("alice", "settings") },
		func() { c.InvalidateTenant("alice") },
		func() { c.InvalidateCollection("alice", "settings") },
		func() { c.InvalidateCollection("alice", "settings") },
		func() { c.InvalidateTenant("alice") },
		func() { c.InvalidateTenant("alice") },
		func() { c.InvalidateCollection("alice", "settings") },
	}
	assert.Equal(t, int64(0), find(t, c, "alice", db, "settings", byID(1)).V)
	for i, step := range steps {
		srv.version.Store(int64(i + 1))
		step()
		assert.Equal(t, int64(i+1), find(t, c, "alice", db, "settings", byID(1)).V, "after step %d", i)
	}
}

func TestTTL(t *testing.T) {
	c, srv, clk := newCache(t, 10, time.Minute)
	db := client(t).Database("user_alice_db")
	find(t, c, "alice", db, "settings", byID(1))

	clk.Advance(time.Minute - time.Nanosecond)
	srv.version.Store(1)
	assert.Equal(t, int64(0), find(t, c, "alice", db, "settings", byID(1)).V, "still live")
	clk.Advance(time.Nanosecond)
	assert.Equal(t, int64(1), find(t, c, "alice", db, "settings", byID(1)).V, "expired at ttl")
	assert.Equal(t, readcache.Stats{Hits: 1, Misses: 2, Len: 1}, c.Stats())
}

// TestExpiredEntriesAreDropped: entries nobody reads again, an
// invalidated one here, leave once expired instead of waiting for the size
// to push them out.
func TestExpiredEntriesAreDropped(t *testing.T) {
	c, _, clk := newCache(t, 100, time.Minute)
	db := client(t).Database("user_alice_db")
	for i := range 5 {
		find(t, c, "alice", db, "settings", byID(i))
	}
	c.InvalidateTenant("alice")
	assert.Equal(t, 5, c.Stats().Len, "invalidated entries stay until they age out")
	clk.Advance(time.Minute)
	find(t, c, "bob", db, "settings", byID(1))
	assert.Equal(t, readcache.Stats{Misses: 6, Len: 1}, c.Stats(), "not counted as evictions")
}

func TestSizeBound(t *testing.T) {
	c, srv, _ := newCache(t, 2, time.Minute)
	db := client(t).Database("user_alice_db")
	find(t, c, "alice", db, "c", byID(1))
	find(t, c, "alice", db, "c", byID(2))
	find(t, c, "alice", db, "c", byID(1)) // 1 is now the most recently used
	find(t, c, "alice", db, "c", byID(3)) // evicts 2
	assert.Equal(t, readcache.Stats{Hits: 1, Misses: 3, Evictions: 1, Len: 2}, c.Stats())

	find(t, c, "alice", db, "c", byID(1))
	assert.Equal(t, int64(3), srv.calls.Load(), "1 kept")
	find(t, c, "alice", db, "c", byID(2))
	assert.Equal(t, int64(4), srv.calls.Load(), "2 evicted")
}

func TestErrorsAreNotCached(t *testing.T) {
	for _, want := range []error{mongo.ErrNoDocuments, errors.New("connection reset")} {
		t.Run(want.Error(), func(t *testing.T) {
			c, srv, _ := newCache(t, 10, time.Minute)
			db := client(t).Database("user_alice_db")
			srv.err = want
			for range 2 {
				raw, err := c.FindOne(context.Background(), "alice", db, "settings", byID(1))
				assert.ErrorIs(t, err, want)
				assert.Nil(t, raw)
			}
			assert.Equal(t, int64(2), srv.calls.Load())
			assert.Equal(t, readcache.Stats{Misses: 2}, c.Stats())
		})
	}
}

func TestBypass(t *testing.T) {
	cl := client(t)
	db := cl.Database("user_alice_db")
	sess, err := cl.StartSession()
	require.NoError(t, err)
	t.Cleanup(func() { sess.EndSession(context.Background()) })

	for _, tc := range []struct {
		name   string
		ctx    context.Context
		filter any
		opts   []options.Lister[options.FindOneOptions]
	}{
		{"options", context.Background(), byID(1),
			[]options.Lister[options.FindOneOptions]{options.FindOne().SetProjection(bson.D{{Key: "a", Value: 1}})}},
		{"session", mongo.NewSessionContext(context.Background(), sess), byID(1), nil},
		{"unencodable filter", context.Background(), 42, nil},
		{"nil filter", context.Background(), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv, _ := newCache(t, 10, time.Minute)
			var gotFilter any
			var gotOpts int
			readcache.SetFind(c, func(ctx context.Context, db *mongo.Database, coll string, filter any,
				opts ...options.Lister[options.FindOneOptions]) (bson.Raw, error) {
				gotFilter, gotOpts = filter, len(opts)
				return srv.find(ctx, db, coll, filter, opts...)
			})
			for range 2 {
				_, err := c.FindOne(tc.ctx, "alice", db, "settings", tc.filter, tc.opts...)
				require.NoError(t, err)
			}
			assert.Equal(t, tc.filter, gotFilter, "the driver gets the filter as given")
			assert.Equal(t, len(tc.opts), gotOpts, "and the options")
			assert.Equal(t, int64(2), srv.calls.Load())
			assert.Equal(t, readcache.Stats{Bypass: 2}, c.Stats())
		})
	}
}

// TestInvalidateDuringMiss: a query that read the old document races an
// invalidation. Its caller may get the old document, but nobody after the
// invalidation may.
func TestInvalidateDuringMiss(t *testing.T) {
	for _, tc := range []struct {
		name       string
		invalidate func(*readcache.Cache)
	}{
		{"collection", func(c *readcache.Cache) { c.InvalidateCollection("alice", "settings") }},
		{"tenant", func(c *readcache.Cache) { c.InvalidateTenant("alice") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv, _ := newCache(t, 10, time.Minute)
			db := client(t).Database("user_alice_db")
			entered, proceed := make(chan struct{}), make(chan struct{})
			readcache.SetFind(c, func(ctx context.Context, db *mongo.Database, coll string, filter any,
				opts ...options.Lister[options.FindOneOptions]) (bson.Raw, error) {
				doc, err := srv.find(ctx, db, coll, filter, opts...)
				if srv.calls.Load() == 1 {
					close(entered) // the old document is read
					<-proceed
				}
				return doc, err
			})

			old := make(chan answer, 1)
			go func() {
				raw, err := c.FindOne(context.Background(), "alice", db, "settings", byID(1))
				var a answer
				if err == nil {
					err = bson.Unmarshal(raw, &a)
				}
				assert.NoError(t, err)
				old <- a
			}()
			<-entered
			srv.version.Store(1)
			tc.invalidate(c)
			close(proceed)
			assert.Equal(t, int64(0), (<-old).V)

			assert.Equal(t, int64(1), find(t, c, "alice", db, "settings", byID(1)).V)
			assert.Equal(t, int64(2), srv.calls.Load())
			assert.Equal(t, 1, c.Stats().Len, "the old document was not cached")
		})
	}
}

// TestGenerationsStayBounded: invalidating many tenants and collections
// never holds more generations than the size, and never brings back a
// document cached before an invalidation.
func TestGenerationsStayBounded(t *testing.T) {
	const size = 8
	c, srv, _ := newCache(t, size, time.Minute)
	cl := client(t)
	kept := cl.Database("user_kept_db")
	find(t, c, "kept", kept, "settings", byID(1))
	for i := range 1000 {
		tenant := fmt.Sprint("t", i%50)
		srv.version.Store(int64(i + 1))
		if i%7 == 0 {
			c.InvalidateTenant(tenant)
		} else {
			c.InvalidateCollection(tenant, fmt.Sprint("c", i%5))
		}
		n, limit := readcache.Generations(c)
		require.LessOrEqual(t, n, limit)
		assert.Equal(t, size, limit)
		db := cl.Database("user_" + tenant + "_db")
		coll := fmt.Sprint("c", i%5)
		require.Equal(t, int64(i+1), find(t, c, tenant, db, coll, byID(1)).V, "fresh after invalidation %d", i)
	}
	// A reset invalidates everything, "kept" included: more misses, never a
	// wrong answer.
	assert.Equal(t, int64(1000), find(t, c, "kept", kept, "settings", byID(1)).V)
}

func TestClose(t *testing.T) {
	c, srv, _ := newCache(t, 10, time.Minute)
	db := client(t).Database("user_alice_db")
	find(t, c, "alice", db, "settings", byID(1))
	c.Close()
	c.Close()
	c.InvalidateCollection("alice", "settings")
	c.InvalidateTenant("alice")
	srv.version.Store(1)
	assert.Equal(t, int64(1), find(t, c, "alice", db, "settings", byID(1)).V)
	assert.Equal(t, readcache.Stats{Misses: 1, Bypass: 1}, c.Stats())
}

// TestConcurrent runs lookups and invalidations from many goroutines (run
// it with -race). Every answer must be for the query asked, and no answer
// may predate an invalidation its goroutine made before asking.
func TestConcurrent(t *testing.T) {
	const (
		goroutines = 16
		ops        = 400
		size       = 10 // small, so evictions and generation resets happen
	)
	c, srv, clk := newCache(t, size, time.Minute)
	cl := client(t)
	var finds atomic.Uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			minV := make(map[[2]string]int64) // (tenant, collection) -> lowest acceptable version
			for range ops {
				tenant, coll := fmt.Sprint("t", r.IntN(4)), fmt.Sprint("c", r.IntN(3))
				switch n := r.IntN(100); {
				case n < 5:
					minV[[2]string{tenant, coll}] = srv.version.Add(1)
					c.InvalidateCollection(tenant, coll)
				case n < 8:
					v := srv.version.Add(1)
					for i := range 3 {
						minV[[2]string{tenant, fmt.Sprint("c", i)}] = v
					}
					c.InvalidateTenant(tenant)
				case n < 9:
					clk.Advance(time.Second)
				default:
					finds.Add(1)
					db := cl.Database("user_" + tenant + "_db")
					id := r.IntN(5)
					raw, err := c.FindOne(context.Background(), tenant, db, coll, byID(id))
					if !assert.NoError(t, err) {
						return
					}
					var a answer
					assert.NoError(t, bson.Unmarshal(raw, &a))
					assert.Equal(t, db.Name(), a.DB)
					assert.Equal(t, coll, a.Coll)
					assert.Equal(t, int64(id), a.Filter.Lookup("_id").AsInt64())
					assert.GreaterOrEqual(t, a.V, minV[[2]string{tenant, coll}], "stale after invalidation")
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	assert.Equal(t, finds.Load(), s.Hits+s.Misses)
	assert.LessOrEqual(t, s.Len, size)
	assert.Positive(t, s.Hits)
	assert.Positive(t, s.Evictions)
	n, limit := readcache.Generations(c)
	assert.LessOrEqual(t, n, limit)
}

// keyCases are pairs of queries that a naive concatenation would confuse.
var keyCases = []struct{ t1, d1, c1, t2, d2, c2 string }{
	{"a:b", "db", "c", "a", "db", "b:c"},
	{"ab", "db", "c", "a", "db", "bc"},
	{"a", "b", "c", "ab", "", "c"},
	{"", "", "abc", "abc", "", ""},
	{"a\x00", "db", "c", "a", "db", "\x00c"},
	{"\x01a", "db", "", "", "db", "\x01a"},
	{"t", "db", "c\x02\x00\x00\x00", "t", "db", "c"},
}

func TestKeysAreDistinct(t *testing.T) {
	filter := []byte("\x05\x00\x00\x00\x00")
	for _, k := range keyCases {
		assert.NotEqual(t,
			readcache.Key(k.t1, k.d1, k.c1, 0, 0, 0, filter),
			readcache.Key(k.t2, k.d2, k.c2, 0, 0, 0, filter), "%+v", k)
	}
	gens := [][3]uint64{{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {1, 0, 0}, {0, 1, 1}, {128, 0, 0}, {0, 0, 128}}
	seen := make(map[string][3]uint64)
	for _, g := range gens {
		k := readcache.Key("t", "db", "c", g[0], g[1], g[2], filter)
		if prev, ok := seen[k]; ok {
			t.Errorf("generations %v and %v share a key", prev, g)
		}
		seen[k] = g
	}
}

// FuzzKeyInjective: two different queries, whatever bytes their names and
// filters hold, never share a key.
func FuzzKeyInjective(f *testing.F) {
	for _, k := range keyCases {
		f.Add(k.t1, k.d1, k.c1, uint64(0), []byte{}, k.t2, k.d2, k.c2, uint64(0), []byte{})
	}
	f.Add("t", "d", "c", uint64(1), []byte("x"), "t", "d", "c", uint64(0), []byte("\x01x"))
	f.Fuzz(func(t *testing.T, t1, d1, c1 string, g1 uint64, f1 []byte, t2, d2, c2 string, g2 uint64, f2 []byte) {
		same := t1 == t2 && d1 == d2 && c1 == c2 && g1 == g2 && string(f1) == string(f2)
		k1 := readcache.Key(t1, d1, c1, g1, g1, g1, f1)
		k2 := readcache.Key(t2, d2, c2, g2, g2, g2, f2)
		if (k1 == k2) != same {
			t.Fatalf("queries %q/%q/%q/%d/%x and %q/%q/%q/%d/%x: keys equal %v", t1, d1, c1, g1, f1, t2, d2, c2, g2, f2, k1 == k2)
		}
	})
}
