// Blog is the reference design's blog platform: every user is a tenant with a
// database of their own for their posts. Four users write at the same time
// through one Manager capped at two clients, so clients are evicted and
// recreated under load while no request fails. Then it pages through a user's
// posts newest first and prints each user's stats and the Manager's.
//
//	go run ./examples/blog
//
// It uses MONGODB_URI if set, and otherwise starts an embedded server.
package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/examples/internal/example"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() { example.Main(run) }

type post struct {
	ID        string    `bson:"_id"` // the slug: unique within its author's database
	Title     string    `bson:"title"`
	Body      string    `bson:"body"`
	Tags      []string  `bson:"tags"`
	CreatedAt time.Time `bson:"created_at"`
	Views     int       `bson:"views"`
}

// authors, how many posts each writes and the tag they mostly write about.
// Post i is read i times.
var authors = []struct {
	name  string
	posts int
	topic string
}{{"alice", 7, "go"}, {"bob", 3, "mongodb"}, {"carol", 5, "ops"}, {"dave", 4, "go"}}

const pageSize = 3

func run(ctx context.Context, w io.Writer, uri string) error {
	// Two clients for four busy users: every request may evict another
	// user's client, even one that is in use. It is disconnected only after
	// its last lease ends, so no request fails.
	m, err := mongotenant.New(uri, mongotenant.WithMaxClients(2), mongotenant.WithPoolSize(2))
	if err != nil {
		return err
	}
	defer m.Close(ctx)

	var wg sync.WaitGroup
	errs := make([]error, len(authors))
	for i, a := range authors {
		wg.Go(func() { errs[i] = write(ctx, m, a.name, a.posts, a.topic) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", authors[i].name, err)
		}
	}

	// Newest first, a page at a time, as a reader scrolls.
	var after *post
	for page := 1; ; page++ {
		var posts []post
		err := m.Do(ctx, "alice", func(ctx context.Context, db *mongo.Database) (err error) {
			posts, err = listPage(ctx, db.Collection("posts"), after, pageSize)
			return err
		})
		if err != nil {
			return err
		}
		if len(posts) == 0 {
			break
		}
		slugs := make([]string, len(posts))
		for i, p := range posts {
			slugs[i] = p.ID
		}
		fmt.Fprintf(w, "alice  page %d: %s\n", page, strings.Join(slugs, " "))
		after = &posts[len(posts)-1]
	}

	for _, a := range authors {
		err := m.Do(ctx, a.name, func(ctx context.Context, db *mongo.Database) error {
			s, err := stats(ctx, db.Collection("posts"))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%-5s  %d posts, %d views, top tag %q (%d posts)\n", a.name, s.posts, s.views, s.topTag, s.topTagPosts)
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
	}

	// How many clients were created, recycled and evicted depends on
	// scheduling; the cap and this identity do not: every client made
	// (connected or recycled) is cached or was evicted.
	s := m.Stats()
	fmt.Fprintf(w, "stats  clients=%d/%d leases=%d\n", s.Clients, s.MaxClients, s.Leases)
	fmt.Fprintf(w, "stats  created+recycled=clients+evicted: %t, evicted(lru)>=2: %t\n",
		s.Created+s.Recycled == uint64(s.Clients)+s.Evicted, s.EvictedLRU >= 2)
	return m.Close(ctx)
}

// write creates the user's posts and reads them. Each step takes its own
// lease, as each would be its own request in a web server; between two of
// them the other users may evict this user's client.
func write(ctx context.Context, m *mongotenant.Manager, user string, n int, topic string) error {
	err := m.Do(ctx, user, func(ctx context.Context, db *mongo.Database) error {
		posts := db.Collection("posts")
		if err := posts.Drop(ctx); err != nil { // start clean on a shared server
			return err
		}
		// The index listPage's sort and range walk.
		_, err := posts.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}})
		return err
	})
	if err != nil {
		return err
	}

	start := time.Date(2025, time.March, 1, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		p := post{
			ID:    fmt.Sprintf("post-%02d", i),
			Title: fmt.Sprintf("%s's post #%d", user, i),
			Body:  "Lorem ipsum.",
			Tags:  []string{topic},
			// Two posts an hour, so pages must break ties on _id.
			CreatedAt: start.Add(time.Duration(i/2) * time.Hour),
		}
		if i%3 == 0 {
			p.Tags = append(p.Tags, "release-notes")
		}
		err := m.Do(ctx, user, func(ctx context.Context, db *mongo.Database) error {
			_, err := db.Collection("posts").InsertOne(ctx, p)
			return err
		})
		if err != nil {
			return err
		}
	}

	for i := 1; i <= n; i++ {
		for range i {
			err := m.Do(ctx, user, func(ctx context.Context, db *mongo.Database) error {
				_, err := view(ctx, db.Collection("posts"), fmt.Sprintf("post-%02d", i))
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// view counts a read of the post and returns it. $inc is applied by the
// server, so concurrent readers never lose a count, and ReturnDocument After
// gives the page the count that includes this read in the same round trip.
func view(ctx context.Context, posts *mongo.Collection, slug string) (post, error) {
	var p post
	err := posts.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: slug}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "views", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&p)
	return p, err
}

// listPage returns up to limit posts older than after (all posts if after
// is nil), newest first. It seeks by key, (created_at, _id) below the last
// post of the previous page, instead of Skip: the index takes it straight to
// the page, where Skip walks every post before it, and a post published
// while the reader scrolls does not shift the next page by one.
func listPage(ctx context.Context, posts *mongo.Collection, after *post, limit int64) ([]post, error) {
	filter := bson.D{}
	if after != nil {
		filter = bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: after.CreatedAt}}}},
			bson.D{{Key: "created_at", Value: after.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.ID}}}},
		}}}
	}
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(limit)
	cur, err := posts.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var page []post
	err = cur.All(ctx, &page) // All closes the cursor before the lease ends
	return page, err
}

type postStats struct {
	posts, views, topTagPosts int
	topTag                    string
}

// stats computes a user's post count, total views and most used tag. Each
// $group has a single accumulator: the embedded test server (FerretDB 1.24)
// fills in only the first of several.
func stats(ctx context.Context, posts *mongo.Collection) (postStats, error) {
	var s postStats
	n, err := posts.CountDocuments(ctx, bson.D{})
	if err != nil {
		return s, err
	}
	s.posts = int(n)

	var total []struct {
		Views int `bson:"views"`
	}
	if err := aggregate(ctx, posts, &total, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "views", Value: bson.D{{Key: "$sum", Value: "$views"}}}}}},
	}); err != nil {
		return s, err
	}
	if len(total) > 0 {
		s.views = total[0].Views
	}

	var top []struct {
		Tag   string `bson:"_id"`
		Posts int    `bson:"posts"`
	}
	if err := aggregate(ctx, posts, &top, mongo.Pipeline{
		{{Key: "$unwind", Value: "$tags"}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$tags"}, {Key: "posts", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$sort", Value: bson.D{{Key: "posts", Value: -1}, {Key: "_id", Value: 1}}}}, // ties by name
		{{Key: "$limit", Value: 1}},
	}); err != nil {
		return s, err
	}
	if len(top) > 0 {
		s.topTag, s.topTagPosts = top[0].Tag, top[0].Posts
	}
	return s, nil
}

func aggregate(ctx context.Context, coll *mongo.Collection, results any, pipeline mongo.Pipeline) error {
	cur, err := coll.Aggregate(ctx, pipeline)
	if err != nil {
		return err
	}
	return cur.All(ctx, results)
}
