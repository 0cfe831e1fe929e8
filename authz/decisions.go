package authz

import (
	"container/heap"
	"context"
	"math/rand/v2"
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
//
// A relationship that expires changes answers without a write, so the
// cache also knows when every relationship of an expiring relation
// (ExpiringRelations) expires: it reads them when the Watch starts, learns
// the new ones from the Watch, and empties itself at each of those
// instants. SpiceDB judges expiry at the revision it answers from, and at
// MinimizeLatency that revision may be up to its quantization old: for
// revisionLag after an expiry, answers are asked but not kept, so that a
// refusal decided by an expired timeout is not kept for good. Answers also
// expire after a time to live, a bound on any answer's age (each at random
// between half of it and all of it, so that answers filled together are
// not all asked again at once).
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
	// expiries are the instants relationships expire, soonest first.
	expiries expiryHeap
	// noKeepUntil: answers asked before it may predate an expiry.
	noKeepUntil time.Time
}

// revisionLag bounds how old a revision SpiceDB answers MinimizeLatency
// from: its quantization window (5 s by default) and its allowed staleness
// (10% of it), with room to spare.
const revisionLag = 10 * time.Second

// ExpiringRelations are the relations of the schema whose relationships may
// expire (TestExpiringRelationsMatchTheSchema keeps the list true).
var ExpiringRelations = []Relation{Server.TimedOut, Invite.Usable}

// expiryHeap is a min-heap of instants.
type expiryHeap []time.Time

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *expiryHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// expireLocked empties the cache if a relationship expired since the last
// look, and forgets the instants passed.
func (ds *decisions) expireLocked(now time.Time) {
	expired := false
	for len(ds.expiries) > 0 && !ds.expiries[0].After(now) {
		if until := heap.Pop(&ds.expiries).(time.Time).Add(revisionLag); until.After(ds.noKeepUntil) {
			ds.noKeepUntil = until
		}
		expired = true
	}
	if expired {
		ds.gen++
		ds.answers = map[decisionKey]cachedDecision{}
	}
}

// expiresAt records that a relationship expires at t (one that expired
// less than revisionLag ago still counts).
func (ds *decisions) expiresAt(t time.Time) {
	if t.IsZero() || !t.After(time.Now().Add(-revisionLag)) {
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	heap.Push(&ds.expiries, t)
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
	now := time.Now()
	ds.expireLocked(now)
	if a, ok := ds.answers[keyOf(c)]; ok && now.Before(a.expires) {
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
	now := time.Now()
	ds.expireLocked(now)
	if !ds.on || ds.gen != gen || now.Before(ds.noKeepUntil) {
		return
	}
	if len(ds.answers) >= maxCachedDecisions {
		ds.answers = map[decisionKey]cachedDecision{}
	}
	ds.answers[keyOf(c)] = cachedDecision{d: d, expires: now.Add(ds.lifetime())}
}

// lifetime is how long one answer is kept: between half the time to live
// and all of it, at random, so that answers filled together (a warm-up, a
// burst after a change) are not asked again all at once.
func (ds *decisions) lifetime() time.Duration {
	half := ds.ttl / 2
	return half + rand.N(ds.ttl-half+1)
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
	if !on {
		ds.expiries, ds.noKeepUntil = nil, time.Time{} // read again when the Watch runs again
	}
	ds.answers = map[decisionKey]cachedDecision{}
}

// CacheDecisions caches the answers of [Client.Check] at MinimizeLatency
// (see decisions), each for at most ttl, following SpiceDB's Watch, until
// ctx ends; while the Watch is down, nothing is cached and every check
// reaches SpiceDB. A process calls it once, for its client.
func (c *Client) CacheDecisions(ctx context.Context, ttl time.Duration) {
	ds := &decisions{ttl: ttl, answers: map[decisionKey]cachedDecision{}}
	c.cache.Store(ds)
	defer c.cache.Store(nil)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		// The head first, what expires as of it, then the changes after
		// it: none is missed.
		if head, err := c.HeadToken(ctx); err == nil && c.readExpiries(ctx, ds, head) == nil {
			ds.changed(head, true)
			for change, err := range c.Watch(ctx, head) {
				if err != nil {
					break
				}
				for _, u := range change.Updates {
					if u.Op != OpDelete {
						ds.expiresAt(u.Relationship.ExpiresAt)
					}
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

// readExpiries records when the relationships of the expiring relations
// that exist at revision at expire.
func (c *Client) readExpiries(ctx context.Context, ds *decisions, at ZedToken) error {
	for _, rel := range ExpiringRelations {
		for r, err := range c.ReadRelationships(ctx, Filter{ResourceType: rel.ResourceType, Relation: rel.Name}, AtExactSnapshot(at)) {
			if err != nil {
				return err
			}
			ds.expiresAt(r.ExpiresAt)
		}
	}
	return nil
}
