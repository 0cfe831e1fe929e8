package inprocess_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
)

// TestMemoryEngineReadsItsWrites writes from many goroutines at once and
// checks each write at least as fresh as its own ZedToken: every one must
// see itself. SpiceDB's memory datastore gives a write its revision before
// it waits for the write lock, so concurrent writes could commit out of
// revision order and a token's reads miss its own write; Start serializes
// writes on that engine.
func TestMemoryEngineReadsItsWrites(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Engine: inprocess.Memory, Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := srv.Client()
	const writers, rounds = 16, 40
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		missed []string
	)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				server, user := fmt.Sprintf("s%d-%d", w, r), fmt.Sprintf("u%d-%d", w, r)
				at, err := c.Write(t.Context(), owner(server, user))
				if err != nil {
					t.Error(err)
					return
				}
				d, err := c.Check(t.Context(), authz.Check{Subject: authz.UserSubject(user), Permission: authz.Server.View, ResourceID: server}, authz.AtLeastAsFresh(at))
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Allowed {
					mu.Lock()
					missed = append(missed, server)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(missed) > 0 {
		t.Fatalf("%d of %d checks at their own write's token did not see it (%v...)", len(missed), writers*rounds, missed[0])
	}
}
