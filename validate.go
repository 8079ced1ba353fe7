package mongotenant

import (
	"fmt"
	"strings"
)

// MaxDatabaseNameLen is MongoDB's limit on the length of a database name, in bytes.
const MaxDatabaseNameLen = 63

// defaultDatabaseName is the reference design's naming: user_<id>_db.
func defaultDatabaseName(tenantID string) string {
	return "user_" + tenantID + "_db"
}

// ValidateTenantID is the default tenant validator. It accepts 1 to
// [MaxDatabaseNameLen] bytes of ASCII letters, digits, '-' and '_'. The error
// wraps [ErrInvalidTenant] and never repeats the ID, which may be hostile.
func ValidateTenantID(tenantID string) error {
	if tenantID == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTenant)
	}
	if len(tenantID) > MaxDatabaseNameLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidTenant, len(tenantID), MaxDatabaseNameLen)
	}
	for i := 0; i < len(tenantID); i++ {
		if !isTenantByte(tenantID[i]) {
			return fmt.Errorf("%w: byte %d (%#02x) is not an ASCII letter, digit, '-' or '_'", ErrInvalidTenant, i, tenantID[i])
		}
	}
	return nil
}

func isTenantByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// checkDatabaseName rejects a name that MongoDB would refuse or that lies
// outside the tenant namespace. It runs after any custom validator or naming
// function, so neither can hand a tenant the admin database.
func checkDatabaseName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: database name is empty", ErrInvalidTenant)
	case len(name) > MaxDatabaseNameLen:
		return fmt.Errorf("%w: database name would be %d bytes, limit %d", ErrInvalidTenant, len(name), MaxDatabaseNameLen)
	case isReservedDatabase(name):
		return fmt.Errorf("%w: database name is reserved by MongoDB", ErrInvalidTenant)
	}
	if i := strings.IndexAny(name, "/\\. \"$*<>:|?\x00"); i >= 0 {
		return fmt.Errorf("%w: database name has a forbidden byte %#02x at %d", ErrInvalidTenant, name[i], i)
	}
	return nil
}

// isReservedDatabase reports whether name is one of the server's own
// databases. MongoDB refuses names that differ only in case from an existing
// database, so the comparison ignores case.
func isReservedDatabase(name string) bool {
	return strings.EqualFold(name, "admin") || strings.EqualFold(name, "local") || strings.EqualFold(name, "config")
}
