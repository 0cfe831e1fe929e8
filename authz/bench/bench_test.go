package bench

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/internal/pgtest"
)

// shape is DefaultShape, or BEEP_BENCH_SERVERS servers of the same shape.
var shape = func() Shape {
	sh := DefaultShape
	if n, err := strconv.Atoi(os.Getenv("BEEP_BENCH_SERVERS")); err == nil && n > 0 {
		sh.Servers = n
		sh.Users = max(n*20, 1000)
	}
	return sh
}()

// loaded is an in-process SpiceDB holding the data set.
type loaded struct {
	client *authz.Client
	err    error
}

var (
	memoryOnce, postgresOnce sync.Once
	memoryDS, postgresDS     loaded
)

func load(b *testing.B, once *sync.Once, ds *loaded, start func(context.Context) (*authz.Client, error)) *authz.Client {
	once.Do(func() { ds.client, ds.err = start(context.Background()) })
	if ds.err != nil {
		b.Fatal(ds.err)
	}
	return ds.client
}

func startMemory(ctx context.Context) (*authz.Client, error) {
	srv, err := inprocess.Start(ctx, inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		return nil, err
	}
	began := time.Now()
	n, err := importAll(ctx, srv.Client())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "memory: loaded %d relationships in %s\n", n, time.Since(began).Round(time.Second))
	return srv.Client(), nil
}

// marker is written last: a database holding it holds the whole data set.
var marker = authz.Relationship{Relation: authz.Platform.Admin, ResourceID: "bench_dataset_v1", Subject: authz.UserSubject("loader")}

// startPostgres loads the data set into database beep_bench_<servers> once
// and reuses it on later runs (loading takes minutes).
func startPostgres(ctx context.Context) (*authz.Client, error) {
	name := fmt.Sprintf("beep_bench_%d", shape.Servers)
	uri, err := database.Ensure(ctx, pgtest.AdminURL(), name)
	if err != nil {
		return nil, err
	}
	srv, err := inprocess.Start(ctx, inprocess.Config{Engine: inprocess.Postgres, DatastoreURI: uri, Schema: authz.SchemaText})
	if err != nil {
		return nil, err
	}
	c := srv.Client()
	d, err := c.Check(ctx, authz.Check{Subject: marker.Subject, Permission: authz.Platform.ManageSchema, ResourceID: marker.ResourceID}, authz.FullyConsistent())
	if err != nil {
		return nil, err
	}
	if d.Allowed {
		fmt.Fprintf(os.Stderr, "postgres: reusing the data set in %s\n", name)
		return c, nil
	}
	// A partial load (interrupted run) is dropped and done again.
	_ = srv.Close()
	if err := recreate(ctx, name); err != nil {
		return nil, err
	}
	srv, err = inprocess.Start(ctx, inprocess.Config{Engine: inprocess.Postgres, DatastoreURI: uri, Schema: authz.SchemaText})
	if err != nil {
		return nil, err
	}
	c = srv.Client()
	began := time.Now()
	n, err := importAll(ctx, c)
	if err != nil {
		return nil, err
	}
	// Fresh planner statistics, as autovacuum would gather after a while:
	// plans made for an empty table scan millions of rows.
	if err := analyze(ctx, uri); err != nil {
		return nil, err
	}
	if _, err := c.Write(ctx, []authz.Update{authz.Touch(marker)}); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "postgres: loaded %d relationships in %s\n", n, time.Since(began).Round(time.Second))
	return c, nil
}

// importAll loads the data set in batches: one Import stream must finish
// within SpiceDB's streaming API timeout (30s).
func importAll(ctx context.Context, c *authz.Client) (uint64, error) {
	next, stop := iter.Pull(shape.Relationships())
	defer stop()
	var total uint64
	for done := false; !done; {
		n, err := c.Import(ctx, func(yield func(authz.Relationship) bool) {
			for range 200_000 {
				r, ok := next()
				if !ok {
					done = true
					return
				}
				if !yield(r) {
					return
				}
			}
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func analyze(ctx context.Context, uri string) error {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}

func recreate(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

var engines = []struct {
	name string
	get  func(*testing.B) *authz.Client
}{
	{"memory", func(b *testing.B) *authz.Client { return load(b, &memoryOnce, &memoryDS, startMemory) }},
	{"postgres", func(b *testing.B) *authz.Client { return load(b, &postgresOnce, &postgresDS, startPostgres) }},
}

// concurrency is how many requests are in flight at once in the parallel
// benchmarks (per GOMAXPROCS): enough to keep both cores busy.
const concurrency = 8

// measure runs op in parallel and reports its latency percentiles (µs) and
// throughput (ops/s).
func measure(b *testing.B, op func(rng *rand.Rand) error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		seed      atomic.Uint64
	)
	b.SetParallelism(concurrency)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 42))
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			began := time.Now()
			if err := op(rng); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(began))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	b.StopTimer()
	report(b, latencies)
}

func report(b *testing.B, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(len(latencies))/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkCheck: one channel permission check per op, 16 in flight.
func BenchmarkCheck(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			c := e.get(b)
			measure(b, func(rng *rand.Rand) error {
				_, err := c.Check(context.Background(), shape.RandomCheck(rng), authz.MinimizeLatency())
				return err
			})
		})
	}
}

// BenchmarkCheckHot: BenchmarkCheck with traffic on 1% of the servers.
func BenchmarkCheckHot(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			c := e.get(b)
			measure(b, func(rng *rand.Rand) error {
				_, err := c.Check(context.Background(), shape.HotCheck(rng), authz.MinimizeLatency())
				return err
			})
		})
	}
}

// serial runs op one at a time: the latency without queueing.
func serial(b *testing.B, op func(rng *rand.Rand) error) {
	rng := rand.New(rand.NewPCG(7, 42))
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		began := time.Now()
		if err := op(rng); err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(began))
	}
	report(b, latencies)
}

// BenchmarkCheckSerial: one check at a time.
func BenchmarkCheckSerial(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			c := e.get(b)
			serial(b, func(rng *rand.Rand) error {
				_, err := c.Check(context.Background(), shape.RandomCheck(rng), authz.MinimizeLatency())
				return err
			})
		})
	}
}

// BenchmarkCheckBulk100Serial: one CheckBulk of 100 at a time.
func BenchmarkCheckBulk100Serial(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			c := e.get(b)
			serial(b, func(rng *rand.Rand) error {
				_, err := c.CheckBulk(context.Background(), shape.RandomBulk(rng), authz.MinimizeLatency())
				return err
			})
		})
	}
}

// BenchmarkCheckBulk100: one CheckBulk of 100 items (a member's view of a
// server's 20 channels × 5 permissions) per op.
func BenchmarkCheckBulk100(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			c := e.get(b)
			measure(b, func(rng *rand.Rand) error {
				_, err := c.CheckBulk(context.Background(), shape.RandomBulk(rng), authz.MinimizeLatency())
				return err
			})
		})
	}
}
