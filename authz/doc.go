// Package authz is Beep's only door to SpiceDB, the authorization graph every
// request is checked against.
//
// Names come from the schema: schema_gen.go is generated from schema/beep.zed
// and gives a typed [Permission] or [Relation] for every name in it, so no
// service writes a permission as a string.
//
// A [Client] talks to SpiceDB over gRPC: to the in-process server started by
// package inprocess (the embedded default and the tests), or to a remote
// SpiceDB (see [Dial]). Both run the same code path.
//
// Every write returns the [ZedToken] it was written at. Passing that token to a
// later check with [AtLeastAsFresh] guarantees the check sees the write, so a
// revoked permission is never seen as still granted (the "new enemy" problem).
//
// Authorization fails closed: a check that times out or errors returns an
// error and Decision.Allowed false, never an allow.
package authz
