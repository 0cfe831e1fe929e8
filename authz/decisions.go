package authz

import (
	"context"
	"sync"
	"time"
)

// decisions caches the answers of single checks asked at the lowest
// consistency (MinimizeLatency: a caller with no ZedToken), while
// [Client.CacheDecisions] runs. SpiceDB's Watch empties it at every change
// to the graph, so that no answer outlives a write the Watch has reported,
// and an answer is asked at least as fresh as the newest revision watched.
// An answer cached is therefore fresher than what MinimizeLatency promises
// without the cache (SpiceDB may answer it from a revision seconds old).
// Answers also expire after a time to live: a relationship that expires
// (a timeout's end) changes an answer without a write.
//
// Not cached: checks with caveat context, conditional answers, errors,
// and every check asked with a ZedToken or fully consistent, which always
// reach SpiceDB.
type decisions struct {
	ttl time.Duration

	mu sync.Mutex
	// on while the Watch runs and has caught up.
	on bool
	// watched is the newest revision whose changes were applied.
	watched ZedToken
	// gen grows at every change; an answer asked before one is not kept.
	gen     uint64
	answers map[decisionKey]cachedDecision
	stats   DecisionCacheStats
}

// DecisionCacheStats count what the decision cache did.
type DecisionCacheStats struct {
	// Hits were answered from the cache; Misses asked SpiceDB.
	Hits, Misses uint64
	// Changes are the Watch's reports that emptied it.
	Changes uint64
}

// DecisionCacheStats reports the cache's counts so far (zero when
// CacheDecisions does not run).
func (c *Client) DecisionCacheStats() DecisionCacheStats {
	ds := c.cache.Load()
	if ds == nil {
		return DecisionCacheStats{}
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.stats
}

// maxCachedDecisions bounds the cache: past it, it starts empty again.
const maxCachedDecisions = 200_000

type decisionKey struct {
	subjectType, subjectID, subjectRelation string
	resourceType, permission, resourceID    string
}

type cachedDecision struct {
	d       Decision
	expires time.Time
}

func keyOf(c Check) decisionKey {
	return decisionKey{string(c.Subject.Object.Type), c.Subject.Object.ID, c.Subject.Relation,
		string(c.Permission.ResourceType), c.Permission.Name, c.ResourceID}
}

// lookup returns a cached answer, or the consistency to ask with and the
// generation to keep the answer under (keep is false: do not keep it).
func (ds *decisions) lookup(c Check) (d Decision, hit bool, ask Consistency, gen uint64, keep bool) {
	if c.Context != nil {
		return Decision{}, false, MinimizeLatency(), 0, false
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if !ds.on {
		return Decision{}, false, MinimizeLatency(), 0, false
	}
	if a, ok := ds.answers[keyOf(c)]; ok && time.Now().Before(a.expires) {
		ds.stats.Hits++
		return a.d, true, Consistency{}, 0, false
	}
	ds.stats.Misses++
	return Decision{}, false, AtLeastAsFresh(ds.watched), ds.gen, true
}

// keep caches d if nothing changed since gen.
func (ds *decisions) keep(c Check, d Decision, gen uint64) {
	if d.Conditional {
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if !ds.on || ds.gen != gen {
		return
	}
	if len(ds.answers) >= maxCachedDecisions {
		ds.answers = map[decisionKey]cachedDecision{}
	}
	ds.answers[keyOf(c)] = cachedDecision{d: d, expires: time.Now().Add(ds.ttl)}
}

// changed empties the cache: the graph changed through at (or, with on
// false, the Watch stopped and nothing is cached until it runs again).
func (ds *decisions) changed(at ZedToken, on bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.gen++
	ds.on = on
	if at != "" {
		ds.watched = at
	}
	ds.answers = map[decisionKey]cachedDecision{}
}

// CacheDecisions caches the answers of [Client.Check] at MinimizeLatency
// for ttl each (see decisions), following SpiceDB's Watch, until ctx
// ends; while the Watch is down, nothing is cached and every check reaches
// SpiceDB. A process calls it once, for its client.
func (c *Client) CacheDecisions(ctx context.Context, ttl time.Duration) {
	ds := &decisions{ttl: ttl, answers: map[decisionKey]cachedDecision{}}
	c.cache.Store(ds)
	defer c.cache.Store(nil)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		// The head first, then the changes after it: none is missed.
		if head, err := c.HeadToken(ctx); err == nil {
			ds.changed(head, true)
			for change, err := range c.Watch(ctx, head) {
				if err != nil {
					break
				}
				ds.changed(change.At, true)
				ds.mu.Lock()
				ds.stats.Changes++
				ds.mu.Unlock()
				wait = 100 * time.Millisecond
			}
		}
		ds.changed("", false)
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
