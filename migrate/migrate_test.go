package migrate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mongotenant/mongotenant/migrate"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noop(context.Context, *mongo.Database) error { return nil }

// TestNewChecksTheMigrations: versions positive and distinct, names and Up
// present, options sane; migrations are sorted by version.
func TestNewChecksTheMigrations(t *testing.T) {
	for name, tc := range map[string]struct {
		ms   []migrate.Migration
		opts []migrate.Option
	}{
		"version 0":     {ms: []migrate.Migration{{Version: 0, Name: "a", Up: noop}}},
		"negative":      {ms: []migrate.Migration{{Version: -1, Name: "a", Up: noop}}},
		"twice":         {ms: []migrate.Migration{{Version: 2, Name: "a", Up: noop}, {Version: 1, Name: "b", Up: noop}, {Version: 2, Name: "c", Up: noop}}},
		"no name":       {ms: []migrate.Migration{{Version: 1, Up: noop}}},
		"no Up":         {ms: []migrate.Migration{{Version: 1, Name: "a"}}},
		"no collection": {opts: []migrate.Option{migrate.WithCollection("")}},
		"zero TTL":      {opts: []migrate.Option{migrate.WithLockTTL(0)}},
	} {
		if _, err := migrate.New(tc.ms, tc.opts...); !errors.Is(err, migrate.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	mg, err := migrate.New([]migrate.Migration{{Version: 7, Name: "c", Up: noop}, {Version: 2, Name: "a", Up: noop}, {Version: 5, Name: "b", Up: noop}})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range mg.Migrations() {
		got = append(got, m.Version)
	}
	if mg.Latest() != 7 || len(got) != 3 || got[0] != 2 || got[1] != 5 || got[2] != 7 {
		t.Errorf("Latest %d, versions %v; want 7, [2 5 7]", mg.Latest(), got)
	}
	empty, err := migrate.New(nil)
	if err != nil || empty.Latest() != 0 {
		t.Errorf("no migrations: %v, Latest %d", err, empty.Latest())
	}
}
