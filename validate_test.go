package mongotenant_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateTenantID(t *testing.T) {
	ok := []string{"a", "alice", "Acme-Corp_42", strings.Repeat("x", 55)}
	bad := map[string]string{
		"empty":          "",
		"too long":       strings.Repeat("x", 64),
		"slash":          "a/b",
		"dot-dot admin":  "../admin",
		"dollar":         "$cmd",
		"dot":            "a.b",
		"space":          "a b",
		"NUL":            "a\x00b",
		"CR LF":          "a\r\nb",
		"unicode":        "alicé",
		"look-alike":     "аdmin", // Cyrillic а
		"huge":           strings.Repeat("x", 1<<20),
		"invalid UTF-8":  "\xff",
		"null character": "\x00",
	}
	for _, id := range ok {
		assert.NoError(t, mongotenant.ValidateTenantID(id), id)
	}
	for name, id := range bad {
		err := mongotenant.ValidateTenantID(id)
		require.ErrorIs(t, err, mongotenant.ErrInvalidTenant, name)
		if len(id) > 3 {
			assert.NotContains(t, err.Error(), id, "%s: the error must not echo hostile input", name)
		}
	}
}

// TestAcquireRejectsInvalidTenantsWithoutIO checks the whole path: the
// default naming turns a 56-byte ID into a 64-byte name, and custom
// validators or names cannot reach the server's own databases.
func TestAcquireRejectsInvalidTenantsWithoutIO(t *testing.T) {
	ctx := context.Background()
	m := newManager(t)
	_, err := m.Acquire(ctx, strings.Repeat("x", 56)) // user_<56>_db is 64 bytes
	assert.ErrorIs(t, err, mongotenant.ErrInvalidTenant)
	l, err := m.Acquire(ctx, strings.Repeat("x", 55))
	require.NoError(t, err)
	l.Release()

	permissive := newManager(t, mongotenant.WithTenantValidator(func(string) error { return nil }),
		mongotenant.WithDatabaseName(func(id string) string { return id }))
	for _, id := range []string{"admin", "ADMIN", "local", "config", "../admin", "a.b", "$cmd", "a\x00", ""} {
		_, err := permissive.Acquire(ctx, id)
		assert.ErrorIs(t, err, mongotenant.ErrInvalidTenant, "%q", id)
	}

	custom := newManager(t, mongotenant.WithTenantValidator(func(id string) error {
		if !strings.HasPrefix(id, "org-") {
			return errors.New("must start with org-")
		}
		return nil
	}))
	_, err = custom.Acquire(ctx, "acme")
	assert.ErrorIs(t, err, mongotenant.ErrInvalidTenant)
	assert.ErrorContains(t, err, "must start with org-")
	assert.Equal(t, uint64(0), custom.Stats().Created)
	assert.Equal(t, uint64(1), m.Stats().Created)
}

// FuzzTenantID holds for any input: Acquire either fails with
// ErrInvalidTenant or leases a database named user_<id>_db inside the tenant
// namespace; it never panics and never creates a client for a bad ID.
func FuzzTenantID(f *testing.F) {
	for _, s := range []string{"alice", "", "../admin", "$cmd", "a\r\nb", "a\x00", "аdmin", "admin", strings.Repeat("z", 56), "A-b_9"} {
		f.Add(s)
	}
	m, err := mongotenant.New(unreachable, mongotenant.WithMaxClients(8))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = m.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, id string) {
		verr := mongotenant.ValidateTenantID(id)
		l, err := m.Acquire(context.Background(), id)
		if err != nil {
			if !errors.Is(err, mongotenant.ErrInvalidTenant) {
				t.Fatalf("error does not wrap ErrInvalidTenant: %v", err)
			}
			return
		}
		defer l.Release()
		if verr != nil {
			t.Fatalf("Acquire accepted an ID the validator rejects: %v", verr)
		}
		name := l.Database().Name()
		if name != "user_"+id+"_db" || len(name) > mongotenant.MaxDatabaseNameLen || strings.ContainsAny(name, "/\\. \"$*<>:|?\x00") {
			t.Fatalf("database name %q is outside the tenant namespace", name)
		}
	})
}

// FuzzDatabaseName: with a validator that accepts anything and a naming
// function that passes the ID through, the final name check alone must
// keep every database inside the tenant namespace.
func FuzzDatabaseName(f *testing.F) {
	for _, s := range []string{"admin", "Admin", "local", "CONFIG", "../admin", "a.b", "$cmd", "a/b", "a\\b", "a b", "a\x00", "", strings.Repeat("n", 64), "ok-name"} {
		f.Add(s)
	}
	m, err := mongotenant.New(unreachable, mongotenant.WithMaxClients(4),
		mongotenant.WithTenantValidator(func(string) error { return nil }),
		mongotenant.WithDatabaseName(func(id string) string { return id }))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = m.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, id string) {
		l, err := m.Acquire(context.Background(), id)
		if err != nil {
			if !errors.Is(err, mongotenant.ErrInvalidTenant) {
				t.Fatalf("error does not wrap ErrInvalidTenant: %v", err)
			}
			return
		}
		defer l.Release()
		name := l.Database().Name()
		reserved := strings.EqualFold(name, "admin") || strings.EqualFold(name, "local") || strings.EqualFold(name, "config")
		if name == "" || len(name) > mongotenant.MaxDatabaseNameLen || reserved || strings.ContainsAny(name, "/\\. \"$*<>:|?\x00") {
			t.Fatalf("database name %q is outside the tenant namespace", name)
		}
	})
}
