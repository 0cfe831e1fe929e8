package authz

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/generator"
	"github.com/authzed/spicedb/pkg/schemadsl/input"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReadSchema returns the schema SpiceDB holds ("" when it holds none).
func (c *Client) ReadSchema(ctx context.Context) (string, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.schema.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if status.Code(err) == codes.NotFound {
		return "", nil
	}
	if err != nil {
		return "", classify("read schema", err)
	}
	return resp.GetSchemaText(), nil
}

// SchemaResult says what EnsureSchema did.
type SchemaResult struct {
	// Written is false when SpiceDB already held an equivalent schema.
	Written bool
	// At is the revision of the write (empty when nothing was written).
	At ZedToken
}

// EnsureSchema writes schema to SpiceDB unless SpiceDB already holds an
// equivalent one (compared compiled, so formatting does not count). SpiceDB
// refuses a change that would orphan existing relationships (a removed
// relation or type still in use); EnsureSchema then returns an error matching
// ErrSchemaBreaking that carries SpiceDB's reason, and nothing is changed.
func (c *Client) EnsureSchema(ctx context.Context, schema string) (SchemaResult, error) {
	wanted, err := SchemaHash(schema)
	if err != nil {
		return SchemaResult{}, err
	}
	current, err := c.ReadSchema(ctx)
	if err != nil {
		return SchemaResult{}, err
	}
	if current != "" {
		if have, err := SchemaHash(current); err == nil && have == wanted {
			return SchemaResult{}, nil
		}
	}
	at, err := c.WriteSchema(ctx, schema)
	if err != nil {
		return SchemaResult{}, err
	}
	return SchemaResult{Written: true, At: at}, nil
}

// WriteSchema writes schema to SpiceDB and returns the revision of the
// write. SpiceDB refuses a schema that does not compile, or a change that
// would orphan existing relationships; the error then matches
// ErrSchemaBreaking and carries SpiceDB's reason, and nothing is changed.
// Prefer [Client.EnsureSchema], or check a change first with
// [Client.SchemaChanges].
func (c *Client) WriteSchema(ctx context.Context, schema string) (ZedToken, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: schema})
	if err != nil {
		err = classifyWrite("write schema", err)
		if errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrInvalid) {
			return "", fmt.Errorf("%w: SpiceDB keeps the schema it has, because: %v", ErrSchemaBreaking, err)
		}
		return "", err
	}
	return ZedToken(resp.GetWrittenAt().GetToken()), nil
}

// SchemaHash compiles schema and returns a hash of its definitions, equal for
// schemas that differ only in formatting.
func SchemaHash(schema string) (string, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{Source: input.Source("schema"), SchemaString: schema}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return "", fmt.Errorf("%w: schema does not compile: %v", ErrInvalid, err)
	}
	return generator.ComputeSchemaHash(compiled.OrderedDefinitions)
}
