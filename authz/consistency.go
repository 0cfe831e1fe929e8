package authz

import (
	"context"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// Consistency says how fresh the data a read or check uses must be.
// The zero value is [MinimizeLatency].
type Consistency struct {
	mode  consistencyMode
	token ZedToken
}

type consistencyMode int

const (
	minimizeLatency consistencyMode = iota
	atLeastAsFresh
	atExactSnapshot
	fullyConsistent
)

// MinimizeLatency lets SpiceDB answer from any recent revision (it may miss
// writes of the last few seconds). Fine for rendering; not after a revocation.
func MinimizeLatency() Consistency { return Consistency{} }

// AtLeastAsFresh guarantees the answer reflects every write up to token. An
// empty token (a caller that has written nothing) means [MinimizeLatency].
func AtLeastAsFresh(token ZedToken) Consistency {
	if token == "" {
		return MinimizeLatency()
	}
	return Consistency{mode: atLeastAsFresh, token: token}
}

// AtExactSnapshot answers as of exactly the revision of token.
func AtExactSnapshot(token ZedToken) Consistency {
	return Consistency{mode: atExactSnapshot, token: token}
}

// FullyConsistent answers from the newest revision. It costs the most; prefer
// AtLeastAsFresh with the token of the write that matters.
func FullyConsistent() Consistency { return Consistency{mode: fullyConsistent} }

func (c Consistency) proto() *v1.Consistency {
	switch c.mode {
	case atLeastAsFresh:
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: string(c.token)}}}
	case atExactSnapshot:
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: string(c.token)}}}
	case fullyConsistent:
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	default:
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	}
}

// HeadToken is a ZedToken of SpiceDB's newest revision: every write that
// completed before the call is at or before it. It costs one fully
// consistent check, on a platform object that does not exist.
func (c *Client) HeadToken(ctx context.Context) (ZedToken, error) {
	d, err := c.Check(ctx, Check{Subject: UserSubject(headProbe), Permission: Platform.Moderate, ResourceID: headProbe}, FullyConsistent())
	if err != nil {
		return "", err
	}
	return d.CheckedAt, nil
}

// headProbe names the object and subject of that check.
const headProbe = "-head-probe-"
