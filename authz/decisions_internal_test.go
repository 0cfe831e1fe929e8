package authz

import (
	"strconv"
	"testing"
	"time"
)

// TestDecisionLifetimesSpread: answers kept together expire at instants
// spread between half the time to live and all of it, not all at once
// (a warm-up's answers would otherwise all be asked again in one burst).
func TestDecisionLifetimesSpread(t *testing.T) {
	const ttl = time.Minute
	ds := &decisions{ttl: ttl, on: true, answers: map[decisionKey]cachedDecision{}}
	start := time.Now()
	for i := range 200 {
		c := Check{Subject: UserSubject("u" + strconv.Itoa(i)), Permission: Channel.ViewChannel, ResourceID: "c"}
		ds.keep(c, Decision{Allowed: true}, 0)
	}
	end := time.Now()
	if len(ds.answers) != 200 {
		t.Fatalf("kept %d answers of 200", len(ds.answers))
	}
	first, last := end.Add(ttl), start
	for _, a := range ds.answers {
		if a.expires.Before(start.Add(ttl/2)) || a.expires.After(end.Add(ttl)) {
			t.Fatalf("an answer expires %s after it was kept, want between %s and %s", a.expires.Sub(start), ttl/2, ttl)
		}
		if a.expires.Before(first) {
			first = a.expires
		}
		if a.expires.After(last) {
			last = a.expires
		}
	}
	if spread := last.Sub(first); spread < ttl/4 {
		t.Fatalf("200 answers kept together expire within %s of each other, want them spread over about %s", spread, ttl/2)
	}
}
