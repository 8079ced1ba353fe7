package tenanthttp

import (
	"cmp"
	"container/heap"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mongotenant/mongotenant"
)

// Admin returns the admin API of m. authorize is required: a nil authorize
// is an error, because there is no open default. A request for which
// authorize returns false gets 403 before routing, so unauthorized callers
// cannot even tell which routes exist.
//
// Routes are relative; mount the handler under a prefix with
// [http.StripPrefix]:
//
//	GET    /stats         200, mongotenant.Stats
//	GET    /groups        200, [mongotenant.Manager.GroupStats]: a list, one per client group
//	GET    /tiers         200, [mongotenant.Manager.TierStats]: a list, one per tier; O(tenants)
//	GET    /tenants       200, a page of tenants with their stats, sorted by ID:
//	                      {"tenants": [...], "next": "<ID>"}; ?limit=N (default 100, at most
//	                      1000) and ?after=<ID> for the page after next; next is "" when no
//	                      tenant came after the page. O(tenants) per page. 400 for a bad limit.
//	GET    /tenants/{id}  200, mongotenant.TenantStats; 404 if m holds no client for id
//	DELETE /tenants/{id}  204 after Manager.Evict; 404 if m holds no client for id,
//	                      400 for an invalid ID, 503 if m is closed
//
// Other paths get 404 and other methods 405, from [http.ServeMux]. Errors
// are JSON, as written by [WriteError].
//
// The JSON is derived from the Go structs, so it has every field and
// cannot drift from them: each key is the field's name in snake_case
// (EvictedByApp is evicted_by_app); a time.Duration is a floating-point
// number of milliseconds, its key ending in _ms instead of _duration
// (WaitDuration is wait_ms, CheckOutWait is check_out_wait_ms); a
// time.Time is RFC 3339. A tenant's object adds its ID as "tenant".
//
// The handler is safe for concurrent use; authorize is called concurrently.
func Admin(m *mongotenant.Manager, authorize func(*http.Request) bool) (http.Handler, error) {
	if m == nil {
		return nil, errors.New("tenanthttp: Admin: nil Manager")
	}
	if authorize == nil {
		return nil, errors.New("tenanthttp: Admin: nil authorize; there is no open default")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, object(m.Stats()))
	})
	mux.HandleFunc("GET /groups", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, objects(m.GroupStats()))
	})
	mux.HandleFunc("GET /tiers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, objects(m.TierStats()))
	})
	mux.HandleFunc("GET /tenants", func(w http.ResponseWriter, r *http.Request) {
		limit, err := pageLimit(r.URL.Query().Get("limit"))
		if err != nil {
			WriteError(w, r, http.StatusBadRequest, nil)
			return
		}
		writeJSON(w, http.StatusOK, tenantPage(m, r.URL.Query().Get("after"), limit))
	})
	mux.HandleFunc("GET /tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ts, ok := m.TenantStats(id)
		if !ok {
			WriteError(w, r, http.StatusNotFound, mongotenant.ErrTenantNotFound)
			return
		}
		writeJSON(w, http.StatusOK, tenantObject(id, ts))
	})
	mux.HandleFunc("DELETE /tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Evict(r.Context(), r.PathValue("id")); err != nil {
			status, _ := classify(err)
			WriteError(w, r, status, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorize(r) {
			WriteError(w, r, http.StatusForbidden, nil)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// Page sizes of GET /tenants.
const (
	defaultPage = 100
	maxPage     = 1000
)

func pageLimit(s string) (int, error) {
	if s == "" {
		return defaultPage, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPage {
		return 0, errors.New("tenanthttp: limit must be 1 to 1000")
	}
	return n, nil
}

// page is the JSON of GET /tenants.
type page struct {
	Tenants []map[string]any `json:"tenants"`
	Next    string           `json:"next"`
}

// tenantPage returns the limit tenants with the smallest IDs above after,
// keeping no more than limit of them at any time, and the cursor of the
// next page if any tenant comes after them. An ID the iterator yields
// twice (dropped and acquired again meanwhile) is listed once.
func tenantPage(m *mongotenant.Manager, after string, limit int) page {
	var h idHeap
	held := make(map[string]bool, limit)
	more := false // a tenant after the page was seen
	for id, ts := range m.Tenants() {
		switch {
		case id <= after && after != "", held[id]:
		case len(h) < limit:
			heap.Push(&h, entry{id, ts})
			held[id] = true
		case id < h[0].id:
			delete(held, h[0].id)
			h[0] = entry{id, ts}
			heap.Fix(&h, 0)
			held[id], more = true, true
		default:
			more = true
		}
	}
	slices.SortFunc(h, func(a, b entry) int { return cmp.Compare(a.id, b.id) })
	p := page{Tenants: make([]map[string]any, 0, len(h))}
	for _, e := range h {
		p.Tenants = append(p.Tenants, tenantObject(e.id, e.ts))
	}
	if more {
		p.Next = h[len(h)-1].id
	}
	return p
}

type entry struct {
	id string
	ts mongotenant.TenantStats
}

// idHeap is a max-heap by ID: its top is the entry to drop first.
type idHeap []entry

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].id > h[j].id }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *idHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func tenantObject(id string, ts mongotenant.TenantStats) map[string]any {
	o := object(ts)
	o["tenant"] = id
	return o
}

func objects[T any](vs []T) []map[string]any {
	out := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		out = append(out, object(v))
	}
	return out
}

// object returns the JSON object of struct v: see Admin for the rules.
func object(v any) map[string]any {
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	o := make(map[string]any, rt.NumField())
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		key, val := snakeCase(f.Name), rv.Field(i).Interface()
		if d, ok := val.(time.Duration); ok {
			key = strings.TrimSuffix(key, "_duration") + "_ms"
			val = float64(d) / float64(time.Millisecond)
		}
		o[key] = val
	}
	return o
}

// snakeCase turns a Go name into snake_case, keeping initialisms whole:
// EvictedLRU is evicted_lru, InUseConnections is in_use_connections.
func snakeCase(name string) string {
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 &&
			(unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
