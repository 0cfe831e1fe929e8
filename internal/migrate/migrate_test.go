package migrate_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/internal/migrate"
	"github.com/beepchat/beep/internal/pgtest"
)

func TestUp(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t, "beep_migrate_test"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	v1 := fstest.MapFS{"00001_a.sql": {Data: []byte("CREATE TABLE a (x int);")}}
	// Concurrent instances apply the migration once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- migrate.Up(context.Background(), pool, v1, "m") }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v2 := fstest.MapFS{"00001_a.sql": v1["00001_a.sql"], "00002_b.sql": {Data: []byte("INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);")}}
	if err := migrate.Up(t.Context(), pool, v2, "m"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM a").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows = %d, %v", n, err)
	}
	// A failing migration leaves nothing of itself and is not recorded.
	bad := fstest.MapFS{"00003_c.sql": {Data: []byte("INSERT INTO a VALUES (3); SELECT no_such_column FROM a;")}}
	if err := migrate.Up(t.Context(), pool, bad, "m"); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM a").Scan(&n); err != nil || n != 2 {
		t.Fatalf("failed migration left rows: %d, %v", n, err)
	}
	if err := migrate.Up(t.Context(), pool, fstest.MapFS{"x.sql": {}}, "m"); err == nil {
		t.Error("a badly named migration was accepted")
	}
}
