// Package ldaptest is an in-process LDAP directory for tests (gldap): a
// search account and people with passwords.
package ldaptest

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
)

// BaseDN is where the people are.
const BaseDN = "ou=people,dc=polytech,dc=example"

// Search account.
const (
	SearchDN       = "cn=beep,dc=polytech,dc=example"
	SearchPassword = "search-secret"
)

// Person is an entry of the directory.
type Person struct {
	UID, Password, Mail, Name string
}

// DN is the person's distinguished name.
func (p Person) DN() string { return "uid=" + p.UID + "," + BaseDN }

// Start serves people on a free loopback port and returns its ldap:// URL.
func Start(t testing.TB, people ...Person) string {
	t.Helper()
	var mu sync.Mutex
	bound := map[int]string{} // connection -> DN
	srv, err := gldap.NewServer(gldap.WithLogger(hclog.New(&hclog.LoggerOptions{Output: io.Discard})))
	if err != nil {
		t.Fatal(err)
	}
	mux, _ := gldap.NewMux()
	_ = mux.Bind(func(w *gldap.ResponseWriter, r *gldap.Request) {
		resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
		defer func() { _ = w.Write(resp) }()
		m, err := r.GetSimpleBindMessage()
		if err != nil {
			return
		}
		ok := m.UserName == SearchDN && string(m.Password) == SearchPassword
		for _, p := range people {
			ok = ok || (m.UserName == p.DN() && string(m.Password) == p.Password)
		}
		if ok {
			mu.Lock()
			bound[r.ConnectionID()] = m.UserName
			mu.Unlock()
			resp.SetResultCode(gldap.ResultSuccess)
		}
	})
	_ = mux.Search(func(w *gldap.ResponseWriter, r *gldap.Request) {
		resp := r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess))
		defer func() { _ = w.Write(resp) }()
		mu.Lock()
		who := bound[r.ConnectionID()]
		mu.Unlock()
		if who != SearchDN {
			resp.SetResultCode(gldap.ResultInsufficientAccessRights)
			return
		}
		m, err := r.GetSearchMessage()
		if err != nil || m.BaseDN != BaseDN {
			resp.SetResultCode(gldap.ResultNoSuchObject)
			return
		}
		for _, p := range people {
			if m.Filter == "(uid="+p.UID+")" {
				_ = w.Write(r.NewSearchResponseEntry(p.DN(), gldap.WithAttributes(map[string][]string{
					"uid": {p.UID}, "mail": {p.Mail}, "cn": {p.Name}, "objectClass": {"inetOrgPerson"},
				})))
			}
		}
	})
	_ = srv.Router(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	go func() { _ = srv.Run(addr) }()
	t.Cleanup(func() { _ = srv.Stop() })
	for deadline := time.Now().Add(5 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the test directory did not start")
		}
	}
	return fmt.Sprintf("ldap://%s", addr)
}
