package authz_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
)

// startSpiceDB runs an in-process SpiceDB on the memory engine with the Beep schema.
func startSpiceDB(t *testing.T) *authz.Client {
	t.Helper()
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing SpiceDB: %v", err)
		}
	})
	return srv.Client()
}

// guild writes a small server: owner ann, members bob and carl, @everyone
// with view/send/history, a Moderator role held by bob, and channel general.
// It returns the token of the write.
func guild(t *testing.T, c *authz.Client, id string) authz.ZedToken {
	t.Helper()
	everyone, mod, general := id+"_everyone", id+"_mod", id+"_general"
	rels := []authz.Relationship{
		{Relation: authz.Server.Owner, ResourceID: id, Subject: authz.UserSubject("ann")},
		{Relation: authz.Server.Member, ResourceID: id, Subject: authz.UserSubject("ann")},
		{Relation: authz.Server.Member, ResourceID: id, Subject: authz.UserSubject("bob")},
		{Relation: authz.Server.Member, ResourceID: id, Subject: authz.UserSubject("carl")},
		{Relation: authz.Role.Server, ResourceID: mod, Subject: authz.TypeServer.Object(id).Subject()},
		{Relation: authz.Role.Member, ResourceID: mod, Subject: authz.UserSubject("bob")},
		{Relation: authz.Channel.Server, ResourceID: general, Subject: authz.TypeServer.Object(id).Subject()},
		{Relation: authz.Channel.OverwritesFrom, ResourceID: general, Subject: authz.TypeChannel.Object(general).Subject()},
	}
	rels = append(rels, authz.EveryoneRole(id, everyone)...)
	rels = append(rels, authz.RoleGrants(id, everyone, authz.FlagsOf(authz.FlagViewChannel, authz.FlagSendMessages, authz.FlagReadMessageHistory))...)
	rels = append(rels, authz.RoleGrants(id, mod, authz.FlagsOf(authz.FlagManageMessages, authz.FlagKickMembers))...)
	var updates []authz.Update
	for _, r := range rels {
		updates = append(updates, authz.Touch(r))
	}
	token, err := c.Write(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	if token == "" {
		t.Fatal("write returned no ZedToken")
	}
	return token
}

func check(user string, p authz.Permission, id string) authz.Check {
	return authz.Check{Subject: authz.UserSubject(user), Permission: p, ResourceID: id}
}

func TestCheckAndRequire(t *testing.T) {
	c := startSpiceDB(t)
	at := guild(t, c, "s1")
	fresh := authz.AtLeastAsFresh(at)

	tests := []struct {
		name  string
		check authz.Check
		want  bool
	}{
		{"member sends in general", check("bob", authz.Channel.SendMessages, "s1_general"), true},
		{"stranger cannot view", check("zoe", authz.Channel.ViewChannel, "s1_general"), false},
		{"mod role manages messages", check("bob", authz.Channel.ManageMessages, "s1_general"), true},
		{"plain member cannot manage messages", check("carl", authz.Channel.ManageMessages, "s1_general"), false},
		{"owner holds administrator", check("ann", authz.Server.Administrator, "s1"), true},
		{"member is not administrator", check("bob", authz.Server.Administrator, "s1"), false},
		{"mod kicks", check("bob", authz.Server.KickMembers, "s1"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.Check(t.Context(), tt.check, fresh)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tt.want {
				t.Errorf("Allowed = %v, want %v", d.Allowed, tt.want)
			}
			if d.CheckedAt == "" {
				t.Error("decision carries no revision")
			}
			err = c.Require(t.Context(), tt.check, fresh)
			if tt.want && err != nil {
				t.Errorf("Require: %v", err)
			}
			if !tt.want {
				var denied *authz.DeniedError
				if !errors.As(err, &denied) || !errors.Is(err, authz.ErrDenied) {
					t.Fatalf("Require = %v, want a DeniedError", err)
				}
				if denied.Permission != tt.check.Permission || denied.ResourceID != tt.check.ResourceID {
					t.Errorf("DeniedError names %v on %s", denied.Permission, denied.ResourceID)
				}
			}
		})
	}
}

// TestNewEnemy is Zanzibar's "new enemy" problem: once a permission is
// revoked, a check made with the revocation's ZedToken must never see the
// old grant, even though an older snapshot still holds it.
func TestNewEnemy(t *testing.T) {
	c := startSpiceDB(t)
	guild(t, c, "s1")
	// #staff: @everyone denied view, Moderator allowed.
	staff := "s1_staff"
	rels := []authz.Relationship{
		{Relation: authz.Channel.Server, ResourceID: staff, Subject: authz.TypeServer.Object("s1").Subject()},
		{Relation: authz.Channel.OverwritesFrom, ResourceID: staff, Subject: authz.TypeChannel.Object(staff).Subject()},
	}
	everyoneDeny, err := authz.Overwrite(authz.TypeChannel.Object(staff), authz.EveryoneTarget(), 0, authz.FlagsOf(authz.FlagViewChannel))
	if err != nil {
		t.Fatal(err)
	}
	modAllow, err := authz.Overwrite(authz.TypeChannel.Object(staff), authz.RoleTarget("s1_mod"), authz.FlagsOf(authz.FlagViewChannel), 0)
	if err != nil {
		t.Fatal(err)
	}
	var updates []authz.Update
	for _, r := range append(append(rels, everyoneDeny...), modAllow...) {
		updates = append(updates, authz.Touch(r))
	}
	granted, err := c.Write(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	bobViews := check("bob", authz.Channel.ViewChannel, staff)
	if d, err := c.Check(t.Context(), bobViews, authz.AtLeastAsFresh(granted)); err != nil || !d.Allowed {
		t.Fatalf("bob, a moderator, should see #staff: %+v %v", d, err)
	}

	// The owner takes the Moderator role away from bob.
	revoked, err := c.Write(t.Context(), []authz.Update{authz.Delete(authz.Relationship{
		Relation: authz.Role.Member, ResourceID: "s1_mod", Subject: authz.UserSubject("bob"),
	})})
	if err != nil {
		t.Fatal(err)
	}
	// The old snapshot still has the grant: the revision matters...
	if d, err := c.Check(t.Context(), bobViews, authz.AtExactSnapshot(granted)); err != nil || !d.Allowed {
		t.Fatalf("at the grant's snapshot bob should still see #staff: %+v %v", d, err)
	}
	// ...and a check at least as fresh as the revocation never sees it.
	for range 20 {
		d, err := c.Check(t.Context(), bobViews, authz.AtLeastAsFresh(revoked))
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			t.Fatal("bob sees #staff after the revocation: new-enemy problem")
		}
	}
}

func TestCheckBulkMatchesSingleChecks(t *testing.T) {
	c := startSpiceDB(t)
	at := authz.AtLeastAsFresh(guild(t, c, "s1"))
	var checks []authz.Check
	for _, user := range []string{"ann", "bob", "carl", "zoe"} {
		for _, f := range authz.AllFlags().List() {
			if p, ok := f.ChannelPermission(); ok {
				checks = append(checks, check(user, p, "s1_general"))
			}
			checks = append(checks, check(user, f.ServerPermission(), "s1"))
		}
	}
	bulk, err := c.CheckBulk(t.Context(), checks, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(bulk) != len(checks) {
		t.Fatalf("%d decisions for %d checks", len(bulk), len(checks))
	}
	allowed := 0
	for i, ch := range checks {
		single, err := c.Check(t.Context(), ch, at)
		if err != nil {
			t.Fatal(err)
		}
		if single.Allowed != bulk[i].Allowed {
			t.Errorf("%s#%s@%s: bulk %v, single %v", ch.Permission, ch.ResourceID, ch.Subject, bulk[i].Allowed, single.Allowed)
		}
		if single.Allowed {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(checks) {
		t.Fatalf("degenerate data: %d of %d allowed", allowed, len(checks))
	}
}

func TestChannelFlags(t *testing.T) {
	c := startSpiceDB(t)
	at := authz.AtLeastAsFresh(guild(t, c, "s1"))
	got, err := c.ChannelFlags(t.Context(), authz.UserSubject("carl"), "s1_general", at)
	if err != nil {
		t.Fatal(err)
	}
	want := authz.FlagsOf(authz.FlagViewChannel, authz.FlagSendMessages, authz.FlagReadMessageHistory)
	if got != want {
		t.Errorf("carl's flags in general = %s, want %s", got, want)
	}
	owner, err := c.ChannelFlags(t.Context(), authz.UserSubject("ann"), "s1_general", at)
	if err != nil {
		t.Fatal(err)
	}
	var overwritable authz.Flags
	for _, f := range authz.AllFlags().List() {
		if f.Overwritable() {
			overwritable |= authz.FlagsOf(f)
		}
	}
	if owner != overwritable {
		t.Errorf("owner's flags = %s, want every channel flag", owner)
	}
}

func TestLookupResourcesPages(t *testing.T) {
	c := startSpiceDB(t)
	guild(t, c, "s1")
	var updates []authz.Update
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("s1_c%02d", i)
		want = append(want, id)
		updates = append(updates,
			authz.Touch(authz.Relationship{Relation: authz.Channel.Server, ResourceID: id, Subject: authz.TypeServer.Object("s1").Subject()}),
			authz.Touch(authz.Relationship{Relation: authz.Channel.OverwritesFrom, ResourceID: id, Subject: authz.TypeChannel.Object(id).Subject()}),
		)
	}
	at, err := c.Write(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "s1_general")

	page := authz.Page{Size: 10, Consistency: authz.AtLeastAsFresh(at)}
	first, next, err := c.LookupResourcesPage(t.Context(), authz.Channel.ViewChannel, authz.UserSubject("carl"), page)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 10 || next == "" {
		t.Fatalf("first page: %d results, next %q", len(first), next)
	}

	var got []string
	for f, err := range c.LookupResources(t.Context(), authz.Channel.ViewChannel, authz.UserSubject("carl"), page) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("lookup = %v\nwant %v", got, want)
	}

	none, _, err := c.LookupResourcesPage(t.Context(), authz.Channel.ViewChannel, authz.UserSubject("zoe"), page)
	if err != nil || len(none) != 0 {
		t.Errorf("stranger sees %v (%v)", none, err)
	}
}

func TestLookupSubjects(t *testing.T) {
	c := startSpiceDB(t)
	at := authz.AtLeastAsFresh(guild(t, c, "s1"))
	got, err := c.LookupSubjects(t.Context(), authz.Channel.ManageMessages, "s1_general", authz.TypeUser, at)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range got.Found {
		ids = append(ids, f.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"ann", "bob"}) || got.Everyone {
		t.Errorf("manage_messages in general: %v (everyone %v), want [ann bob]", ids, got.Everyone)
	}
}

func TestWritePreconditions(t *testing.T) {
	c := startSpiceDB(t)
	guild(t, c, "s1")
	ban := authz.Relationship{Relation: authz.Server.Banned, ResourceID: "s1", Subject: authz.UserSubject("carl")}
	carlIsMember := authz.Filter{ResourceType: authz.TypeServer, ResourceID: "s1", Relation: authz.Server.Member.Name,
		Subject: &authz.SubjectFilter{Type: authz.TypeUser, ID: "carl"}}

	// Banning carl while he is still a member is refused: nothing is written.
	_, err := c.Write(t.Context(), []authz.Update{authz.Touch(ban)}, authz.MustNotMatch(carlIsMember))
	if !errors.Is(err, authz.ErrPreconditionFailed) {
		t.Fatalf("write = %v, want ErrPreconditionFailed", err)
	}
	for r, err := range c.ReadRelationships(t.Context(), authz.Filter{ResourceType: authz.TypeServer, ResourceID: "s1", Relation: authz.Server.Banned.Name}, authz.FullyConsistent()) {
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("a refused write left %s", r)
	}

	// Removing membership and banning in one atomic write succeeds.
	at, err := c.Write(t.Context(), []authz.Update{
		authz.Delete(authz.Relationship{Relation: authz.Server.Member, ResourceID: "s1", Subject: authz.UserSubject("carl")}),
		authz.Touch(ban),
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Check(t.Context(), check("carl", authz.Channel.ViewChannel, "s1_general"), authz.AtLeastAsFresh(at))
	if err != nil || d.Allowed {
		t.Fatalf("banned carl still views general: %+v %v", d, err)
	}

	// Create fails on an existing relationship.
	_, err = c.Write(t.Context(), []authz.Update{authz.Create(ban)})
	if !errors.Is(err, authz.ErrPreconditionFailed) {
		t.Errorf("create of an existing relationship = %v, want ErrPreconditionFailed", err)
	}

	// DeleteMatching removes every match.
	at, err = c.DeleteMatching(t.Context(), authz.Filter{ResourceType: authz.TypeServer, ResourceID: "s1", Relation: authz.Server.Banned.Name})
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range c.ReadRelationships(t.Context(), authz.Filter{ResourceType: authz.TypeServer, ResourceID: "s1", Relation: authz.Server.Banned.Name}, authz.AtLeastAsFresh(at)) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("DeleteMatching left %s", r)
	}
}

func TestInvalidRequestsAreErrors(t *testing.T) {
	c := startSpiceDB(t)
	_, err := c.Check(t.Context(), authz.Check{Subject: authz.UserSubject("a"), Permission: authz.Permission{ResourceType: "channel", Name: "fly"}, ResourceID: "c"}, authz.MinimizeLatency())
	if !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("unknown permission: %v, want ErrInvalid", err)
	}
	_, err = c.Write(t.Context(), []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Relation{ResourceType: "server", Name: "owner"}, ResourceID: "s", Subject: authz.TypeChannel.Object("c").Subject()})})
	if !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("subject type the schema forbids: %v, want ErrInvalid", err)
	}
	if _, err := authz.Overwrite(authz.TypeChannel.Object("c"), authz.EveryoneTarget(), authz.FlagsOf(authz.FlagBanMembers), 0); !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("overwriting ban_members: %v, want ErrInvalid", err)
	}
}

// TestFailClosed: when SpiceDB is gone or slow, checks are errors and never allowed.
func TestFailClosed(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText, ClientOptions: []authz.Option{authz.WithTimeout(300 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	ch := check("ann", authz.Server.Administrator, "s1")

	// A caller whose deadline has passed gets an error, not an answer.
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	d, err := c.Check(expired, ch, authz.FullyConsistent())
	if !errors.Is(err, authz.ErrUnavailable) || d.Allowed {
		t.Errorf("expired context: %+v %v, want ErrUnavailable and not allowed", d, err)
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = c.Check(t.Context(), ch, authz.FullyConsistent())
	if !errors.Is(err, authz.ErrUnavailable) || d.Allowed {
		t.Errorf("stopped SpiceDB: %+v %v, want ErrUnavailable and not allowed", d, err)
	}
	if err := c.Require(t.Context(), ch, authz.FullyConsistent()); err == nil || errors.Is(err, authz.ErrDenied) {
		t.Errorf("Require on a stopped SpiceDB = %v, want an unavailability error", err)
	}
	if _, err := c.CheckBulk(t.Context(), []authz.Check{ch, ch}, authz.FullyConsistent()); !errors.Is(err, authz.ErrUnavailable) {
		t.Errorf("CheckBulk on a stopped SpiceDB = %v", err)
	}
}

func TestWatchSeesWrites(t *testing.T) {
	c := startSpiceDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := guild(t, c, "s1")

	changes := make(chan authz.Change, 4)
	go func() {
		for change, err := range c.Watch(ctx, start, authz.TypeRole) {
			if err != nil {
				close(changes)
				return
			}
			changes <- change
		}
	}()
	removal := authz.Relationship{Relation: authz.Role.Member, ResourceID: "s1_mod", Subject: authz.UserSubject("bob")}
	at, err := c.Write(t.Context(), []authz.Update{authz.Delete(removal)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case change, ok := <-changes:
		if !ok {
			t.Fatal("watch ended")
		}
		if len(change.Updates) != 1 || change.Updates[0].Op != authz.OpDelete || change.Updates[0].Relationship.String() != removal.String() {
			t.Fatalf("watch saw %+v", change.Updates)
		}
		if change.At == "" {
			t.Error("change has no revision")
		}
		_ = at
	case <-ctx.Done():
		t.Fatal("no change seen within 20s")
	}
}

func TestTimeoutExpires(t *testing.T) {
	c := startSpiceDB(t)
	guild(t, c, "s1")
	until := time.Now().Add(2 * time.Second)
	at, err := c.Write(t.Context(), []authz.Update{authz.Touch(authz.Timeout("s1", "carl", until))})
	if err != nil {
		t.Fatal(err)
	}
	send := check("carl", authz.Channel.SendMessages, "s1_general")
	view := check("carl", authz.Channel.ViewChannel, "s1_general")
	got, err := c.CheckBulk(t.Context(), []authz.Check{send, view}, authz.AtLeastAsFresh(at))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Allowed || !got[1].Allowed {
		t.Fatalf("timed out: send %v view %v, want false true", got[0].Allowed, got[1].Allowed)
	}
	// On the memory engine the head revision moves only on writes, and
	// SpiceDB caches answers per revision: expiry shows at the next
	// time-based (quantized) revision, within seconds. At least as fresh as
	// the timeout's write: an older quantized revision predates the timeout.
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, err := c.Check(t.Context(), send, authz.AtLeastAsFresh(at))
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			if time.Now().Before(until) {
				t.Fatal("carl could send before his timeout expired")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("carl still cannot send 15s after his timeout expired")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestEnsureSchema(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := srv.Client()
	v1 := "definition user {}\ndefinition doc {\n relation viewer: user\n relation editor: user\n permission view = viewer + editor\n}"
	res, err := c.EnsureSchema(t.Context(), v1)
	if err != nil || !res.Written || res.At == "" {
		t.Fatalf("first write: %+v %v", res, err)
	}
	// Same schema, other formatting: nothing to write.
	res, err = c.EnsureSchema(t.Context(), "definition user {}\n\ndefinition doc {\n    relation viewer: user\n    relation editor: user\n    permission view = viewer + editor\n}\n")
	if err != nil || res.Written {
		t.Fatalf("unchanged schema rewritten: %+v %v", res, err)
	}
	if _, err := c.Write(t.Context(), []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Relation{ResourceType: "doc", Name: "editor"}, ResourceID: "d", Subject: authz.UserSubject("ann")})}); err != nil {
		t.Fatal(err)
	}
	// Dropping a relation still in use is refused, with SpiceDB's reason.
	_, err = c.EnsureSchema(t.Context(), "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}")
	if !errors.Is(err, authz.ErrSchemaBreaking) {
		t.Fatalf("breaking change: %v, want ErrSchemaBreaking", err)
	}
	t.Log(err)
	current, err := c.ReadSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h1, _ := authz.SchemaHash(current); h1 != mustHash(t, v1) {
		t.Errorf("refused change altered the schema:\n%s", current)
	}
	// A compatible change (adding a relation) is written.
	res, err = c.EnsureSchema(t.Context(), v1+"\ndefinition folder {\n relation owner: user\n}")
	if err != nil || !res.Written {
		t.Fatalf("compatible change: %+v %v", res, err)
	}
}

func mustHash(t *testing.T, s string) string {
	h, err := authz.SchemaHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestImport(t *testing.T) {
	c := startSpiceDB(t)
	member := func(i int) authz.Relationship {
		return authz.Relationship{Relation: authz.Server.Member, ResourceID: "s1", Subject: authz.UserSubject(fmt.Sprintf("u%d", i))}
	}
	n, err := c.Import(t.Context(), func(yield func(authz.Relationship) bool) {
		for i := range 2500 {
			if !yield(member(i)) {
				return
			}
		}
	})
	if err != nil || n != 2500 {
		t.Fatalf("import: %d %v", n, err)
	}
	d, err := c.Check(t.Context(), authz.Check{Subject: authz.UserSubject("u2499"), Permission: authz.Server.View, ResourceID: "s1"}, authz.FullyConsistent())
	if err != nil || !d.Allowed {
		t.Fatalf("imported member: %+v %v", d, err)
	}
	// All or nothing: a batch with one existing relationship writes none.
	_, err = c.Import(t.Context(), func(yield func(authz.Relationship) bool) {
		_ = yield(member(5000)) && yield(member(0))
	})
	if err == nil {
		t.Fatal("import of an existing relationship succeeded")
	}
	d, err = c.Check(t.Context(), authz.Check{Subject: authz.UserSubject("u5000"), Permission: authz.Server.View, ResourceID: "s1"}, authz.FullyConsistent())
	if err != nil || d.Allowed {
		t.Fatalf("failed import left u5000: %+v %v", d, err)
	}
}
