package inprocess

import (
	"context"
	"sync"

	"github.com/authzed/spicedb/pkg/cmd/server"
	"google.golang.org/grpc"
)

// SpiceDB's memory datastore gives a write transaction its revision before
// the transaction waits for the datastore's write lock. Two writes at once
// can then commit out of revision order, and a read at the first one's
// ZedToken picks a snapshot without it: a caller does not see its own write
// (TestMemoryEngineReadsItsWrites saw 154 of 640). The engine runs one
// write at a time anyway, so taking that turn before SpiceDB does, here,
// costs nothing and makes revision order commit order.

// writeMethods are the gRPC methods of SpiceDB's API that write.
var writeMethods = map[string]bool{
	"/authzed.api.v1.PermissionsService/WriteRelationships":       true,
	"/authzed.api.v1.PermissionsService/DeleteRelationships":      true,
	"/authzed.api.v1.PermissionsService/ImportBulkRelationships":  true,
	"/authzed.api.v1.ExperimentalService/BulkImportRelationships": true,
	"/authzed.api.v1.SchemaService/WriteSchema":                   true,
}

// writeTurns lets one write through at a time.
type writeTurns struct{ mu sync.Mutex }

func (w *writeTurns) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if !writeMethods[info.FullMethod] {
		return next(ctx, req)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return next(ctx, req)
}

func (w *writeTurns) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if !writeMethods[info.FullMethod] {
		return next(srv, ss)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return next(srv, ss)
}

// options install the turns after authentication, so that a caller
// without the key never holds one.
func (w *writeTurns) options() []server.ConfigOption {
	const name = "beep-memory-write-turns"
	return []server.ConfigOption{
		server.WithUnaryMiddlewareModification(server.MiddlewareModification[grpc.UnaryServerInterceptor]{
			DependencyMiddlewareName: server.DefaultMiddlewareGRPCAuth,
			Operation:                server.OperationAppend,
			Middlewares:              []server.ReferenceableMiddleware[grpc.UnaryServerInterceptor]{{Name: name, Middleware: w.unary}},
		}),
		server.WithStreamingMiddlewareModification(server.MiddlewareModification[grpc.StreamServerInterceptor]{
			DependencyMiddlewareName: server.DefaultMiddlewareGRPCAuth,
			Operation:                server.OperationAppend,
			Middlewares:              []server.ReferenceableMiddleware[grpc.StreamServerInterceptor]{{Name: name, Middleware: w.stream}},
		}),
	}
}
