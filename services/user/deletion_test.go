package user_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	userv1 "github.com/beepchat/beep/gen/beep/user/v1"
	"github.com/beepchat/beep/gen/beep/user/v1/userv1connect"
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/community"
	"github.com/beepchat/beep/services/user"
)

// kratosStandIn records the identities deleted, as Kratos' admin API would
// delete them.
type kratosStandIn struct {
	mu      sync.Mutex
	live    map[string]bool
	deleted []string
}

func (k *kratosStandIn) Identity(_ context.Context, id string) (map[string]any, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.live[id] {
		return nil, false, nil
	}
	return map[string]any{"id": id, "traits": map[string]any{"email": id + "@example.com"}}, true, nil
}

func (k *kratosStandIn) DeleteIdentity(_ context.Context, id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.live[id] {
		delete(k.live, id)
		k.deleted = append(k.deleted, id)
	}
	return nil
}

// erasureWorld is the user and community services on their own databases,
// talking as in production: through generated clients, the principal
// signed with the internal key.
type erasureWorld struct {
	spice      *authz.Client
	signer     *connectauthz.Signer
	community  communityv1connect.CommunityServiceClient
	users      userv1connect.UserServiceClient
	svc        *user.Service
	newService func() *user.Service // another instance on the same database: a restart
	kratos     *kratosStandIn
	databases  map[string]*pgxpool.Pool
	cfg        user.Config
	// token is the newest ZedToken seen: requests read at least as fresh.
	token string
}

// fresh makes later requests read the graph as it is now.
func (w *erasureWorld) fresh(t *testing.T) {
	d, err := w.spice.Check(t.Context(), authz.Check{Subject: authz.UserSubject("nobody"), Permission: authz.Server.View, ResourceID: "none"}, authz.FullyConsistent())
	if err != nil {
		t.Fatal(err)
	}
	w.token = string(d.CheckedAt)
}

// newServiceWith is a user service on the same database with another grace
// period, served to clients as the first.
func (w *erasureWorld) newServiceWith(t *testing.T, grace time.Duration) userv1connect.UserServiceClient {
	cfg := w.cfg
	cfg.DeletionGrace = grace
	svc, err := user.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(svc.Handler(connect.WithInterceptors(connectauthz.New(w.spice, cfg.Log, connectauthz.WithSigner(w.signer)))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return userv1connect.NewUserServiceClient(srv.Client(), srv.URL)
}

func newErasureWorld(t *testing.T) *erasureWorld {
	t.Helper()
	ctx := t.Context()
	spice, err := inprocess.Start(ctx, inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spice.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	signer, err := connectauthz.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := func(prefix string) *pgxpool.Pool {
		p, err := pgxpool.New(ctx, pgtest.NewDatabase(t, prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	w := &erasureWorld{spice: spice.Client(), signer: signer, kratos: &kratosStandIn{live: map[string]bool{}},
		databases: map[string]*pgxpool.Pool{"community": pool("beep_erase_community"), "user": pool("beep_erase_user")}}
	checks := connectauthz.New(spice.Client(), log, connectauthz.WithSigner(signer))

	comm, err := community.New(ctx, w.databases["community"], spice.Client(), log)
	if err != nil {
		t.Fatal(err)
	}
	communityMux := http.NewServeMux()
	communityMux.Handle(comm.Handler(connect.WithInterceptors(checks)))
	communityMux.Handle(comm.InternalHandler(connect.WithInterceptors(checks)))
	communitySrv := httptest.NewServer(communityMux)
	t.Cleanup(communitySrv.Close)
	forward := connect.WithInterceptors(connectauthz.Forward(signer))
	w.community = communityv1connect.NewCommunityServiceClient(communitySrv.Client(), communitySrv.URL, forward)

	cfg := user.Config{DB: w.databases["user"], Authz: spice.Client(), Log: log,
		Community:  w.community,
		Erasure:    communityv1connect.NewErasureServiceClient(communitySrv.Client(), communitySrv.URL, forward),
		Identities: w.kratos}
	w.cfg = cfg
	w.newService = func() *user.Service {
		svc, err := user.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	w.svc = w.newService()
	userMux := http.NewServeMux()
	userMux.Handle(w.svc.Handler(connect.WithInterceptors(checks)))
	userSrv := httptest.NewServer(userMux)
	t.Cleanup(userSrv.Close)
	w.users = userv1connect.NewUserServiceClient(userSrv.Client(), userSrv.URL)
	return w
}

// as signs the request for user, as the gateway does.
func (w *erasureWorld) as(user string, header http.Header) {
	header.Set(connectauthz.PrincipalHeader, w.signer.Sign(authz.Principal{UserID: user}))
	if w.token != "" {
		header.Set(connectauthz.TokenHeader, w.token)
	}
}

func call[Req, Resp any](t *testing.T, w *erasureWorld, user string, f func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error), msg *Req) *Resp {
	t.Helper()
	req := connect.NewRequest(msg)
	w.as(user, req.Header())
	resp, err := f(t.Context(), req)
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	if m, ok := any(resp.Msg).(interface{ GetZedToken() string }); ok && m.GetZedToken() != "" {
		w.token = m.GetZedToken()
	}
	return resp.Msg
}

// fixture is a user with a trace everywhere the services keep one.
type fixture struct {
	ann, bob, cat, dan string
	// ann owns owned (bob and cat in it, cat holding a role) and alone
	// (nobody else); she is a member of bobs (with a member overwrite, a
	// thread and an invite of hers) and banned from banned.
	owned, alone, bobs, banned string
}

func (w *erasureWorld) populate(t *testing.T) fixture {
	f := fixture{ann: uuid.NewString(), bob: uuid.NewString(), cat: uuid.NewString(), dan: uuid.NewString()}
	w.kratos.live[f.ann] = true
	c := w.community

	owned := call(t, w, f.ann, c.CreateServer, &communityv1.CreateServerRequest{Name: "ann's place", Public: true})
	f.owned = owned.Server.Id
	for _, u := range []string{f.bob, f.cat, f.dan} {
		call(t, w, u, c.JoinServer, &communityv1.JoinServerRequest{ServerId: f.owned})
	}
	mod := call(t, w, f.ann, c.CreateRole, &communityv1.CreateRoleRequest{ServerId: f.owned, Name: "mod", Permissions: []string{"kick_members"}})
	call(t, w, f.ann, c.AddMemberRole, &communityv1.AddMemberRoleRequest{RoleId: mod.Role.Id, UserId: f.cat})
	call(t, w, f.ann, c.BanMember, &communityv1.BanMemberRequest{ServerId: f.owned, UserId: f.dan, Reason: "spam"})

	f.alone = call(t, w, f.ann, c.CreateServer, &communityv1.CreateServerRequest{Name: "ann alone"}).Server.Id

	bobs := call(t, w, f.bob, c.CreateServer, &communityv1.CreateServerRequest{Name: "bob's place", Public: true})
	f.bobs = bobs.Server.Id
	call(t, w, f.ann, c.JoinServer, &communityv1.JoinServerRequest{ServerId: f.bobs})
	call(t, w, f.bob, c.SetPermissionOverwrite, &communityv1.SetPermissionOverwriteRequest{ChannelId: bobs.GeneralChannel.Id,
		Overwrite: &communityv1.PermissionOverwrite{TargetKind: communityv1.TargetKind_TARGET_KIND_MEMBER, TargetId: f.ann, Allow: []string{"attach_files"}}})
	call(t, w, f.ann, c.CreateThread, &communityv1.CreateThreadRequest{ChannelId: bobs.GeneralChannel.Id, Name: "ann's thread"})
	call(t, w, f.ann, c.CreateInvite, &communityv1.CreateInviteRequest{ChannelId: bobs.GeneralChannel.Id})

	f.banned = call(t, w, f.bob, c.CreateServer, &communityv1.CreateServerRequest{Name: "bob's other place", Public: true}).Server.Id
	call(t, w, f.ann, c.JoinServer, &communityv1.JoinServerRequest{ServerId: f.banned})
	call(t, w, f.bob, c.BanMember, &communityv1.BanMemberRequest{ServerId: f.banned, UserId: f.ann})

	u := w.users
	call(t, w, f.ann, u.UpdateMyProfile, &userv1.UpdateMyProfileRequest{Username: new("ann"), DisplayName: new("Ann")})
	call(t, w, f.ann, u.BlockUser, &userv1.BlockUserRequest{UserId: f.bob})
	call(t, w, f.cat, u.BlockUser, &userv1.BlockUserRequest{UserId: f.ann})
	if len(w.traces(t, f.ann)) == 0 {
		t.Fatal("the fixture left no trace to erase")
	}
	return f
}

// traces scans every table of both services' databases, and every
// relationship of the graph, for the user id.
func (w *erasureWorld) traces(t *testing.T, userID string) []string {
	t.Helper()
	ctx := t.Context()
	var found []string
	for _, name := range []string{"community", "user"} {
		for _, where := range pgtest.Find(t, w.databases[name].Config().ConnConfig.Database, userID) {
			found = append(found, name+where[strings.Index(where, "."):])
		}
	}
	for _, typ := range authz.ObjectTypes {
		for r, err := range w.spice.ReadRelationships(ctx, authz.Filter{ResourceType: typ}, authz.FullyConsistent()) {
			if err != nil {
				t.Fatal(err)
			}
			if (typ == authz.TypeUser && r.ResourceID == userID) || r.Subject.Object.ID == userID {
				found = append(found, "spicedb "+r.String())
			}
		}
	}
	return found
}

// checkErased shows that nothing of ann remains, and what became of her
// servers.
func (w *erasureWorld) checkErased(t *testing.T, f fixture) {
	t.Helper()
	w.fresh(t)
	if left := w.traces(t, f.ann); len(left) > 0 {
		t.Fatalf("traces of the erased user remain: %v", left)
	}
	if !slices.Equal(w.kratos.deleted, []string{f.ann}) {
		t.Fatalf("Kratos identities deleted: %v", w.kratos.deleted)
	}
	// Her server passed to cat, who holds the highest role, and works.
	got := call(t, w, f.cat, w.community.GetServer, &communityv1.GetServerRequest{ServerId: f.owned})
	if got.Server.OwnerId != f.cat {
		t.Fatalf("owned server's owner is %q, want cat", got.Server.OwnerId)
	}
	call(t, w, f.cat, w.community.UpdateServer, &communityv1.UpdateServerRequest{ServerId: f.owned, Name: new("cat's place")})
	// The server nobody else was in is gone.
	req := connect.NewRequest(&communityv1.GetServerRequest{ServerId: f.alone})
	w.as(f.bob, req.Header())
	if _, err := w.community.GetServer(t.Context(), req); connect.CodeOf(err) != connect.CodePermissionDenied && connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("the server ann was alone in: %v", err)
	}
	// dan stays banned from ann's old server, by nobody now.
	join := connect.NewRequest(&communityv1.JoinServerRequest{ServerId: f.owned})
	w.as(f.dan, join.Header())
	if _, err := w.community.JoinServer(t.Context(), join); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("dan rejoining the server ann banned him from: %v", err)
	}
	// Bob's servers are untouched.
	call(t, w, f.bob, w.community.GetServer, &communityv1.GetServerRequest{ServerId: f.bobs})
	call(t, w, f.bob, w.community.GetServer, &communityv1.GetServerRequest{ServerId: f.banned})
}

func TestDeleteMyAccount(t *testing.T) {
	w := newErasureWorld(t)
	f := w.populate(t)

	// Only deliberately: the caller's own id, confirmed.
	wrong := connect.NewRequest(&userv1.DeleteMyAccountRequest{ConfirmUserId: f.bob})
	w.as(f.ann, wrong.Header())
	if _, err := w.users.DeleteMyAccount(t.Context(), wrong); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("unconfirmed deletion: %v", err)
	}
	if _, err := w.users.DeleteMyAccount(t.Context(), connect.NewRequest(&userv1.DeleteMyAccountRequest{ConfirmUserId: f.ann})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("anonymous deletion: %v", err)
	}

	resp := call(t, w, f.ann, w.users.DeleteMyAccount, &userv1.DeleteMyAccountRequest{ConfirmUserId: f.ann})
	if resp.State != userv1.AccountDeletionState_ACCOUNT_DELETION_STATE_DONE {
		t.Fatalf("state %v", resp.State)
	}
	if resp.TransferredServers[f.owned] != f.cat || !slices.Equal(resp.DeletedServers, []string{f.alone}) {
		t.Fatalf("outcome: transferred %v, deleted %v", resp.TransferredServers, resp.DeletedServers)
	}
	w.checkErased(t, f)

	// Again: nothing left to do, and still done.
	again := call(t, w, f.ann, w.users.DeleteMyAccount, &userv1.DeleteMyAccountRequest{ConfirmUserId: f.ann})
	if again.State != userv1.AccountDeletionState_ACCOUNT_DELETION_STATE_DONE {
		t.Fatalf("second deletion: %v", again.State)
	}
	w.checkErased(t, f)
}

// TestDeleteMyAccountAfterACrash cuts the erasure short after each step in
// turn, as a crash would, then starts the service again on the same
// database: it finishes the job, and nothing of the user remains.
func TestDeleteMyAccountAfterACrash(t *testing.T) {
	for _, step := range []string{"identity", "community", "profile", "graph"} {
		t.Run("after "+step, func(t *testing.T) {
			w := newErasureWorld(t)
			f := w.populate(t)
			user.SetAfterStep(w.svc, func(s string) error {
				if s == step {
					return errors.New("crash")
				}
				return nil
			})
			resp := call(t, w, f.ann, w.users.DeleteMyAccount, &userv1.DeleteMyAccountRequest{ConfirmUserId: f.ann})
			if resp.State != userv1.AccountDeletionState_ACCOUNT_DELETION_STATE_PENDING {
				t.Fatalf("state after a crash: %v", resp.State)
			}
			var lastError string
			if err := w.databases["user"].QueryRow(t.Context(), `SELECT last_error FROM account_deletions WHERE user_id = $1`, f.ann).Scan(&lastError); err != nil || lastError == "" {
				t.Fatalf("the failed pass is not recorded: %q %v", lastError, err)
			}
			// Time passes (the retry is due), and the service starts again.
			if _, err := w.databases["user"].Exec(t.Context(), `UPDATE account_deletions SET next_attempt_at = now(), leased_until = NULL`); err != nil {
				t.Fatal(err)
			}
			restarted := w.newService()
			for i := 0; ; i++ {
				n, err := restarted.ResumeDeletions(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if i == 3 {
					t.Fatal("the erasure does not finish")
				}
			}
			w.checkErased(t, f)
		})
	}
}

// TestDeletionWaitsOutTheGracePeriod: while the gateway may still honour a
// cached session of the deleted identity, the erasure is not done; one more
// pass after that period removes what was written meanwhile.
func TestDeletionWaitsOutTheGracePeriod(t *testing.T) {
	w := newErasureWorld(t)
	f := w.populate(t)
	graced := w.newServiceWith(t, time.Hour)
	resp := call(t, w, f.ann, graced.DeleteMyAccount, &userv1.DeleteMyAccountRequest{ConfirmUserId: f.ann})
	if resp.State != userv1.AccountDeletionState_ACCOUNT_DELETION_STATE_PENDING {
		t.Fatalf("state within the grace period: %v", resp.State)
	}
	if left := w.traces(t, f.ann); !slices.Equal(left, []string{"user.account_deletions.user_id"}) {
		t.Fatalf("after the first pass, only the deletion's record should remain: %v", left)
	}
	// A session still cached writes a profile meanwhile.
	call(t, w, f.ann, w.users.UpdateMyProfile, &userv1.UpdateMyProfileRequest{Status: new("still here")})
	// Nothing is due before the period ends.
	if n, err := w.svc.ResumeDeletions(t.Context()); err != nil || n != 0 {
		t.Fatalf("resumed %d before the grace period ended: %v", n, err)
	}
	// The period ends.
	if _, err := w.databases["user"].Exec(t.Context(), `UPDATE account_deletions
		SET identity_erased_at = identity_erased_at - interval '2 hours', next_attempt_at = now()`); err != nil {
		t.Fatal(err)
	}
	if n, err := w.svc.ResumeDeletions(t.Context()); err != nil || n != 1 {
		t.Fatalf("resumed %d: %v", n, err)
	}
	w.checkErased(t, f)
}
