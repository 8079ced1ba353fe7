package mongotenant

import "testing"

// TestDefaultTenantIDInvertsTheNaming: every valid ID survives the round
// trip; names of other databases are no tenant's.
func TestDefaultTenantIDInvertsTheNaming(t *testing.T) {
	for _, id := range []string{"a", "acme", "user_db", "x_db_db", "user-1"} {
		if got, ok := defaultTenantID(defaultDatabaseName(id)); !ok || got != id {
			t.Errorf("%q: got %q, %t", id, got, ok)
		}
	}
	for _, name := range []string{"admin", "user__db", "user_a.b_db", "users_x_db", "user_x", "platform"} {
		if id, ok := defaultTenantID(name); ok {
			t.Errorf("%q mapped to tenant %q", name, id)
		}
	}
}
