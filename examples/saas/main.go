// SaaS is the reference design's SaaS platform: every company is a tenant on
// a billing tier that sizes its connection pool. A company is onboarded (its
// indexes created) before its first request, e-mail addresses are unique
// within a company but not across companies, and each company gets its own
// analytics.
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
	"sync/atomic"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/examples/internal/example"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() { example.Main(run) }

// plans is the billing table: company → tier. A real service would look the
// company up in its own database.
var plans = map[string]string{
	"acme":     "enterprise",
	"globex":   "premium",
	"initech":  "basic",
	"umbrella": "free",
}

var errNoPlan = errors.New("no billing plan")

type user struct {
	Name  string `bson:"name"`
	Email string `bson:"email"`
}

type project struct {
	Name  string `bson:"name"`
	Owner string `bson:"owner"` // the owner's e-mail
}

// companies in the order they sign up.
var companies = []struct {
	id       string
	users    []user
	projects []project
}{
	{"acme",
		[]user{{"Alice", "alice@example.com"}, {"Bob", "bob@example.com"}, {"Carol", "carol@example.com"}},
		[]project{{"rockets", "alice@example.com"}, {"anvils", "alice@example.com"}, {"magnets", "bob@example.com"}, {"springs", "carol@example.com"}}},
	{"globex",
		[]user{{"Hank", "hank@example.com"}},
		[]project{{"hammocks", "hank@example.com"}, {"doomsday", "hank@example.com"}}},
	{"initech",
		[]user{{"Peter", "peter@example.com"}, {"Michael", "michael@example.com"}, {"Samir", "samir@example.com"}},
		[]project{{"tps-reports", "peter@example.com"}, {"y2k", "samir@example.com"}, {"jump-to-conclusions", "samir@example.com"}}},
	{"umbrella",
		[]user{{"Jill", "jill@example.com"}},
		[]project{{"hive", "jill@example.com"}}},
}

func run(ctx context.Context, w io.Writer, uri string) error {
	if err := reset(ctx, uri); err != nil {
		return err
	}

	var onboarded atomic.Int32
	m, err := mongotenant.New(uri,
		// Each company's client gets its tier's pool: free 3, basic 5,
		// premium 10, enterprise 20.
		mongotenant.WithTiers(func(ctx context.Context, company string) (string, error) {
			tier, ok := plans[company]
			if !ok {
				return "", fmt.Errorf("%s: %w", company, errNoPlan)
			}
			return tier, nil
		}, nil),
		// Runs before a company's first lease, once while the Manager holds
		// the company, even when its first requests come in together: no
		// request sees a collection without its indexes. It runs again for a
		// company evicted while idle, so it is idempotent.
		mongotenant.WithInit(func(ctx context.Context, company string, db *mongo.Database) error {
			if err := onboard(ctx, db); err != nil {
				return err
			}
			onboarded.Add(1)
			fmt.Fprintf(w, "%-8s  onboarded on the %s plan\n", company, plans[company])
			return nil
		}),
	)
	if err != nil {
		return err
	}
	defer m.Close(ctx)

	requests := 0
	for _, c := range companies {
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
	fmt.Fprintf(w, "onboarding ran %d times for %d companies in %d requests\n", onboarded.Load(), len(companies), requests)

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

	// A company missing from the billing table gets no client at all: the
	// tier lookup's error comes back from the request.
	err = insert(ctx, m, "hooli", "users", user{"Gavin", "gavin@example.com"})
	if !errors.Is(err, errNoPlan) {
		return fmt.Errorf("hooli: got %v, want %v", err, errNoPlan)
	}
	fmt.Fprintf(w, "hooli     refused: %v\n", errNoPlan)

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

// onboard creates a new company's collections' indexes. Creating an index
// that exists is a no-op, so it is safe to run again in every process.
func onboard(ctx context.Context, db *mongo.Database) error {
	_, err := db.Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "email", Value: 1}},
		Options: options.Index().SetUnique(true),
	})
	if err != nil {
		return err
	}
	_, err = db.Collection("projects").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "owner", Value: 1}},
	})
	return err
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

// reset drops the companies' databases, so that a shared MONGODB_URI server
// gives the same output on every run. It uses a Manager without the
// onboarding hook, which would otherwise create the indexes first.
func reset(ctx context.Context, uri string) error {
	m, err := mongotenant.New(uri)
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	for _, c := range companies {
		if err := m.Do(ctx, c.id, func(ctx context.Context, db *mongo.Database) error { return db.Drop(ctx) }); err != nil {
			return err
		}
	}
	return m.Close(ctx)
}
