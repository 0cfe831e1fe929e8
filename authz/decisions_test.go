package authz_test

import (
	"context"
	"slices"
	"strings"
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

// TestDecisionCacheFollowsExpiry: an answer that a timeout decides is
// dropped when the timeout expires, though nothing is written (the cache
// keeps answers an hour here): for a timeout that existed when the cache
// started (bob) and for one the Watch reported (carl).
func TestDecisionCacheFollowsExpiry(t *testing.T) {
	c := startSpiceDB(t)
	guild(t, c, "s1")
	until := time.Now().Add(1500 * time.Millisecond)
	if _, err := c.Write(t.Context(), []authz.Update{authz.Touch(authz.Timeout("s1", "bob", until))}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go c.CacheDecisions(ctx, time.Hour)
	// carl's timeout is written once the cache runs (its first hit).
	send := func(user string) authz.Check { return check(user, authz.Channel.SendMessages, "s1_general") }
	for deadline := time.Now().Add(5 * time.Second); c.DecisionCacheStats().Hits == 0; time.Sleep(10 * time.Millisecond) {
		if _, err := c.Check(t.Context(), send("ann"), authz.MinimizeLatency()); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache does not run")
		}
	}
	changes := c.DecisionCacheStats().Changes
	if _, err := c.Write(t.Context(), []authz.Update{authz.Touch(authz.Timeout("s1", "carl", until))}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); c.DecisionCacheStats().Changes == changes; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Watch did not report carl's timeout")
		}
	}
	for _, user := range []string{"bob", "carl"} {
		for range 2 { // asked, then cached
			if d, err := c.Check(t.Context(), send(user), authz.MinimizeLatency()); err != nil || d.Allowed {
				t.Fatalf("%s sends while timed out: %+v %v", user, d, err)
			}
		}
	}
	// SpiceDB itself may answer from a revision before the expiry for its
	// quantization window (5 s); the cache must not keep such an answer.
	time.Sleep(time.Until(until))
	for _, user := range []string{"bob", "carl"} {
		for deadline := until.Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			d, err := c.Check(t.Context(), send(user), authz.MinimizeLatency())
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's timeout expired 15 s ago, yet the cache still refuses", user)
			}
		}
	}
}

// TestExpiringRelationsMatchTheSchema: ExpiringRelations names exactly the
// relations the schema declares "with expiration".
func TestExpiringRelationsMatchTheSchema(t *testing.T) {
	var inSchema []string
	definition := ""
	for _, line := range strings.Split(authz.SchemaText, "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "definition "); ok {
			definition = strings.TrimSuffix(strings.TrimSpace(name), "{")
			definition = strings.TrimSpace(definition)
		}
		if rel, ok := strings.CutPrefix(line, "relation "); ok && strings.Contains(line, "with expiration") {
			name, _, _ := strings.Cut(rel, ":")
			inSchema = append(inSchema, definition+"#"+strings.TrimSpace(name))
		}
	}
	var listed []string
	for _, r := range authz.ExpiringRelations {
		listed = append(listed, string(r.ResourceType)+"#"+r.Name)
	}
	slices.Sort(inSchema)
	slices.Sort(listed)
	if len(inSchema) == 0 || !slices.Equal(inSchema, listed) {
		t.Fatalf("the schema's expiring relations are %v, ExpiringRelations %v", inSchema, listed)
	}
}
