package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/cmd/mongotenant/cli"
	"github.com/mongotenant/mongotenant/migrate"
	"github.com/mongotenant/mongotenant/mongotest"
	"github.com/mongotenant/mongotenant/tenanthttp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
)

// asCLI, when set in the environment, makes the test binary run as the
// command line with testMigrations: the tests run it as a subprocess.
const asCLI = "MONGOTENANT_TEST_AS_CLI"

// testMigrations index posts, then fail for tenants named broken*.
var testMigrations = []migrate.Migration{
	{Version: 1, Name: "posts by author", Up: func(ctx context.Context, db *mongo.Database) error {
		_, err := db.Collection("posts").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "author", Value: 1}}})
		return err
	}},
	{Version: 2, Name: "meta", Up: func(ctx context.Context, db *mongo.Database) error {
		if strings.HasPrefix(db.Name(), "user_broken") {
			return errors.New("this tenant cannot be migrated")
		}
		_, err := db.Collection("meta").InsertOne(ctx, bson.D{{Key: "schema", Value: 2}})
		return err
	}},
}

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) != "" {
		os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, cli.Config{Migrations: testMigrations}))
	}
	goleak.VerifyTestMain(m)
}

// run runs the command line as a subprocess and returns its exit code,
// stdout and stderr.
func run(t *testing.T, uri string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCLI+"=1", "MONGODB_URI="+uri, "MONGOTENANT_ADMIN_TOKEN=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func expect(t *testing.T, want int, uri string, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, uri, args...)
	if code != want {
		t.Fatalf("mongotenant %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// TestCLI drives every command end to end against the embedded server,
// as a subprocess, with its exit codes.
func TestCLI(t *testing.T) {
	uri := mongotest.URI(t)
	raw, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Disconnect(context.Background())
	ctx := context.Background()

	for _, args := range [][]string{{"--help"}, {"tenants", "--help"}, {"tenants", "drop", "--help"}, {"migrate", "up", "--help"}, {"plan", "--help"}, {"stats", "--help"}} {
		if out := expect(t, cli.ExitOK, uri, args...); !strings.Contains(out, "Usage:") {
			t.Errorf("%v: no usage in %q", args, out)
		}
	}
	secretURI := "mongodb://admin:s3cret@db.example:27017/"
	for _, args := range [][]string{{"--help"}, {"tenants", "list", "--help"}, {"stats", "--help"}} {
		code, out, errOut := run(t, secretURI, args...)
		if code != cli.ExitOK || strings.Contains(out+errOut, "s3cret") {
			t.Errorf("%v: exit %d, and the URI's password must not be printed: %s%s", args, code, out, errOut)
		}
	}
	expect(t, cli.ExitUsage, uri, "nonsense")
	expect(t, cli.ExitUsage, uri, "migrate", "bogus")
	expect(t, cli.ExitUsage, uri, "tenants")
	expect(t, cli.ExitUsage, uri, "tenants", "list", "--state", "bogus")
	expect(t, cli.ExitUsage, uri, "tenants", "suspend", "Bad ID!")
	expect(t, cli.ExitUsage, uri, "tenants", "list", "--nope")
	expect(t, cli.ExitUsage, uri, "tenants", "create")
	expect(t, cli.ExitUsage, "", "tenants", "list")

	if out := expect(t, cli.ExitOK, uri, "tenants", "create", "acme", "--tier", "premium"); !strings.Contains(out, "acme is active at schema version 2") {
		t.Errorf("create: %q", out)
	}
	_, _, errOut := run(t, uri, "tenants", "create", "broken1")
	if !strings.Contains(errOut, "cannot be migrated") {
		t.Errorf("a failing provisioning says why: %q", errOut)
	}
	expect(t, cli.ExitFailure, uri, "tenants", "create", "broken1")
	expect(t, cli.ExitUsage, uri, "tenants", "create", "bad id!")
	tenants := decode[[]catalog.Tenant](t, expect(t, cli.ExitOK, uri, "tenants", "list", "--json"))
	if len(tenants) != 2 || tenants[0].ID != "acme" || tenants[0].State != catalog.Active || tenants[0].Tier != "premium" ||
		tenants[1].ID != "broken1" || tenants[1].State != catalog.Provisioning {
		t.Errorf("list: %+v", tenants)
	}
	if out := expect(t, cli.ExitOK, uri, "tenants", "list"); !strings.Contains(out, "ID") || !strings.Contains(out, "premium") {
		t.Errorf("list table: %q", out)
	}

	expect(t, cli.ExitOK, uri, "tenants", "suspend", "acme")
	suspended := decode[[]catalog.Tenant](t, expect(t, cli.ExitOK, uri, "tenants", "list", "--state", "suspended", "--json"))
	if len(suspended) != 1 || suspended[0].ID != "acme" {
		t.Errorf("suspended: %+v", suspended)
	}
	expect(t, cli.ExitOK, uri, "tenants", "resume", "acme")
	expect(t, cli.ExitFailure, uri, "tenants", "suspend", "ghost")

	// Two tenants registered as active with nothing migrated: one migrates,
	// the other fails at version 2, and "migrate up" exits 1.
	cat, err := catalog.New(raw.Database("platform").Collection("tenants"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"fresh", "broken2"} {
		if _, err := cat.Register(ctx, catalog.Tenant{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	type statusRow struct {
		ID               string
		Version, Pending int
	}
	status := decode[[]statusRow](t, expect(t, cli.ExitOK, uri, "migrate", "status", "--json"))
	if len(status) != 3 || status[0] != (statusRow{"acme", 2, 0}) || status[2] != (statusRow{"fresh", 0, 2}) {
		t.Errorf("status: %+v", status)
	}
	type upReport struct {
		Migrated, Current, Failed int
		Tenants                   []struct {
			ID      string
			Applied []int
			Error   string
		}
	}
	up := decode[upReport](t, expect(t, cli.ExitFailure, uri, "migrate", "up", "--json", "--parallelism", "4"))
	if up.Migrated != 1 || up.Current != 1 || up.Failed != 1 || len(up.Tenants) != 3 ||
		up.Tenants[1].ID != "broken2" || up.Tenants[1].Error == "" || len(up.Tenants[1].Applied) != 1 || len(up.Tenants[2].Applied) != 2 {
		t.Errorf("migrate up: %+v", up)
	}
	if err := cat.SetState(ctx, "broken2", catalog.Suspended); err != nil {
		t.Fatal(err)
	}
	if out := expect(t, cli.ExitOK, uri, "migrate", "up"); !strings.Contains(out, "0 migrated, 2 already current, 0 failed") {
		t.Errorf("migrate up table: %q", out)
	}
	fresh, err := cat.Get(ctx, "fresh")
	if err != nil || fresh.SchemaVersion != 2 {
		t.Errorf("migrate up records the version in the catalog: %+v %v", fresh, err)
	}

	expect(t, cli.ExitUsage, uri, "tenants", "drop", "acme")
	expect(t, cli.ExitFailure, uri, "tenants", "drop", "typo", "--confirm")
	expect(t, cli.ExitOK, uri, "tenants", "drop", "acme", "--confirm")
	expect(t, cli.ExitFailure, uri, "tenants", "resume", "acme") // a tombstone is not resumed
	names, err := raw.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == "user_acme_db" {
			t.Error("drop left the database")
		}
	}
	offboarded := decode[[]catalog.Tenant](t, expect(t, cli.ExitOK, uri, "tenants", "list", "--state", "offboarded", "--json"))
	if len(offboarded) != 1 || offboarded[0].ID != "acme" {
		t.Errorf("offboarded: %+v", offboarded)
	}
}

// TestCLIPlanAndStats: plan needs no server; stats reads an admin
// endpoint, with its token.
func TestCLIPlanAndStats(t *testing.T) {
	plan := decode[mongotenant.Plan](t, expect(t, cli.ExitOK, "", "plan", "--server-max-connections", "10000", "--active-tenants", "1000", "--json"))
	if plan.Strategy != "dedicated" || plan.PoolSize != 5 || plan.PeakConnections != 6000 {
		t.Errorf("plan: %+v", plan)
	}
	if out := expect(t, cli.ExitOK, "", "plan", "--server-max-connections", "1500", "--active-tenants", "1000", "--app-instances", "4"); !strings.Contains(out, "strategy") {
		t.Errorf("plan table: %q", out)
	}
	expect(t, cli.ExitUsage, "", "plan")

	m, err := mongotenant.New("mongodb://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	l, err := m.Acquire(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	admin, err := tenanthttp.Admin(m, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer s3cret" })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/admin", admin))
	defer srv.Close()
	stats := decode[map[string]float64](t, expect(t, cli.ExitOK, "", "stats", "--admin-url", srv.URL+"/admin", "--token", "s3cret", "--json"))
	if stats["clients"] != 1 || stats["misses"] != 1 {
		t.Errorf("stats: %v", stats)
	}
	if out := expect(t, cli.ExitOK, "", "stats", "--admin-url", srv.URL+"/admin/", "--token", "s3cret"); !strings.Contains(out, "max_clients") {
		t.Errorf("stats table: %q", out)
	}
	expect(t, cli.ExitFailure, "", "stats", "--admin-url", srv.URL+"/admin", "--token", "wrong")
	expect(t, cli.ExitUsage, "", "stats")
}
