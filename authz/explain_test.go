package authz_test

import (
	"os"
	"strings"
	"testing"

	"github.com/beepchat/beep/authz"
)

// workedExample writes the relationships of policies-test's worked example
// (docs/permissions.md) and returns the token of the write.
func workedExample(t *testing.T, c *authz.Client) authz.ZedToken {
	t.Helper()
	data, err := os.ReadFile("../policies-test/discord/05-worked-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	s = s[strings.Index(s, "relationships: |-")+len("relationships: |-") : strings.Index(s, "assertions:")]
	var updates []authz.Update
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		r, err := authz.ParseRelationship(line)
		if err != nil {
			t.Fatal(err)
		}
		updates = append(updates, authz.Touch(r))
	}
	token, err := c.Write(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// find returns the first node, depth first, that matches.
func find(root *authz.ExplainNode, match func(*authz.ExplainNode) bool) *authz.ExplainNode {
	var found *authz.ExplainNode
	root.Walk(func(n *authz.ExplainNode) {
		if found == nil && match(n) {
			found = n
		}
	})
	return found
}

func dump(n *authz.ExplainNode, depth int, b *strings.Builder) {
	b.WriteString(strings.Repeat("  ", depth))
	if n.Kind == authz.ExplainCheck {
		b.WriteString(n.Object() + "#" + n.Relation + " ")
	}
	b.WriteString(n.Expression + " [" + n.Outcome.String() + "] " + n.Reason)
	if n.Cached {
		b.WriteString(" (cached)")
	}
	for _, r := range n.Relationships {
		b.WriteString(" {" + authz.FormatRelationship(r) + "}")
	}
	b.WriteString("\n")
	for _, ch := range n.Children {
		dump(ch, depth+1, b)
	}
}

func treeOf(n *authz.ExplainNode) string {
	var b strings.Builder
	dump(n, 0, &b)
	return b.String()
}

// TestExplain explains the worked example's answers: a grant through a
// role overwrite, a denial by the @everyone overwrite, a denial by a
// member overwrite; and again, once SpiceDB has them in its cache.
func TestExplain(t *testing.T) {
	c := startSpiceDB(t)
	at := workedExample(t, c)
	for round := range 2 {
		// Bob sees #staff: @everyone's deny is overridden by his role's allow.
		ex, err := c.Explain(t.Context(), check("bob", authz.Channel.ViewChannel, "staff"), authz.AtLeastAsFresh(at))
		if err != nil {
			t.Fatal(err)
		}
		tree := treeOf(ex.Root)
		if !ex.Decision.Allowed || ex.Root.Outcome != authz.Holds || ex.Root.Relation != "view_channel" {
			t.Fatalf("round %d: bob views #staff: %+v\n%s", round, ex.Decision, tree)
		}
		role := find(ex.Root, func(n *authz.ExplainNode) bool {
			return n.Kind == authz.ExplainCheck && n.Relation == "role_allow_view_channel" && n.Outcome == authz.Holds
		})
		if role == nil || !strings.Contains(role.Reason, "role:moderator#member") {
			t.Fatalf("round %d: the role overwrite that grants bob #staff is not explained:\n%s", round, tree)
		}
		if !strings.Contains(tree, "granted by role_allow_view_channel") {
			t.Errorf("round %d: the chain does not say the role overwrite granted it:\n%s", round, tree)
		}

		// Dina does not: @everyone's deny removes it.
		ex, err = c.Explain(t.Context(), check("dina", authz.Channel.ViewChannel, "staff"), authz.AtLeastAsFresh(at))
		if err != nil {
			t.Fatal(err)
		}
		tree = treeOf(ex.Root)
		if ex.Decision.Allowed || ex.Root.Outcome != authz.DoesNotHold {
			t.Fatalf("round %d: dina views #staff:\n%s", round, tree)
		}
		deny := find(ex.Root, func(n *authz.ExplainNode) bool {
			return n.Kind == authz.ExplainExclusion && strings.Contains(n.Reason, "removed by everyone_deny_view_channel")
		})
		if deny == nil {
			t.Fatalf("round %d: the @everyone deny is not named:\n%s", round, tree)
		}
		if !strings.Contains(tree, "channel:staff#everyone_deny_view_channel@user:*") {
			t.Errorf("round %d: the relationship of the deny is not shown:\n%s", round, tree)
		}

		// Bob does not send in #staff: his member overwrite denies it.
		ex, err = c.Explain(t.Context(), check("bob", authz.Channel.SendMessages, "staff"), authz.AtLeastAsFresh(at))
		if err != nil {
			t.Fatal(err)
		}
		tree = treeOf(ex.Root)
		if ex.Decision.Allowed || !strings.Contains(tree, "removed by member_deny_send_messages") ||
			!strings.Contains(tree, "channel:staff#member_deny_send_messages@user:bob") {
			t.Fatalf("round %d: bob's member deny is not explained:\n%s", round, tree)
		}
		if round == 1 {
			t.Logf("explained from the cache:\n%s", tree)
		}
	}
}
