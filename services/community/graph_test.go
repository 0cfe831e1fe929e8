package community

import (
	"testing"

	"github.com/beepchat/beep/authz"
)

func TestPhases(t *testing.T) {
	member := rel(authz.Server.Member, "s", authz.UserSubject("u"))
	ban := banRelationship([16]byte{}, "u")
	deny, _ := authz.Overwrite(authz.TypeChannel.Object("c"), authz.EveryoneTarget(), 0, authz.FlagsOf(authz.FlagViewChannel))
	allow, _ := authz.Overwrite(authz.TypeChannel.Object("c"), authz.RoleTarget("r"), authz.FlagsOf(authz.FlagViewChannel), 0)
	pointer := rel(authz.Channel.OverwritesFrom, "c", authz.TypeChannel.Object("c").Subject())
	tests := []struct {
		name          string
		d             delta
		narrow, widen int
	}{
		{"grant membership: after the commit", delta{add: []authz.Relationship{member}}, 0, 1},
		{"revoke membership: before the commit", delta{remove: []authz.Relationship{member}}, 1, 0},
		{"ban: before", delta{add: []authz.Relationship{ban}}, 1, 0},
		{"unban: after", delta{remove: []authz.Relationship{ban}}, 0, 1},
		{"add a deny: before", delta{add: deny}, 1, 0},
		{"drop a deny: after", delta{remove: deny}, 0, 1},
		{"add an allow: after", delta{add: allow}, 0, 1},
		{"drop an allow: before", delta{remove: allow}, 1, 0},
		{"move the overwrite pointer: drop before, add after", delta{add: []authz.Relationship{pointer}, remove: []authz.Relationship{pointer}}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			narrow, widen := tt.d.phases()
			if len(narrow) != tt.narrow || len(widen) != tt.widen {
				t.Errorf("narrow %d widen %d, want %d %d", len(narrow), len(widen), tt.narrow, tt.widen)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := rel(authz.Server.Member, "s", authz.UserSubject("a"))
	b := rel(authz.Server.Member, "s", authz.UserSubject("b"))
	c := rel(authz.Server.Member, "s", authz.UserSubject("c"))
	missing, extra := diff([]authz.Relationship{a, b, b}, []authz.Relationship{b, c})
	if len(missing) != 1 || missing[0] != a || len(extra) != 1 || extra[0] != c {
		t.Errorf("missing %v extra %v", missing, extra)
	}
}
