package inprocess

import (
	"context"
	"fmt"
	"io"

	spicedbcmd "github.com/authzed/spicedb/pkg/cmd"
)

// migrate brings a PostgreSQL datastore to SpiceDB's head migration, as
// `spicedb migrate head` does (the migration code is only reachable through
// that command).
func migrate(ctx context.Context, uri string) error {
	cmd := spicedbcmd.NewMigrateCommand("beep")
	spicedbcmd.RegisterMigrateFlags(cmd)
	// The command's pre-run configures SpiceDB's global logging from root
	// flags this command does not have; Beep configures logging itself.
	cmd.PreRunE = nil
	cmd.SetArgs([]string{"head", "--datastore-engine=postgres", "--datastore-conn-uri=" + uri})
	cmd.SetOut(io.Discard)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	if err := cmd.ExecuteContext(ctx); err != nil {
		return fmt.Errorf("inprocess: migrating the SpiceDB datastore: %w", err)
	}
	return nil
}
