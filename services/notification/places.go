package notification

import (
	"context"
	"strings"
	"sync"

	"github.com/beepchat/beep/authz"
)

// place is where a conversation is: its server, and for a thread its
// channel (both "" for a DM). These never change, so they are cached.
type place struct {
	server  string // server id
	channel string // "channel:<id>" of a thread
}

type placeCache struct {
	authz  *authz.Client
	mu     sync.Mutex
	places map[string]place
}

func newPlaceCache(c *authz.Client) *placeCache {
	return &placeCache{authz: c, places: map[string]place{}}
}

// of is where conv is, read from the graph fully consistent (the channel
// may have been made a moment ago).
func (c *placeCache) of(ctx context.Context, conv string) (place, error) {
	c.mu.Lock()
	p, ok := c.places[conv]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	typ, id, _ := strings.Cut(conv, ":")
	switch authz.ObjectType(typ) {
	case authz.TypeDmChannel:
		return place{}, nil
	case authz.TypeThread:
		parent, err := c.subject(ctx, authz.TypeThread, id, "parent")
		if err != nil || parent == "" {
			return place{}, err
		}
		p.channel = string(authz.TypeChannel) + ":" + parent
		if p.server, err = c.subject(ctx, authz.TypeChannel, parent, "server"); err != nil {
			return place{}, err
		}
	case authz.TypeChannel:
		var err error
		if p.server, err = c.subject(ctx, authz.TypeChannel, id, "server"); err != nil {
			return place{}, err
		}
	}
	if p.server != "" {
		c.mu.Lock()
		c.places[conv] = p
		c.mu.Unlock()
	}
	return p, nil
}

func (c *placeCache) subject(ctx context.Context, typ authz.ObjectType, id, relation string) (string, error) {
	for r, err := range c.authz.ReadRelationships(ctx, authz.Filter{ResourceType: typ, ResourceID: id, Relation: relation}, authz.FullyConsistent()) {
		if err != nil {
			return "", err
		}
		return r.Subject.Object.ID, nil
	}
	return "", nil
}
