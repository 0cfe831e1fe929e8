package authz_test

import (
	"errors"
	"testing"

	"github.com/beepchat/beep/authz"
)

func TestRankOutranks(t *testing.T) {
	owner := authz.Rank{Owner: true, Top: 0}
	admin := authz.Rank{Top: 10}
	mod := authz.Rank{Top: 5}
	otherMod := authz.Rank{Top: 5}
	member := authz.Rank{}
	tests := []struct {
		name string
		a, b authz.Rank
		want bool
	}{
		{"owner over admin", owner, admin, true},
		{"owner over member", owner, member, true},
		{"admin over owner", admin, owner, false},
		{"owner over owner", owner, owner, false},
		{"higher over lower", admin, mod, true},
		{"lower over higher", mod, admin, false},
		{"equal ranks", mod, otherMod, false},
		{"member over member", member, member, false},
		{"mod over member", mod, member, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Outranks(tt.b); got != tt.want {
				t.Errorf("Outranks = %v, want %v", got, tt.want)
			}
			err := tt.a.RequireOutranks(tt.b)
			if (err == nil) != tt.want {
				t.Errorf("RequireOutranks = %v", err)
			}
			if err != nil && !errors.Is(err, authz.ErrDenied) {
				t.Errorf("hierarchy error does not match ErrDenied: %v", err)
			}
		})
	}
}

func TestRankOutranksRole(t *testing.T) {
	tests := []struct {
		name     string
		actor    authz.Rank
		position int
		want     bool
	}{
		{"owner edits the top role", authz.Rank{Owner: true}, 99, true},
		{"role below", authz.Rank{Top: 5}, 4, true},
		{"own highest role", authz.Rank{Top: 5}, 5, false},
		{"role above", authz.Rank{Top: 5}, 6, false},
		{"@everyone by a member with a role", authz.Rank{Top: 1}, 0, true},
		{"@everyone by a member without roles", authz.Rank{Top: 0}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.actor.OutranksRole(tt.position); got != tt.want {
				t.Errorf("OutranksRole(%d) = %v, want %v", tt.position, got, tt.want)
			}
			if err := tt.actor.RequireOutranksRole(tt.position); (err == nil) != tt.want {
				t.Errorf("RequireOutranksRole = %v", err)
			}
		})
	}
}

func TestRequireGrantable(t *testing.T) {
	view, send, ban := authz.FlagsOf(authz.FlagViewChannel), authz.FlagsOf(authz.FlagSendMessages), authz.FlagsOf(authz.FlagBanMembers)
	tests := []struct {
		name            string
		held, requested authz.Flags
		want            bool
	}{
		{"subset", view.With(send), view, true},
		{"equal", view.With(send), view.With(send), true},
		{"nothing requested", 0, 0, true},
		{"one missing", view, view.With(ban), false},
		{"administrator grants anything", authz.FlagsOf(authz.FlagAdministrator), authz.AllFlags(), true},
		{"manage_roles alone cannot grant administrator", authz.FlagsOf(authz.FlagManageRoles), authz.FlagsOf(authz.FlagAdministrator), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authz.RequireGrantable(tt.held, tt.requested)
			if (err == nil) != tt.want {
				t.Errorf("RequireGrantable(%s, %s) = %v, want ok=%v", tt.held, tt.requested, err, tt.want)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	all := authz.AllFlags()
	if all.Len() != 29 {
		t.Errorf("the schema has %d permission flags, want Discord's 29", all.Len())
	}
	for _, f := range all.List() {
		back, err := authz.ParseFlag(f.Name())
		if err != nil || back != f {
			t.Errorf("ParseFlag(%q) = %v, %v", f.Name(), back, err)
		}
	}
	if _, err := authz.ParseFlag("fly"); !errors.Is(err, authz.ErrInvalid) {
		t.Errorf("ParseFlag(fly) = %v", err)
	}
	serverOnly := []authz.Flag{authz.FlagAdministrator, authz.FlagBanMembers, authz.FlagKickMembers, authz.FlagManageServer,
		authz.FlagModerateMembers, authz.FlagViewAuditLog, authz.FlagChangeNickname, authz.FlagManageNicknames}
	if got := all.NonOverwritable(); got != authz.FlagsOf(serverOnly...) {
		t.Errorf("server-only flags = %s", got)
	}
	s, err := authz.ParseFlags([]string{"send_messages", "view_channel"})
	if err != nil || s != authz.FlagsOf(authz.FlagViewChannel, authz.FlagSendMessages) {
		t.Errorf("ParseFlags = %s %v", s, err)
	}
	if got := s.Names(); len(got) != 2 || got[0] != "view_channel" {
		t.Errorf("Names = %v (schema order puts view_channel first)", got)
	}
}

func TestOverwriteRelationships(t *testing.T) {
	ch := authz.TypeChannel.Object("c")
	tests := []struct {
		name        string
		holder      authz.Object
		target      authz.OverwriteTarget
		allow, deny authz.Flags
		want        []string
		wantErr     bool
	}{
		{
			name: "everyone deny view", holder: ch, target: authz.EveryoneTarget(), deny: authz.FlagsOf(authz.FlagViewChannel),
			want: []string{"channel:c#everyone_deny_view_channel@user:*"},
		},
		{
			name: "role allow and deny", holder: authz.TypeCategory.Object("k"), target: authz.RoleTarget("r"),
			allow: authz.FlagsOf(authz.FlagViewChannel), deny: authz.FlagsOf(authz.FlagSendMessages),
			want: []string{"category:k#role_allow_view_channel@role:r#member", "category:k#role_deny_send_messages@role:r#member"},
		},
		{
			name: "member allow", holder: ch, target: authz.MemberTarget("u"), allow: authz.FlagsOf(authz.FlagConnect),
			want: []string{"channel:c#member_allow_connect@user:u"},
		},
		{name: "both allowed and denied", holder: ch, target: authz.EveryoneTarget(), allow: authz.FlagsOf(authz.FlagViewChannel), deny: authz.FlagsOf(authz.FlagViewChannel), wantErr: true},
		{name: "server-only flag", holder: ch, target: authz.EveryoneTarget(), allow: authz.FlagsOf(authz.FlagKickMembers), wantErr: true},
		{name: "not a channel", holder: authz.TypeServer.Object("s"), target: authz.EveryoneTarget(), allow: authz.FlagsOf(authz.FlagViewChannel), wantErr: true},
		{name: "role without id", holder: ch, target: authz.RoleTarget(""), allow: authz.FlagsOf(authz.FlagViewChannel), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rels, err := authz.Overwrite(tt.holder, tt.target, tt.allow, tt.deny)
			if tt.wantErr {
				if !errors.Is(err, authz.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rels {
				got = append(got, r.String())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
