package tenanthttp

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminJSONHasEveryField walks the fields of each struct the admin API
// serves: each field gets a value no other field has, and the JSON must
// carry every one of them, under as many keys as the struct has fields.
// A field added to the struct cannot be missing from the JSON.
func TestAdminJSONHasEveryField(t *testing.T) {
	for _, v := range []any{mongotenant.Stats{}, mongotenant.TenantStats{}, mongotenant.GroupStats{}, mongotenant.TierStats{}} {
		rv := reflect.New(reflect.TypeOf(v)).Elem()
		want := map[string]bool{} // the JSON text of each field's value
		for i := range rv.NumField() {
			f := rv.Field(i)
			n := 1000 + i
			switch f.Interface().(type) {
			case time.Duration:
				f.SetInt(int64(n) * int64(time.Millisecond))
				want[mustJSON(t, float64(n))] = true
				continue
			case time.Time:
				tm := time.Date(2000+i, 1, 2, 3, 4, 5, 0, time.UTC)
				f.Set(reflect.ValueOf(tm))
				want[mustJSON(t, tm)] = true
				continue
			}
			switch f.Kind() {
			case reflect.Int:
				f.SetInt(int64(n))
			case reflect.Uint64:
				f.SetUint(uint64(n))
			case reflect.String:
				f.SetString("value-" + rv.Type().Field(i).Name)
			default:
				t.Fatalf("%s.%s: a %s, which this test does not know", rv.Type(), rv.Type().Field(i).Name, f.Kind())
			}
			want[mustJSON(t, f.Interface())] = true
		}
		var got map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(mustJSON(t, object(rv.Interface()))), &got))
		assert.Len(t, got, rv.NumField(), "%s: one key per field", rv.Type())
		for _, raw := range got {
			assert.True(t, want[string(raw)], "%s: value %s is no field's", rv.Type(), raw)
			delete(want, string(raw))
		}
		assert.Empty(t, want, "%s: fields missing from the JSON", rv.Type())
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"MaxClients": "max_clients", "EvictedLRU": "evicted_lru", "InUseConnections": "in_use_connections",
		"EvictedByApp": "evicted_by_app", "WaitDuration": "wait_duration", "LRUCache": "lru_cache", "Tier": "tier",
	} {
		assert.Equal(t, want, snakeCase(in))
	}
}
