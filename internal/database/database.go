// Package database prepares the PostgreSQL databases Beep's components own.
package database

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Ensure makes sure database name exists on the server of serverURL (a URL
// of any database on it, used to connect) and returns the URL of name.
func Ensure(ctx context.Context, serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("database: %q is not a postgres:// URL", serverURL)
	}
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", fmt.Errorf("database: connecting to PostgreSQL at %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("database: looking for %s: %w", name, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		var pgErr *pgconn.PgError
		// Another instance may have created it since the look-up.
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") {
			return "", fmt.Errorf("database: creating %s: %w", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}
