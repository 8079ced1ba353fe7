// SaaS is the reference design's SaaS platform: every company is a tenant
// on a billing tier that sizes its connection pool. Companies are
// provisioned into a tenant catalog, their databases versioned by
// migrations; e-mail addresses are unique within a company but not across
// companies; a company can be suspended (its requests refused, its client
// evicted) and resumed; a company that leaves is offboarded, its database
// dropped; each company gets its own analytics.
//
//	go run ./examples/saas
//
// It uses MONGODB_URI if set, and otherwise starts an embedded server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/examples/internal/example"
	"github.com/mongotenant/mongotenant/lifecycle"
	"github.com/mongotenant/mongotenant/migrate"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() { example.Main(run) }

// migrations are the companies' schema, in versions: what the reference
// design's onboarding did in one step. A version, once released, never
// changes; a new index is a new version.
var migrations = []migrate.Migration{
	{Version: 1, Name: "unique e-mail per company", Up: func(ctx context.Context, db *mongo.Database) error {
		_, err := db.Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: "email", Value: 1}},
			Options: options.Index().SetUnique(true),
		})
		return err
	}},
	{Version: 2, Name: "projects by owner", Up: func(ctx context.Context, db *mongo.Database) error {
		_, err := db.Collection("projects").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "owner", Value: 1}}})
		return err
	}},
}

type user struct {
	Name  string `bson:"name"`
	Email string `bson:"email"`
}

type project struct {
	Name  string `bson:"name"`
	Owner string `bson:"owner"` // the owner's e-mail
}

// companies in the order they sign up, with their billing tiers.
var companies = []struct {
	id, tier string
	users    []user
	projects []project
}{
	{"acme", "enterprise",
		[]user{{"Alice", "alice@example.com"}, {"Bob", "bob@example.com"}, {"Carol", "carol@example.com"}},
		[]project{{"rockets", "alice@example.com"}, {"anvils", "alice@example.com"}, {"magnets", "bob@example.com"}, {"springs", "carol@example.com"}}},
	{"globex", "premium",
		[]user{{"Hank", "hank@example.com"}},
		[]project{{"hammocks", "hank@example.com"}, {"doomsday", "hank@example.com"}}},
	{"initech", "basic",
		[]user{{"Peter", "peter@example.com"}, {"Michael", "michael@example.com"}, {"Samir", "samir@example.com"}},
		[]project{{"tps-reports", "peter@example.com"}, {"y2k", "samir@example.com"}, {"jump-to-conclusions", "samir@example.com"}}},
	{"umbrella", "free",
		[]user{{"Jill", "jill@example.com"}},
		[]project{{"hive", "jill@example.com"}}},
}

func run(ctx context.Context, w io.Writer, uri string) error {
	registry, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer registry.Disconnect(context.WithoutCancel(ctx))
	if err := reset(ctx, registry); err != nil {
		return err
	}
	cat, err := catalog.New(registry.Database("platform").Collection("tenants"))
	if err != nil {
		return err
	}
	mg, err := migrate.New(migrations)
	if err != nil {
		return err
	}
	m, err := mongotenant.New(uri,
		// The catalog serves only the companies it knows, and active ones,
		// each on its tier's pool: free 3, basic 5, premium 10, enterprise 20.
		mongotenant.WithRouter(cat.Router(mongotenant.DefaultTiers())),
		// A company's database is brought to the latest version before its
		// first lease in every app instance: when a release adds a
		// migration, each company gets it on its next request.
		mongotenant.WithInit(mg.Init),
	)
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	lc, err := lifecycle.New(m, cat, mg)
	if err != nil {
		return err
	}

	requests := 0
	for _, c := range companies {
		t, err := lc.Provision(ctx, c.id, lifecycle.Tier(c.tier))
		if err != nil {
			return fmt.Errorf("%s: %w", c.id, err)
		}
		fmt.Fprintf(w, "%-8s  provisioned on the %s plan, schema version %d\n", c.id, t.Tier, t.SchemaVersion)
		for _, u := range c.users {
			if err := insert(ctx, m, c.id, "users", u); err != nil {
				return fmt.Errorf("%s: %w", c.id, err)
			}
			requests++
		}
		for _, p := range c.projects {
			if err := insert(ctx, m, c.id, "projects", p); err != nil {
				return fmt.Errorf("%s: %w", c.id, err)
			}
			requests++
		}
	}
	fmt.Fprintf(w, "%d companies served %d requests\n", len(companies), requests)

	// Alice signs up at acme a second time: the unique index refuses it.
	err = insert(ctx, m, "acme", "users", user{"Alice Again", "alice@example.com"})
	switch {
	case mongo.IsDuplicateKeyError(err):
		fmt.Fprintln(w, "acme      refused a second alice@example.com: duplicate key")
	case err != nil:
		return err
	default:
		return errors.New("acme accepted a duplicate e-mail")
	}
	// She joins globex with the same address: another company, another
	// database, another unique index.
	if err := insert(ctx, m, "globex", "users", user{"Alice", "alice@example.com"}); err != nil {
		return err
	}
	fmt.Fprintln(w, "globex    accepted alice@example.com, an acme user too")

	// A company the catalog does not know gets no client at all.
	err = insert(ctx, m, "hooli", "users", user{"Gavin", "gavin@example.com"})
	if !errors.Is(err, mongotenant.ErrUnknownTenant) {
		return fmt.Errorf("hooli: got %v, want ErrUnknownTenant", err)
	}
	fmt.Fprintln(w, "hooli     refused: unknown tenant")

	// umbrella misses a payment. Every app instance sees the suspension
	// within its route TTL; Refresh makes this one see it now.
	if err := cat.SetState(ctx, "umbrella", catalog.Suspended); err != nil {
		return err
	}
	if err := m.Refresh(ctx, "umbrella"); !errors.Is(err, mongotenant.ErrTenantSuspended) {
		return fmt.Errorf("umbrella: refresh: %v", err)
	}
	_, cached := m.TenantStats("umbrella")
	err = insert(ctx, m, "umbrella", "projects", project{"hive-2", "jill@example.com"})
	if !errors.Is(err, mongotenant.ErrTenantSuspended) {
		return fmt.Errorf("umbrella: got %v, want ErrTenantSuspended", err)
	}
	fmt.Fprintf(w, "umbrella  suspended: request refused, client cached=%t\n", cached)
	if err := cat.SetState(ctx, "umbrella", catalog.Active); err != nil {
		return err
	}
	if err := insert(ctx, m, "umbrella", "projects", project{"hive-2", "jill@example.com"}); err != nil {
		return err
	}
	fmt.Fprintln(w, "umbrella  resumed: request served")

	// soylent signs up and leaves: offboarding drains its leases, drops
	// its database (only with DropDatabase) and leaves a tombstone.
	if _, err := lc.Provision(ctx, "soylent", lifecycle.Tier("free")); err != nil {
		return err
	}
	if err := insert(ctx, m, "soylent", "users", user{"Sol", "sol@example.com"}); err != nil {
		return err
	}
	if err := lc.Offboard(ctx, "soylent", lifecycle.DropDatabase()); err != nil {
		return err
	}
	t, err := cat.Get(ctx, "soylent")
	if err != nil {
		return err
	}
	names, err := registry.ListDatabaseNames(ctx, bson.D{{Key: "name", Value: "user_soylent_db"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "soylent   offboarded: entry %s, databases left %d\n", t.State, len(names))

	for _, c := range companies {
		var analytics string
		err := m.Do(ctx, c.id, func(ctx context.Context, db *mongo.Database) (err error) {
			analytics, err = report(ctx, db)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", c.id, err)
		}
		ts, _ := m.TenantStats(c.id)
		fmt.Fprintf(w, "%-8s  tier=%s pool=%d %s\n", c.id, ts.Tier, ts.PoolSize, analytics)
	}
	return m.Close(ctx)
}

// insert adds doc to the company's collection, as one request would.
func insert(ctx context.Context, m *mongotenant.Manager, company, collection string, doc any) error {
	return m.Do(ctx, company, func(ctx context.Context, db *mongo.Database) error {
		_, err := db.Collection(collection).InsertOne(ctx, doc)
		return err
	})
}

// report returns the company's analytics: its users, and its projects per
// owner, busiest first.
func report(ctx context.Context, db *mongo.Database) (string, error) {
	users, err := db.Collection("users").CountDocuments(ctx, bson.D{})
	if err != nil {
		return "", err
	}
	cur, err := db.Collection("projects").Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$owner"}, {Key: "projects", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$sort", Value: bson.D{{Key: "projects", Value: -1}, {Key: "_id", Value: 1}}}},
	})
	if err != nil {
		return "", err
	}
	var owners []struct {
		Owner    string `bson:"_id"`
		Projects int    `bson:"projects"`
	}
	if err := cur.All(ctx, &owners); err != nil {
		return "", err
	}
	total := 0
	perOwner := make([]string, len(owners))
	for i, o := range owners {
		total += o.Projects
		perOwner[i] = fmt.Sprintf("%s=%d", o.Owner, o.Projects)
	}
	return fmt.Sprintf("users=%d projects=%d (%s)", users, total, strings.Join(perOwner, " ")), nil
}

// reset drops the companies' databases and the catalog, so that a shared
// MONGODB_URI server gives the same output on every run.
func reset(ctx context.Context, registry *mongo.Client) error {
	if err := registry.Database("platform").Collection("tenants").Drop(ctx); err != nil {
		return err
	}
	for _, id := range []string{"acme", "globex", "initech", "umbrella", "soylent"} {
		if err := registry.Database("user_" + id + "_db").Drop(ctx); err != nil {
			return err
		}
	}
	return nil
}
