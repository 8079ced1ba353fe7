// Package mongotest gives integration tests a real MongoDB-compatible server.
//
// [Start] (or the test helpers [New] and [URI]) picks a backend from the
// environment:
//
//   - MONGODB_URI set: that server is used as is; nothing is started or
//     stopped. [Server.Backend] reports "uri".
//   - MONGOTENANT_TEST_BACKEND=docker: a MongoDB container is started with
//     testcontainers-go (image from MONGOTENANT_TEST_MONGODB_IMAGE, default
//     "mongo:8") and terminated on [Server.Close]. Backend "docker".
//   - otherwise (unset or "embedded"): an embedded FerretDB with its SQLite
//     handler is started in-process on 127.0.0.1 and a fresh temporary data
//     directory. Backend "embedded". No external process or service is needed.
//
// The embedded server logs nothing unless MONGOTENANT_TEST_LOG is set to
// "debug", "info", "warn" or "error" (any other value means "debug"), in which
// case its logs at that level and above go to standard error; any value also
// enables testcontainers-go's logging.
//
// FerretDB implements a subset of MongoDB: tests that need transactions,
// change streams or other unsupported features should check
// [Server.Backend] and skip, or run with a real MongoDB. The docker backend
// runs a standalone mongod (no replica set), so it has no transactions either.
//
// Once a server is closed, none of its goroutines remain, so packages using
// go.uber.org/goleak need no extra options.
package mongotest
