package user_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	userv1 "github.com/beepchat/beep/gen/beep/user/v1"
	"github.com/beepchat/beep/gen/beep/user/v1/userv1connect"
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/user"
)

type harness struct {
	client userv1connect.UserServiceClient
	authz  *authz.Client
}

func start(t *testing.T) *harness {
	t.Helper()
	spice, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spice.Close() })
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t, "beep_user_test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := user.New(t.Context(), user.Config{DB: pool, Authz: spice.Client(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(svc.Handler(connect.WithInterceptors(connectauthz.New(spice.Client(), log))))
	// The user named in a header stands in for the gateway.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("Test-User"); u != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.Principal{UserID: u}))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &harness{client: userv1connect.NewUserServiceClient(srv.Client(), srv.URL), authz: spice.Client()}
}

func as[T any](user, token string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if user != "" {
		req.Header().Set("Test-User", user)
	}
	if token != "" {
		req.Header().Set(connectauthz.TokenHeader, token)
	}
	return req
}

func code(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != want {
		t.Fatalf("got %v, want %v", err, want)
	}
}

func TestProfiles(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	updated, err := h.client.UpdateMyProfile(ctx, as("ann", "", &userv1.UpdateMyProfileRequest{Username: new("ann.b"), DisplayName: new(" Ann B "), Locale: new("fr-FR")}))
	if err != nil {
		t.Fatal(err)
	}
	if p := updated.Msg.Profile; p.Username != "ann.b" || p.DisplayName != "Ann B" || p.Locale != "fr-FR" {
		t.Fatalf("profile %+v", p)
	}
	// A partial update keeps the rest.
	status, err := h.client.UpdateMyProfile(ctx, as("ann", "", &userv1.UpdateMyProfileRequest{Status: new("gophering")}))
	if err != nil || status.Msg.Profile.Username != "ann.b" || status.Msg.Profile.Status != "gophering" {
		t.Fatalf("partial update: %+v %v", status, err)
	}
	zed := status.Msg.ZedToken
	mine, err := h.client.GetMyProfile(ctx, as("ann", "", &userv1.GetMyProfileRequest{}))
	if err != nil || mine.Msg.Profile.DisplayName != "Ann B" {
		t.Fatalf("own profile: %+v %v", mine, err)
	}
	// Usernames are unique whatever the case, and well-formed.
	_, err = h.client.UpdateMyProfile(ctx, as("bob", "", &userv1.UpdateMyProfileRequest{Username: new("ann.b")}))
	code(t, err, connect.CodeAlreadyExists)
	for _, bad := range []string{"Ann", "a", "ann b", "ann@b"} {
		_, err = h.client.UpdateMyProfile(ctx, as("bob", "", &userv1.UpdateMyProfileRequest{Username: new(bad)}))
		code(t, err, connect.CodeInvalidArgument)
	}

	// Others: only those who share a server with ann.
	if _, err := h.client.GetProfile(ctx, as("ann", zed, &userv1.GetProfileRequest{UserId: "ann"})); err != nil {
		t.Fatalf("ann reads her own profile: %v", err)
	}
	_, err = h.client.GetProfile(ctx, as("bob", zed, &userv1.GetProfileRequest{UserId: "ann"}))
	code(t, err, connect.CodePermissionDenied)
	// The community service writes these with a membership.
	var updates []authz.Update
	for _, u := range []string{"ann", "bob"} {
		updates = append(updates,
			authz.Touch(authz.Relationship{Relation: authz.Server.Member, ResourceID: "gophers", Subject: authz.UserSubject(u)}),
			authz.Touch(authz.Relationship{Relation: authz.User.MemberOf, ResourceID: u, Subject: authz.TypeServer.Object("gophers").Subject()}))
	}
	joined, err := h.authz.Write(ctx, updates)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := h.client.GetProfile(ctx, as("bob", string(joined), &userv1.GetProfileRequest{UserId: "ann"}))
	if err != nil || seen.Msg.Profile.Username != "ann.b" {
		t.Fatalf("bob, who shares a server with ann: %+v %v", seen, err)
	}
	_, err = h.client.GetProfile(ctx, as("carl", string(joined), &userv1.GetProfileRequest{UserId: "ann"}))
	code(t, err, connect.CodePermissionDenied)
}

func TestBlocking(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	blocked := func(a, b, zed string) bool {
		d, err := h.authz.Check(ctx, authz.Check{Subject: authz.UserSubject(b), Permission: authz.User.DmBlocked, ResourceID: a}, authz.AtLeastAsFresh(authz.ZedToken(zed)))
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	res, err := h.client.BlockUser(ctx, as("ann", "", &userv1.BlockUserRequest{UserId: "bob"}))
	if err != nil {
		t.Fatal(err)
	}
	if !blocked("ann", "bob", res.Msg.ZedToken) || !blocked("bob", "ann", res.Msg.ZedToken) {
		t.Fatal("a block stops DMs both ways")
	}
	list, err := h.client.ListBlockedUsers(ctx, as("ann", "", &userv1.ListBlockedUsersRequest{}))
	if err != nil || !slices.Equal(list.Msg.UserIds, []string{"bob"}) {
		t.Fatalf("ann blocks %v (%v)", list, err)
	}
	// Blocking again is harmless; blocking oneself or a malformed id is not accepted.
	if _, err := h.client.BlockUser(ctx, as("ann", "", &userv1.BlockUserRequest{UserId: "bob"})); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.BlockUser(ctx, as("ann", "", &userv1.BlockUserRequest{UserId: "ann"}))
	code(t, err, connect.CodeInvalidArgument)
	_, err = h.client.BlockUser(ctx, as("ann", "", &userv1.BlockUserRequest{UserId: "bob b"}))
	code(t, err, connect.CodeInvalidArgument)
	// Only the one who blocked can lift it.
	_, err = h.client.UnblockUser(ctx, as("bob", "", &userv1.UnblockUserRequest{UserId: "ann"}))
	code(t, err, connect.CodeNotFound)
	lifted, err := h.client.UnblockUser(ctx, as("ann", "", &userv1.UnblockUserRequest{UserId: "bob"}))
	if err != nil {
		t.Fatal(err)
	}
	if blocked("ann", "bob", lifted.Msg.ZedToken) || blocked("bob", "ann", lifted.Msg.ZedToken) {
		t.Fatal("an unblock lifts the block both ways")
	}
}

// TestAnonymousIsRefused: every RPC needs a signed-in caller.
func TestAnonymousIsRefused(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	calls := map[string]func() error{
		"GetMyProfile": func() error {
			_, err := h.client.GetMyProfile(ctx, as("", "", &userv1.GetMyProfileRequest{}))
			return err
		},
		"UpdateMyProfile": func() error {
			_, err := h.client.UpdateMyProfile(ctx, as("", "", &userv1.UpdateMyProfileRequest{}))
			return err
		},
		"GetProfile": func() error {
			_, err := h.client.GetProfile(ctx, as("", "", &userv1.GetProfileRequest{UserId: "ann"}))
			return err
		},
		"BlockUser": func() error {
			_, err := h.client.BlockUser(ctx, as("", "", &userv1.BlockUserRequest{UserId: "ann"}))
			return err
		},
		"UnblockUser": func() error {
			_, err := h.client.UnblockUser(ctx, as("", "", &userv1.UnblockUserRequest{UserId: "ann"}))
			return err
		},
		"ListBlockedUsers": func() error {
			_, err := h.client.ListBlockedUsers(ctx, as("", "", &userv1.ListBlockedUsersRequest{}))
			return err
		},
		"ExportMyData": func() error {
			_, err := h.client.ExportMyData(ctx, as("", "", &userv1.ExportMyDataRequest{}))
			return err
		},
		"DeleteMyAccount": func() error {
			_, err := h.client.DeleteMyAccount(ctx, as("", "", &userv1.DeleteMyAccountRequest{ConfirmUserId: "ann"}))
			return err
		},
	}
	methods := userv1.File_beep_user_v1_user_proto.Services().ByName("UserService").Methods()
	if methods.Len() != len(calls) {
		t.Fatalf("the service has %d RPCs, this test calls %d: add the new ones", methods.Len(), len(calls))
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { code(t, call(), connect.CodeUnauthenticated) })
	}
}
