// Package integration tests the mongotenant Manager against a real server:
// the embedded FerretDB by default, or MONGODB_URI, or a MongoDB container
// (see package mongotest). It lives in its own module so that importers of
// mongotenant never download the server.
package integration
