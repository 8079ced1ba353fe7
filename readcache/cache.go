// Package readcache caches FindOne results per tenant, for documents that
// are read far more often than they change: settings, profiles, feature
// flags.
//
// A [Cache] holds at most a fixed number of documents across all tenants,
// dropping the least recently used first, and serves each for at most a
// TTL. The tenant ID, database and collection are part of every key, so a
// document is never served to another tenant. The cache does not see
// writes: after changing documents, call [Cache.InvalidateCollection] or
// [Cache.InvalidateTenant], or accept up to one TTL of staleness.
//
//	cache, err := readcache.New(10_000, 30*time.Second)
//	...
//	err = m.Do(ctx, tenantID, func(ctx context.Context, db *mongo.Database) error {
//		raw, err := cache.FindOne(ctx, tenantID, db, "settings", bson.D{{Key: "_id", Value: "ui"}})
//		...
//	})
package readcache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrInvalidConfig is returned, wrapped, by [New] for a size or TTL that
// cannot work. It is a constant value, safe to compare from any goroutine.
var ErrInvalidConfig = errors.New("readcache: invalid config")

// Stats is a snapshot of a [Cache], taken by [Cache.Stats]. Counters run
// from [New]. It is a plain value, owned by the caller.
type Stats struct {
	Hits      uint64 // FindOne calls answered from the cache
	Misses    uint64 // FindOne calls that found no live entry and queried the database
	Bypass    uint64 // FindOne calls that skipped the cache: options, a session, an unencodable filter, or after Close
	Evictions uint64 // documents dropped to stay within the size
	Len       int    // entries held, including invalidated or expired ones not dropped yet
}

// Cache caches FindOne results per tenant, bounded in entries and in age.
// It is safe for concurrent use by multiple goroutines.
//
// # Keys
//
// A key is the tenant ID, the database name, the collection name, the
// invalidation generations (below) and the filter encoded with
// [bson.Marshal]. Those filter bytes are also what is sent to the server,
// so a cached document always answers the query that fetched it. A bson.D,
// bson.Raw or struct filter encodes the same way every time; a map (bson.M)
// with several keys does not, because Go randomizes map order, so bson.M
// filters may miss the cache but never get a wrong document. The filter is
// encoded with the default registry, not the client's: types that only a
// custom client Registry can encode go to the driver uncached (see
// FindOne), and a client's BSONOptions do not apply to cached filters.
//
// # Invalidation
//
// Invalidation is O(1) and drops nothing itself. Each tenant has a
// generation, and so does each collection within a tenant; both are part of
// every key. Invalidating bumps one, which makes the old keys unreachable,
// and their entries age out of the LRU. The generations live in maps that
// hold at most size entries: one per tenant invalidated, and one per
// collection invalidated since its tenant's last InvalidateTenant. An
// invalidation that would grow them beyond that forgets every generation
// and starts a new epoch, also part of every key, which invalidates the
// whole cache. That costs at most size misses, at most once per size/2
// invalidations.
//
// # Why not expirable.LRU
//
// golang-lru's expirable.LRU (v2.0.7) starts a goroutine that can never be
// stopped, which leaks one per Cache. This Cache uses simplelru under its
// own mutex instead: each entry carries its expiry time, checked on read
// against an injectable clock, and expired entries at the LRU's cold end
// are dropped on insert. It starts no goroutines.
type Cache struct {
	ttl  time.Duration
	now  func() time.Time // the clock; tests replace it
	find findFunc         // runs the query; tests replace it

	hits, misses, bypass, evictions atomic.Uint64

	mu      sync.Mutex
	lru     *simplelru.LRU[string, entry] // nil after Close
	gens    map[string]*tenantGens        // tenant ID -> generations
	nGens   int                           // tenants plus collections in gens
	maxGens int                           // bound on nGens
	epoch   uint64                        // bumped whenever gens is reset
}

// findFunc runs FindOne and returns the document. The seam lets unit tests
// run without a server.
type findFunc func(ctx context.Context, db *mongo.Database, collection string, filter any,
	opts ...options.Lister[options.FindOneOptions]) (bson.Raw, error)

type entry struct {
	doc     bson.Raw
	expires time.Time
}

// tenantGens are a tenant's invalidation generations. Collections missing
// from colls are at generation 0.
type tenantGens struct {
	gen   uint64
	colls map[string]uint64
}

// generation is the invalidation state a key was built under.
type generation struct{ epoch, tenant, coll uint64 }

// New returns a Cache of at most size documents across all tenants, each
// served for at most ttl after it was fetched. size and ttl must be
// positive; otherwise the error wraps [ErrInvalidConfig]. New starts no
// goroutines and does no I/O. It is safe to call concurrently.
func New(size int, ttl time.Duration) (*Cache, error) {
	if size <= 0 {
		return nil, fmt.Errorf("%w: size %d, want > 0", ErrInvalidConfig, size)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: ttl %v, want > 0", ErrInvalidConfig, ttl)
	}
	lru, err := simplelru.NewLRU[string, entry](size, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return &Cache{
		ttl:     ttl,
		now:     time.Now,
		find:    findOne,
		lru:     lru,
		gens:    make(map[string]*tenantGens),
		maxGens: size,
	}, nil
}

func findOne(ctx context.Context, db *mongo.Database, collection string, filter any,
	opts ...options.Lister[options.FindOneOptions]) (bson.Raw, error) {
	return db.Collection(collection).FindOne(ctx, filter, opts...).Raw()
}

// FindOne returns the document of db.Collection(collection).FindOne(ctx,
// filter), from the cache if it holds a live one for tenantID. tenantID
// must be the tenant whose database db is, as given by the lease's
// Database. It is safe for concurrent use.
//
// The returned bytes are the caller's to keep or modify. Errors, and
// [mongo.ErrNoDocuments] in particular, are returned as the driver gives
// them and never cached: a cached "not found" would hide a document
// inserted meanwhile for up to the TTL, and few callers invalidate after
// an insert.
// Concurrent misses on one key each run the query.
//
// These calls run the query without the cache, counted as Bypass:
//   - with opts, because their effect (a projection, a sort) is not part of
//     the key;
//   - with a session in ctx, because a session promises read-your-writes
//     and a transaction's reads must not leak uncommitted data to others;
//   - with a filter [bson.Marshal] cannot encode, which the driver then
//     encodes with the client's registry or rejects (nil, say) as usual;
//   - after [Cache.Close].
func (c *Cache) FindOne(ctx context.Context, tenantID string, db *mongo.Database, collection string,
	filter any, opts ...options.Lister[options.FindOneOptions]) (bson.Raw, error) {
	if len(opts) > 0 || mongo.SessionFromContext(ctx) != nil {
		return c.bypassFind(ctx, db, collection, filter, opts)
	}
	if b, ok := filter.([]byte); ok {
		filter = bson.Raw(b) // as the driver reads a []byte filter
	}
	f, err := bson.Marshal(filter)
	if err != nil {
		return c.bypassFind(ctx, db, collection, filter, nil)
	}

	c.mu.Lock()
	if c.lru == nil {
		c.mu.Unlock()
		return c.bypassFind(ctx, db, collection, filter, nil)
	}
	// The generations are read before the query and go into the key. If an
	// invalidation lands while the query runs, the document may predate it,
	// and its key, built with the old generations, is already unreachable:
	// it can never be served as current.
	gen := c.generation(tenantID, collection)
	key := string(appendKey(nil, tenantID, db.Name(), collection, gen, f))
	if e, ok := c.lru.Get(key); ok {
		if c.now().Before(e.expires) {
			c.mu.Unlock()
			c.hits.Add(1)
			return slices.Clone(e.doc), nil
		}
		c.lru.Remove(key)
	}
	c.mu.Unlock()
	c.misses.Add(1)

	// Sending the encoded bytes, not filter, makes the key exactly the query.
	doc, err := c.find(ctx, db, collection, bson.Raw(f))
	if err != nil {
		return nil, err
	}
	// A copy: the driver's bytes point into its whole reply buffer, and the
	// caller may modify what we return.
	kept := slices.Clone(doc)
	c.mu.Lock()
	defer c.mu.Unlock()
	// Skipping a stale-keyed insert is not needed for correctness (see
	// above), but saves it from evicting a live entry.
	if c.lru != nil && c.generation(tenantID, collection) == gen {
		now := c.now()
		c.pruneExpired(now)
		if c.lru.Add(key, entry{doc: kept, expires: now.Add(c.ttl)}) {
			c.evictions.Add(1)
		}
	}
	return doc, nil
}

func (c *Cache) bypassFind(ctx context.Context, db *mongo.Database, collection string, filter any,
	opts []options.Lister[options.FindOneOptions]) (bson.Raw, error) {
	c.bypass.Add(1)
	return c.find(ctx, db, collection, filter, opts...)
}

// pruneExpired drops expired entries from the LRU's cold end, so entries
// nobody reads again, invalidated ones included, stop holding memory
// without waiting for the size to push them out. LRU order is not expiry
// order, so it stops at the first live entry: a cheap partial sweep, and
// amortized O(1) since each entry is dropped once. c.mu must be held.
func (c *Cache) pruneExpired(now time.Time) {
	for {
		_, e, ok := c.lru.GetOldest()
		if !ok || now.Before(e.expires) {
			return
		}
		c.lru.RemoveOldest()
	}
}

// generation returns the current generations of a tenant's collection.
// c.mu must be held.
func (c *Cache) generation(tenantID, collection string) generation {
	g := generation{epoch: c.epoch}
	if t := c.gens[tenantID]; t != nil {
		g.tenant, g.coll = t.gen, t.colls[collection]
	}
	return g
}

// InvalidateCollection makes every cached document of the tenant's
// collection unreachable, in every database, so the next FindOne on it
// queries the server. Call it after writing to the collection. A FindOne
// that starts after it returns never gets a document read before it was
// called. It is O(1) and safe for concurrent use.
func (c *Cache) InvalidateCollection(tenantID, collection string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenantGens(tenantID)
	if t == nil {
		return
	}
	if _, ok := t.colls[collection]; !ok {
		if !c.reserve(1) {
			return
		}
		if t.colls == nil {
			t.colls = make(map[string]uint64)
		}
	}
	t.colls[collection]++
}

// InvalidateTenant makes every cached document of the tenant unreachable,
// so the next FindOne of each queries the server. Call it after bulk
// changes, a restore, or moving the tenant to another cluster. A FindOne
// that starts after it returns never gets a document read before it was
// called. It is O(1) and safe for concurrent use.
func (c *Cache) InvalidateTenant(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenantGens(tenantID)
	if t == nil {
		return
	}
	t.gen++
	// Collection generations may restart at 0: no key was ever built with
	// the new tenant generation, so no old entry can match.
	c.nGens -= len(t.colls)
	t.colls = nil
}

// tenantGens returns the tenant's generations, adding them if missing. It
// returns nil after Close, or if adding reset every generation, which
// already invalidated everything. c.mu must be held.
func (c *Cache) tenantGens(tenantID string) *tenantGens {
	if c.lru == nil {
		return nil
	}
	if t := c.gens[tenantID]; t != nil {
		return t
	}
	if !c.reserve(1) {
		return nil
	}
	t := &tenantGens{}
	c.gens[tenantID] = t
	return t
}

// reserve makes room for n more generations. If that would exceed the
// bound, it forgets them all instead and starts a new epoch, which makes
// every key unreachable, and returns false. c.mu must be held.
func (c *Cache) reserve(n int) bool {
	if c.nGens+n > c.maxGens {
		c.gens = make(map[string]*tenantGens) // not clear: that is O(len)
		c.nGens = 0
		c.epoch++
		return false
	}
	c.nGens += n
	return true
}

// Stats returns a snapshot of the counters and the number of entries. It
// is safe for concurrent use.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	n := 0
	if c.lru != nil {
		n = c.lru.Len()
	}
	c.mu.Unlock()
	return Stats{
		Hits:      c.hits.Load(),
		Misses:    c.misses.Load(),
		Bypass:    c.bypass.Load(),
		Evictions: c.evictions.Load(),
		Len:       n,
	}
}

// Close drops every entry. Later FindOne calls query the server directly
// and count as Bypass, and invalidations do nothing. The Cache has no
// goroutine to stop, so Close only frees memory early; not calling it
// leaks nothing. It is idempotent and safe for concurrent use.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru = nil
	c.gens = nil
	c.nGens = 0
}

// appendKey appends the cache key of a query to b. Every field before the
// filter is self-delimiting (length-prefixed strings, uvarints), and the
// filter takes the rest, so distinct queries or generations never share a
// key, whatever bytes the names contain.
func appendKey(b []byte, tenantID, database, collection string, g generation, filter []byte) []byte {
	for _, s := range [...]string{tenantID, database, collection} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, n := range [...]uint64{g.epoch, g.tenant, g.coll} {
		b = binary.AppendUvarint(b, n)
	}
	return append(b, filter...)
}
