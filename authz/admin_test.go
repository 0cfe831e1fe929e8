package authz_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
)

func TestRelationshipText(t *testing.T) {
	for _, text := range []string{
		"channel:staff#everyone_deny_view_channel@user:*",
		"role:r1#member@server:s1#member",
		"server:s1#timed_out@user:carl[expiration:2099-01-01T00:00:00Z]",
		`doc:readme#viewer@user:ann[on_tuesday:{"day":"tuesday"}]`,
	} {
		r, err := authz.ParseRelationship(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if got := authz.FormatRelationship(r); got != text {
			t.Errorf("round trip of %s gave %s", text, got)
		}
	}
	r, _ := authz.ParseRelationship("server:s1#timed_out@user:carl[expiration:2099-01-01T00:00:00Z]")
	if !r.ExpiresAt.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) || r.Subject != authz.UserSubject("carl") {
		t.Errorf("parsed %+v", r)
	}
	for _, bad := range []string{"", "channel:staff", "channel:staff#view@", "Channel:x#y@user:z", "server:s#owner@user:ann[expiration:tomorrow]"} {
		if _, err := authz.ParseRelationship(bad); !errors.Is(err, authz.ErrInvalid) {
			t.Errorf("ParseRelationship(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if s, err := authz.ParseSubject("role:r1#member"); err != nil || s != authz.Userset(authz.Role.Member, "r1") {
		t.Errorf("ParseSubject: %v %v", s, err)
	}
	if s, err := authz.ParseSubject("user:*"); err != nil || s != authz.Wildcard(authz.TypeUser) {
		t.Errorf("ParseSubject wildcard: %v %v", s, err)
	}
	for _, bad := range []string{"user", "user:", "user:*#member", "user:a#B"} {
		if _, err := authz.ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
	if _, err := authz.ParseObject("user:*"); err == nil {
		t.Error("ParseObject accepted a wildcard")
	}
}

func TestReadRelationshipsPage(t *testing.T) {
	c := startSpiceDB(t)
	var updates []authz.Update
	for _, u := range []string{"a1", "a2", "a3", "a4", "a5"} {
		updates = append(updates, authz.Touch(authz.Relationship{Relation: authz.Server.Member, ResourceID: "s1", Subject: authz.UserSubject(u)}))
	}
	at, err := c.Write(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	var (
		all    []string
		cursor string
		pages  int
	)
	for {
		page, next, err := c.ReadRelationshipsPage(t.Context(), authz.Filter{ResourceType: authz.TypeServer, ResourceID: "s1"}, authz.AtLeastAsFresh(at), 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page {
			all = append(all, r.Subject.Object.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 5 || pages != 3 {
		t.Fatalf("read %v in %d pages", all, pages)
	}
}

// TestSchemaChanges: SpiceDB's diff, with what is breaking for Beep.
func TestSchemaChanges(t *testing.T) {
	c := startSpiceDB(t)
	ctx := t.Context()
	if _, err := c.Write(ctx, []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Platform.Staff, ResourceID: "beep", Subject: authz.UserSubject("sam")})}); err != nil {
		t.Fatal(err)
	}
	same, err := c.SchemaChanges(ctx, authz.SchemaText)
	if err != nil || !same.Identical || len(same.Changes) != 0 {
		t.Fatalf("the running schema against itself: %+v %v", same, err)
	}

	// Additions, and a changed expression: nothing breaking.
	added := strings.Replace(authz.SchemaText, "permission moderate = admin + staff", "relation auditor: user\n    permission moderate = admin + staff + auditor\n    permission audit = auditor", 1)
	changes, err := c.SchemaChanges(ctx, added)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[authz.SchemaChangeKind]authz.SchemaChange{}
	for _, ch := range changes.Changes {
		kinds[ch.Kind] = ch
	}
	if kinds[authz.RelationAdded].Name != "auditor" || kinds[authz.PermissionAdded].Name != "audit" ||
		kinds[authz.PermissionChanged].After != "admin + staff + auditor" || len(changes.Breaking()) != 0 {
		t.Fatalf("additions: %v", changes.Changes)
	}
	at, err := c.WriteSchema(ctx, added)
	if err != nil || at == "" {
		t.Fatalf("writing the additions: %q %v", at, err)
	}

	// Removing what was added, unused: fine. Removing platform#staff, which
	// Beep uses and a relationship has: breaking, for both reasons.
	withoutStaff := strings.Replace(strings.Replace(added, "relation staff: user\n", "", 1), "admin + staff + auditor", "admin + auditor", 1)
	changes, err = c.SchemaChanges(ctx, withoutStaff)
	if err != nil {
		t.Fatal(err)
	}
	breaking := changes.Breaking()
	if len(breaking) != 1 || breaking[0].Name != "staff" || !strings.Contains(breaking[0].Reason, "this build of Beep uses platform#staff") ||
		!strings.Contains(breaking[0].Reason, "relationships exist under platform#staff") {
		t.Fatalf("removing platform#staff: %v", changes.Changes)
	}
	back, err := c.SchemaChanges(ctx, authz.SchemaText)
	if err != nil || len(back.Breaking()) != 0 || len(back.Changes) != 3 {
		t.Fatalf("removing the unused additions: %v %v", back.Changes, err)
	}
	if _, err := c.WriteSchema(ctx, withoutStaff); !errors.Is(err, authz.ErrSchemaBreaking) {
		t.Fatalf("SpiceDB wrote a schema that orphans relationships: %v", err)
	}
	if _, err := c.SchemaChanges(ctx, "definition user {"); !errors.Is(err, authz.ErrInvalid) {
		t.Fatalf("a schema that does not compile: %v", err)
	}
}

func TestFitRelationships(t *testing.T) {
	ok := []string{"channel:c#everyone_deny_view_channel@user:*", "role:r#member@server:s#member", "role:r#member@user:ann",
		"server:s#timed_out@user:carl[expiration:2099-01-01T00:00:00Z]"}
	bad := map[string]string{
		"nothing:c#xyz@user:a":                        "no definition nothing",
		"channel:c#no_such@user:a":                    "channel has no relation no_such",
		"channel:c#view_channel@user:a":               "is a permission",
		"channel:c#everyone_deny_view_channel@user:a": "allows user:*",
		"role:r#member@server:s":                      "allows user | server#member",
	}
	for _, text := range ok {
		r, _ := authz.ParseRelationship(text)
		if err := authz.FitRelationships(authz.SchemaText, []authz.Relationship{r}); err != nil {
			t.Errorf("%s: %v", text, err)
		}
	}
	for text, want := range bad {
		r, err := authz.ParseRelationship(text)
		if err != nil {
			t.Fatal(err)
		}
		if err := authz.FitRelationships(authz.SchemaText, []authz.Relationship{r}); !errors.Is(err, authz.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", text, err, want)
		}
	}
}
