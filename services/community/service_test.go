package community_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/community"
)

type harness struct {
	svc    *community.Service
	client communityv1connect.CommunityServiceClient
	authz  *authz.Client
	url    string // of the service's HTTP server
	db     *pgxpool.Pool
	// erasure is the internal API.
	erasure communityv1connect.ErasureServiceClient
}

// testAuthentication stands in for the gateway: the user named in a header.
func testAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("Test-User"); u != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.Principal{UserID: u}))
		}
		if s := r.Header.Get("Test-Service"); s != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.ServicePrincipal(s)))
		}
		next.ServeHTTP(w, r)
	})
}

func start(t *testing.T) *harness {
	t.Helper()
	return startAudited(t, connectauthz.Discard)
}

// startAudited starts the service with audit records going to a, from the
// interceptor (refusals) and the service (what its audit log keeps).
func startAudited(t *testing.T, a connectauthz.Auditor) *harness {
	t.Helper()
	spice, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spice.Close() })
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t, "beep_community_test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := community.New(t.Context(), pool, spice.Client(), log, community.WithAuditor(a))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(svc.Handler(connect.WithInterceptors(connectauthz.New(spice.Client(), log, connectauthz.WithAudit(a)))))
	mux.Handle(svc.InternalHandler(connect.WithInterceptors(connectauthz.New(spice.Client(), log))))
	srv := httptest.NewServer(testAuthentication(mux))
	t.Cleanup(srv.Close)
	return &harness{svc: svc, client: communityv1connect.NewCommunityServiceClient(srv.Client(), srv.URL), authz: spice.Client(), url: srv.URL, db: pool,
		erasure: communityv1connect.NewErasureServiceClient(srv.Client(), srv.URL)}
}

// as makes a request from user, at least as fresh as token.
func as[T any](user string, token string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if user != "" {
		req.Header().Set("Test-User", user)
	}
	if token != "" {
		req.Header().Set(connectauthz.TokenHeader, token)
	}
	return req
}

// must is for calls that set a test up: their failure ends the run.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

func code(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != want {
		t.Fatalf("got %v, want %v", err, want)
	}
}

// fixture: ann owns a public server with a Mods role (manage_roles,
// ban_members, view_channel), a private #staff channel (Mods may view), and
// members bob (a mod) and carl.
type fixture struct {
	server, staff, general, mods string
	token                        string
}

func setUp(t *testing.T, h *harness) fixture {
	t.Helper()
	ctx := t.Context()
	created := must(h.client.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Gophers", Public: true})))
	f := fixture{server: created.Msg.Server.Id, general: created.Msg.GeneralChannel.Id, token: created.Msg.ZedToken}
	role := must(h.client.CreateRole(ctx, as("ann", f.token, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "Mods",
		Permissions: []string{"manage_roles", "ban_members", "view_channel", "manage_channels"}})))
	f.mods = role.Msg.Role.Id
	staff := must(h.client.CreateChannel(ctx, as("ann", role.Msg.ZedToken, &communityv1.CreateChannelRequest{ServerId: f.server, Name: "staff",
		Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT, Overwrites: []*communityv1.PermissionOverwrite{
			{TargetKind: communityv1.TargetKind_TARGET_KIND_EVERYONE, Deny: []string{"view_channel"}},
			{TargetKind: communityv1.TargetKind_TARGET_KIND_ROLE, TargetId: f.mods, Allow: []string{"view_channel"}},
		}})))
	f.staff = staff.Msg.Channel.Id
	zed := staff.Msg.ZedToken
	for _, u := range []string{"bob", "carl"} {
		zed = must(h.client.JoinServer(ctx, as(u, zed, &communityv1.JoinServerRequest{ServerId: f.server}))).Msg.ZedToken
	}
	added := must(h.client.AddMemberRole(ctx, as("ann", zed, &communityv1.AddMemberRoleRequest{RoleId: f.mods, UserId: "bob"})))
	f.token = added.Msg.ZedToken
	return f
}

func permissions(t *testing.T, h *harness, user, channel, token string) ([]string, error) {
	resp, err := h.client.GetEffectivePermissions(t.Context(), as(user, token, &communityv1.GetEffectivePermissionsRequest{ChannelId: channel}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Permissions, nil
}

// TestPrivateChannelWalkthrough is the README's walkthrough: a second user
// joins, is refused in the private channel until given the role.
func TestPrivateChannelWalkthrough(t *testing.T) {
	h := start(t)
	f := setUp(t, h)

	_, err := permissions(t, h, "carl", f.staff, f.token)
	code(t, err, connect.CodePermissionDenied)
	general, err := permissions(t, h, "carl", f.general, f.token)
	if err != nil || !slices.Contains(general, "send_messages") || slices.Contains(general, "manage_channels") {
		t.Fatalf("carl in #general: %v %v", general, err)
	}

	added := must(h.client.AddMemberRole(t.Context(), as("ann", f.token, &communityv1.AddMemberRoleRequest{RoleId: f.mods, UserId: "carl"})))
	staff, err := permissions(t, h, "carl", f.staff, added.Msg.ZedToken)
	if err != nil || !slices.Contains(staff, "view_channel") {
		t.Fatalf("carl with Mods in #staff: %v %v", staff, err)
	}

	removed := must(h.client.RemoveMemberRole(t.Context(), as("ann", added.Msg.ZedToken, &communityv1.RemoveMemberRoleRequest{RoleId: f.mods, UserId: "carl"})))
	_, err = permissions(t, h, "carl", f.staff, removed.Msg.ZedToken)
	code(t, err, connect.CodePermissionDenied)

	mine := must(h.client.ListMyServers(t.Context(), as("carl", "", &communityv1.ListMyServersRequest{})))
	if len(mine.Msg.Servers) != 1 || mine.Msg.Servers[0].Id != f.server {
		t.Errorf("carl's servers: %v", mine.Msg.Servers)
	}
	if drift := must(h.svc.CheckDrift(t.Context())); len(drift) != 0 {
		t.Errorf("drift after normal operation: %+v", drift)
	}
}

// TestRefusals: every RPC refuses a caller without its permission.
func TestRefusals(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	private := must(h.client.CreateServer(ctx, as("dan", "", &communityv1.CreateServerRequest{Name: "Private"})))

	tests := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"create server anonymously", func() error {
			_, err := h.client.CreateServer(ctx, as("", "", &communityv1.CreateServerRequest{Name: "x"}))
			return err
		}, connect.CodeUnauthenticated},
		{"list servers anonymously", func() error {
			_, err := h.client.ListMyServers(ctx, as("", "", &communityv1.ListMyServersRequest{}))
			return err
		}, connect.CodeUnauthenticated},
		{"stranger gets a private server", func() error {
			_, err := h.client.GetServer(ctx, as("zoe", private.Msg.ZedToken, &communityv1.GetServerRequest{ServerId: private.Msg.Server.Id}))
			return err
		}, connect.CodePermissionDenied},
		{"stranger joins a private server", func() error {
			_, err := h.client.JoinServer(ctx, as("zoe", private.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: private.Msg.Server.Id}))
			return err
		}, connect.CodePermissionDenied},
		{"member bans", func() error {
			_, err := h.client.BanMember(ctx, as("carl", f.token, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "bob"}))
			return err
		}, connect.CodePermissionDenied},
		{"member creates a role", func() error {
			_, err := h.client.CreateRole(ctx, as("carl", f.token, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "x"}))
			return err
		}, connect.CodePermissionDenied},
		{"member assigns a role", func() error {
			_, err := h.client.AddMemberRole(ctx, as("carl", f.token, &communityv1.AddMemberRoleRequest{RoleId: f.mods, UserId: "carl"}))
			return err
		}, connect.CodePermissionDenied},
		{"member removes a role", func() error {
			_, err := h.client.RemoveMemberRole(ctx, as("carl", f.token, &communityv1.RemoveMemberRoleRequest{RoleId: f.mods, UserId: "bob"}))
			return err
		}, connect.CodePermissionDenied},
		{"member creates a channel", func() error {
			_, err := h.client.CreateChannel(ctx, as("carl", f.token, &communityv1.CreateChannelRequest{ServerId: f.server, Name: "x", Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT}))
			return err
		}, connect.CodePermissionDenied},
		{"member sets an overwrite", func() error {
			_, err := h.client.SetPermissionOverwrite(ctx, as("carl", f.token, &communityv1.SetPermissionOverwriteRequest{ChannelId: f.general,
				Overwrite: &communityv1.PermissionOverwrite{TargetKind: communityv1.TargetKind_TARGET_KIND_MEMBER, TargetId: "carl", Allow: []string{"manage_messages"}}}))
			return err
		}, connect.CodePermissionDenied},
		{"member reads permissions of a hidden channel", func() error {
			_, err := permissions(t, h, "carl", f.staff, f.token)
			return err
		}, connect.CodePermissionDenied},
		// Role hierarchy and "only what you hold", beyond the graph.
		{"mod assigns a role at their own level", func() error {
			_, err := h.client.AddMemberRole(ctx, as("bob", f.token, &communityv1.AddMemberRoleRequest{RoleId: f.mods, UserId: "carl"}))
			return err
		}, connect.CodePermissionDenied},
		{"mod grants administrator", func() error {
			_, err := h.client.CreateRole(ctx, as("bob", f.token, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "admins", Permissions: []string{"administrator"}}))
			return err
		}, connect.CodePermissionDenied},
		{"mod bans the owner", func() error {
			_, err := h.client.BanMember(ctx, as("bob", f.token, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "ann"}))
			return err
		}, connect.CodePermissionDenied},
		{"bad id", func() error {
			_, err := h.client.GetServer(ctx, as("ann", f.token, &communityv1.GetServerRequest{ServerId: "nope"}))
			return err
		}, connect.CodePermissionDenied}, // the graph has no such server: refused before parsing
		{"unknown permission name", func() error {
			_, err := h.client.CreateRole(ctx, as("ann", f.token, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "x", Permissions: []string{"fly"}}))
			return err
		}, connect.CodeInvalidArgument},
		{"server name too short", func() error {
			_, err := h.client.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "x"}))
			return err
		}, connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { code(t, tt.call(), tt.want) })
	}
}

func TestBanKeepsUserOut(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	// A mod (bob) outranks carl, who holds no role.
	banned := must(h.client.BanMember(ctx, as("bob", f.token, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "carl", Reason: "spam"})))
	_, err := permissions(t, h, "carl", f.general, banned.Msg.ZedToken)
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.JoinServer(ctx, as("carl", banned.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.GetServer(ctx, as("carl", banned.Msg.ZedToken, &communityv1.GetServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Errorf("drift after ban: %+v", drift)
	}
}

func TestListMyServersPages(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	var want []string
	for i := range 5 {
		s := must(h.client.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Server " + string(rune('A'+i))})))
		want = append(want, s.Msg.Server.Id)
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		resp := must(h.client.ListMyServers(ctx, as("ann", "", &communityv1.ListMyServersRequest{PageSize: 2, PageToken: token})))
		for _, s := range resp.Msg.Servers {
			got = append(got, s.Id)
		}
		if token = resp.Msg.NextPageToken; token == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
	_, err := h.client.ListMyServers(ctx, as("ann", "", &communityv1.ListMyServersRequest{PageToken: "garbage"}))
	code(t, err, connect.CodeInvalidArgument)
}

var errCrash = errors.New("simulated crash")

// TestCrashBetweenStores kills a write between the database commit and the
// SpiceDB write: SpiceDB is never more permissive than the database, the
// drift is reported, and the reconciler converges it.
func TestCrashBetweenStores(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()

	// Carl's overwrite on #general goes from "allow manage_messages" to
	// "allow attach_files, deny send_messages": a removal and a deny
	// (narrowing, before the commit) and an allow (widening, after).
	set := func(allow, deny []string, token string) (*connect.Response[communityv1.SetPermissionOverwriteResponse], error) {
		return h.client.SetPermissionOverwrite(ctx, as("ann", token, &communityv1.SetPermissionOverwriteRequest{ChannelId: f.general,
			Overwrite: &communityv1.PermissionOverwrite{TargetKind: communityv1.TargetKind_TARGET_KIND_MEMBER, TargetId: "carl", Allow: allow, Deny: deny}}))
	}
	before := must(set([]string{"manage_messages"}, nil, f.token))

	h.svc.SetAfterCommit(func() error { return errCrash })
	_, err := set([]string{"attach_files"}, []string{"send_messages"}, before.Msg.ZedToken)
	if err == nil {
		t.Fatal("the crashed write reported success")
	}
	h.svc.SetAfterCommit(nil)

	// SpiceDB holds the narrowing half only: nothing the database does not allow.
	now, err := h.authz.ChannelFlags(ctx, authz.UserSubject("carl"), f.general, authz.FullyConsistent())
	if err != nil {
		t.Fatal(err)
	}
	if now.Has(authz.FlagManageMessages) || now.Has(authz.FlagSendMessages) {
		t.Errorf("after the crash SpiceDB grants what the database took away: %s", now)
	}
	if now.Has(authz.FlagAttachFiles) {
		t.Errorf("attach_files granted before its write: %s", now)
	}

	drift := must(h.svc.CheckDrift(ctx))
	if len(drift) != 1 || len(drift[0].Missing) != 1 || len(drift[0].Extra) != 0 {
		t.Fatalf("drift = %+v, want one missing relationship", drift)
	}
	if n := must(h.svc.ReconcileDirty(ctx, 0)); n != 1 {
		t.Fatalf("reconciled %d servers, want 1", n)
	}
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after reconciling: %+v", drift)
	}
	now, err = h.authz.ChannelFlags(ctx, authz.UserSubject("carl"), f.general, authz.FullyConsistent())
	if err != nil {
		t.Fatal(err)
	}
	if !now.Has(authz.FlagViewChannel) || now.Has(authz.FlagSendMessages) || now.Has(authz.FlagAttachFiles) {
		// attach_files needs send_messages (Discord's implicit rule): denied here.
		t.Errorf("after reconciling carl holds %s", now)
	}

	// A database failure after the narrowing write: SpiceDB is restored at once.
	h.svc.SetBeforeCommit(func() error { return errCrash })
	_, err = h.client.BanMember(ctx, as("ann", f.token, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "carl"}))
	if err == nil {
		t.Fatal("the failed ban reported success")
	}
	h.svc.SetBeforeCommit(nil)
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after a failed ban: %+v", drift)
	}
	d, err := h.authz.Check(ctx, authz.Check{Subject: authz.UserSubject("carl"), Permission: authz.Server.View, ResourceID: f.server}, authz.FullyConsistent())
	if err != nil || !d.Allowed {
		t.Fatalf("carl lost his membership to a ban that failed: %+v %v", d, err)
	}
}

// TestRebuildFromScratch: the reconciler rebuilds a server's whole graph
// from the database after SpiceDB lost it.
func TestRebuildFromScratch(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	if _, err := h.authz.DeleteMatching(ctx, authz.Filter{ResourceType: authz.TypeServer, ResourceID: f.server}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.authz.DeleteMatching(ctx, authz.Filter{ResourceType: authz.TypeChannel, ResourceID: f.staff}); err != nil {
		t.Fatal(err)
	}
	drift := must(h.svc.CheckDrift(ctx, uuid.MustParse(f.server)))
	if len(drift) != 1 || len(drift[0].Missing) < 5 {
		t.Fatalf("drift = %+v", drift)
	}
	rebuilt, err := h.svc.Reconcile(ctx, uuid.MustParse(f.server))
	if err != nil || rebuilt.At == "" {
		t.Fatalf("rebuild: %+v %v", rebuilt, err)
	}
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after rebuild: %+v", drift)
	}
	staff, err := permissions(t, h, "bob", f.staff, string(rebuilt.At))
	if err != nil || !slices.Contains(staff, "view_channel") {
		t.Fatalf("bob in #staff after rebuild: %v %v", staff, err)
	}
}

func mustUUID(s string) uuid.UUID { return uuid.MustParse(s) }
