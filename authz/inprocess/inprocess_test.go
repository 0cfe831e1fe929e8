package inprocess_test

import (
	"errors"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/internal/pgtest"
)

func owner(server, user string) []authz.Update {
	return []authz.Update{
		authz.Touch(authz.Relationship{Relation: authz.Server.Owner, ResourceID: server, Subject: authz.UserSubject(user)}),
		authz.Touch(authz.Relationship{Relation: authz.Server.Member, ResourceID: server, Subject: authz.UserSubject(user)}),
	}
}

// TestPostgresEngine runs SpiceDB on a fresh PostgreSQL database: migrated,
// schema written, data kept across a restart, timeouts expiring on time.
func TestPostgresEngine(t *testing.T) {
	uri := pgtest.NewDatabase(t, "beep_spicedb_test")
	cfg := inprocess.Config{Engine: inprocess.Postgres, DatastoreURI: uri, Schema: authz.SchemaText}
	srv, err := inprocess.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	updates := owner("s1", "ann")
	updates = append(updates,
		authz.Touch(authz.Relationship{Relation: authz.Server.Member, ResourceID: "s1", Subject: authz.UserSubject("bob")}),
		authz.Touch(authz.Timeout("s1", "bob", time.Now().Add(1500*time.Millisecond))),
	)
	updates = append(updates, authz.Touch(authz.Relationship{Relation: authz.Role.Member, ResourceID: "s1_everyone", Subject: authz.Userset(authz.Server.Member, "s1")}))
	for _, r := range authz.RoleGrants("s1", "s1_everyone", authz.FlagsOf(authz.FlagChangeNickname)) {
		updates = append(updates, authz.Touch(r))
	}
	at, err := c.Write(t.Context(), updates)
	if err != nil {
		t.Fatal(err)
	}
	nick := authz.Check{Subject: authz.UserSubject("bob"), Permission: authz.Server.ChangeNickname, ResourceID: "s1"}
	if d, err := c.Check(t.Context(), nick, authz.AtLeastAsFresh(at)); err != nil || d.Allowed {
		t.Fatalf("timed-out bob changes his nickname: %+v %v", d, err)
	}
	// PostgreSQL's revision heartbeat moves the head revision, so even a
	// fully consistent check sees the expiry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := c.Check(t.Context(), nick, authz.FullyConsistent())
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's timeout did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same database: the graph is still there, the schema unchanged.
	srv, err = inprocess.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res, err := srv.Client().EnsureSchema(t.Context(), authz.SchemaText)
	if err != nil || res.Written {
		t.Errorf("schema rewritten on restart: %+v %v", res, err)
	}
	admin := authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Server.Administrator, ResourceID: "s1"}
	if d, err := srv.Client().Check(t.Context(), admin, authz.FullyConsistent()); err != nil || !d.Allowed {
		t.Errorf("after restart the owner is not administrator: %+v %v", d, err)
	}
}

// TestTCPListenerNeedsKey serves the gRPC API on a port, as `beep` does, and
// checks that a remote client needs the preshared key.
func TestTCPListenerNeedsKey(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{GRPCAddr: "127.0.0.1:0", Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Addr() == "" {
		t.Fatal("no address")
	}
	good, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr(), PresharedKey: srv.PresharedKey(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	at, err := good.Write(t.Context(), owner("s1", "ann"))
	if err != nil {
		t.Fatal(err)
	}
	admin := authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Server.Administrator, ResourceID: "s1"}
	if d, err := good.Check(t.Context(), admin, authz.AtLeastAsFresh(at)); err != nil || !d.Allowed {
		t.Fatalf("remote check: %+v %v", d, err)
	}

	bad, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr(), PresharedKey: "wrong", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	d, err := bad.Check(t.Context(), admin, authz.AtLeastAsFresh(at))
	if err == nil || d.Allowed {
		t.Fatalf("wrong key: %+v %v, want an error", d, err)
	}
	if errors.Is(err, authz.ErrDenied) {
		t.Errorf("a wrong key is not a denial: %v", err)
	}

	if _, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr()}); err == nil {
		t.Error("Dial without a key succeeded")
	}
}

func TestUnknownEngine(t *testing.T) {
	if _, err := inprocess.Start(t.Context(), inprocess.Config{Engine: "cassandra"}); err == nil {
		t.Fatal("unknown engine accepted")
	}
	if _, err := inprocess.Start(t.Context(), inprocess.Config{Engine: inprocess.Postgres}); err == nil {
		t.Fatal("postgres without a URI accepted")
	}
}
