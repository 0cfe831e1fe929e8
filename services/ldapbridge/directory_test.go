package ldapbridge_test

import (
	"errors"
	"testing"

	"github.com/beepchat/beep/internal/oidcprovider"
	"github.com/beepchat/beep/services/ldapbridge"
	"github.com/beepchat/beep/services/ldapbridge/ldaptest"
)

func TestAuthenticate(t *testing.T) {
	url := ldaptest.Start(t, ldaptest.Person{UID: "alice", Password: "s3cret", Mail: "alice@polytech.example", Name: "Alice Martin"})
	dir, err := ldapbridge.New(ldapbridge.Config{URL: url, BindDN: ldaptest.SearchDN, BindPassword: ldaptest.SearchPassword, BaseDN: ldaptest.BaseDN})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := dir.Authenticate(t.Context(), "alice", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	want := oidcprovider.Claims{Subject: "alice", Email: "alice@polytech.example", EmailVerified: true, Name: "Alice Martin", Username: "alice"}
	if claims != want {
		t.Fatalf("claims %+v, want %+v", claims, want)
	}
	for name, creds := range map[string][2]string{
		"wrong password":             {"alice", "guess"},
		"empty password (anonymous)": {"alice", ""},
		"unknown person":             {"bob", "s3cret"},
		"filter injection":           {"*", "s3cret"},
		"filter injection 2":         {"alice)(uid=*", "s3cret"},
	} {
		if _, err := dir.Authenticate(t.Context(), creds[0], creds[1]); !errors.Is(err, oidcprovider.ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", name, err)
		}
	}
	// A directory that is down is a failure, not a wrong password.
	down, _ := ldapbridge.New(ldapbridge.Config{URL: "ldap://127.0.0.1:1", BaseDN: ldaptest.BaseDN})
	if _, err := down.Authenticate(t.Context(), "alice", "s3cret"); err == nil || errors.Is(err, oidcprovider.ErrBadCredentials) {
		t.Errorf("directory down: %v", err)
	}
}
