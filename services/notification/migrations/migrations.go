// Package migrations holds the notification service's versioned PostgreSQL
// migrations.
package migrations

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/internal/migrate"
)

//go:embed *.sql
var files embed.FS

// Up applies every migration not yet applied.
func Up(ctx context.Context, pool *pgxpool.Pool) error {
	return migrate.Up(ctx, pool, files, "notification_migrations")
}
