package bench

import (
	"testing"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
)

// TestDataSetSemantics loads a small data set of the benchmark's shape and
// checks that it means what the benchmark claims (private channels, synced
// categories, administrators), so the benchmark measures real work.
func TestDataSetSemantics(t *testing.T) {
	sh := Shape{Servers: 3, MembersPerServer: 100, Users: 1000, RolesPerServer: 50, ChannelsPerServer: 20}
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := srv.Client()
	n, err := c.Import(t.Context(), sh.Relationships())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d relationships for %d servers", n, sh.Servers)

	// Member j holds role 1 + j%49: member 1 holds role 2 (allowed in private
	// channel 0), member 2 holds role 3, member 49 holds role 1 (administrator).
	tests := []struct {
		member int
		perm   authz.Permission
		ch     int
		want   bool
	}{
		{1, authz.Channel.ViewChannel, 0, true},
		{2, authz.Channel.ViewChannel, 0, false},
		{49, authz.Channel.ViewChannel, 0, true},
		{0, authz.Channel.ViewChannel, 0, true}, // owner
		{2, authz.Channel.SendMessages, 3, false},
		{4, authz.Channel.SendMessages, 3, true}, // member 4 holds role 5, allowed in channel 3
		{5, authz.Channel.SendMessages, 6, false},
		{6, authz.Channel.SendMessages, 6, true},
		{2, authz.Channel.ManageMessages, 15, true}, // role 3, allowed on category 1
		{2, authz.Channel.ManageMessages, 10, false},
		// Member 4 holds role 5, whose base grants embed_links; category 0's
		// @everyone deny removes it in its synced channels (Discord: only
		// role overwrites, not base grants, win over an @everyone deny).
		{4, authz.Channel.EmbedLinks, 7, true},
		{4, authz.Channel.EmbedLinks, 11, false},
	}
	for _, tt := range tests {
		d, err := c.Check(t.Context(), authz.Check{Subject: authz.UserSubject(sh.member(0, tt.member)), Permission: tt.perm, ResourceID: channelID(0, tt.ch)}, authz.FullyConsistent())
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != tt.want {
			t.Errorf("member %d %s in channel %d = %v, want %v", tt.member, tt.perm.Name, tt.ch, d.Allowed, tt.want)
		}
	}
}
