package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
)

// TestDecisionCache: while CacheDecisions runs, a check at MinimizeLatency
// is answered from the cache the second time; a revocation the Watch
// reports empties it, and the next answer is asked fresh enough to see
// the revocation; checks with a ZedToken always reach SpiceDB; once the
// cache stops, nothing is answered from it.
func TestDecisionCache(t *testing.T) {
	c := startSpiceDB(t)
	at := guild(t, c, "s1")
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.CacheDecisions(ctx, time.Minute) }()
	view := check("bob", authz.Channel.ViewChannel, "s1_general")
	// Until the cache runs, nothing hits; the first answers fill it.
	deadline := time.Now().Add(10 * time.Second)
	for c.DecisionCacheStats().Hits == 0 {
		d, err := c.Check(t.Context(), view, authz.AtLeastAsFresh(at))
		if err != nil || !d.Allowed {
			t.Fatalf("bob views #general at the guild's token: %+v %v", d, err)
		}
		if d, err = c.Check(t.Context(), view, authz.MinimizeLatency()); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no check was answered from the cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := c.DecisionCacheStats()
	if d, err := c.Check(t.Context(), view, authz.MinimizeLatency()); err != nil || !d.Allowed {
		t.Fatalf("cached: %+v %v", d, err)
	}
	if got := c.DecisionCacheStats(); got.Hits != before.Hits+1 || got.Misses != before.Misses {
		t.Fatalf("a repeated check did not hit: %+v then %+v", before, got)
	}
	// Checks with a token are never cached.
	if _, err := c.Check(t.Context(), view, authz.AtLeastAsFresh(at)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(t.Context(), view, authz.FullyConsistent()); err != nil {
		t.Fatal(err)
	}
	if got := c.DecisionCacheStats(); got.Hits != before.Hits+1 || got.Misses != before.Misses {
		t.Fatalf("checks with a consistency went through the cache: %+v", got)
	}

	// bob leaves: once the Watch reported it, bob no longer views #general,
	// without a token.
	changes := c.DecisionCacheStats().Changes
	if _, err := c.Write(t.Context(), []authz.Update{authz.Delete(authz.Relationship{Relation: authz.Server.Member, ResourceID: "s1", Subject: authz.UserSubject("bob")})}); err != nil {
		t.Fatal(err)
	}
	for c.DecisionCacheStats().Changes == changes {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("the Watch did not report bob's leaving")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d, err := c.Check(t.Context(), view, authz.MinimizeLatency()); err != nil || d.Allowed {
		t.Fatalf("after the Watch reported bob's leaving, he still views #general: %+v %v", d, err)
	}

	stop()
	<-done
	hits := c.DecisionCacheStats().Hits
	for range 3 {
		if _, err := c.Check(t.Context(), view, authz.MinimizeLatency()); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.DecisionCacheStats().Hits; got != 0 && got != hits {
		t.Fatalf("hits after the cache stopped: %d then %d", hits, got)
	}
}
