// Transactions moves credit between two accounts of one tenant in a
// multi-document transaction, on a session started from the lease's client.
//
//	go run ./examples/transactions
//
// Transactions need a replica set or a sharded cluster. Against a
// standalone server (or the embedded one, which has no transactions) the
// example says so and skips the demonstration. Point MONGODB_URI at a
// replica set to see it run.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/examples/internal/example"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func main() { example.Main(run) }

func run(ctx context.Context, w io.Writer, uri string) error {
	m, err := mongotenant.New(uri)
	if err != nil {
		return err
	}
	defer m.Close(ctx)

	// A transaction runs on one client, so take one lease for all of it:
	// the client cannot be disconnected until the lease is released.
	lease, err := m.Acquire(ctx, "acme")
	if err != nil {
		return err
	}
	defer lease.Release()

	ok, err := supportsTransactions(ctx, lease.Database())
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(w, "skipped: the server is not a replica set or sharded cluster, so it has no transactions")
		return nil
	}

	accounts := lease.Database().Collection("accounts")
	if err := accounts.Drop(ctx); err != nil {
		return err
	}
	if _, err := accounts.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "ops"}, {Key: "credit", Value: 100}},
		bson.D{{Key: "_id", Value: "research"}, {Key: "credit", Value: 0}},
	}); err != nil {
		return err
	}

	session, err := lease.Client().StartSession()
	if err != nil {
		return err
	}
	defer session.EndSession(ctx)
	_, err = session.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		if _, err := accounts.UpdateByID(ctx, "ops", bson.D{{Key: "$inc", Value: bson.D{{Key: "credit", Value: -40}}}}); err != nil {
			return nil, err
		}
		_, err := accounts.UpdateByID(ctx, "research", bson.D{{Key: "$inc", Value: bson.D{{Key: "credit", Value: 40}}}})
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}

	for _, id := range []string{"ops", "research"} {
		var acct struct {
			Credit int `bson:"credit"`
		}
		if err := accounts.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&acct); err != nil {
			return err
		}
		fmt.Fprintf(w, "%-8s credit %d\n", id, acct.Credit)
	}
	return nil
}

// supportsTransactions asks the server what it is: transactions need a
// replica set member (setName) or a mongos (msg "isdbgrid").
func supportsTransactions(ctx context.Context, db *mongo.Database) (bool, error) {
	var hello bson.M
	err := db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello)
	var cmdErr mongo.CommandError
	if errors.As(err, &cmdErr) {
		return false, nil // too old for hello: certainly no transactions we can use
	}
	if err != nil {
		return false, err
	}
	_, replica := hello["setName"]
	return replica || hello["msg"] == "isdbgrid", nil
}
