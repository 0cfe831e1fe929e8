package oidcprovider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/beepchat/beep/internal/oidcprovider"
)

type users map[string]string // username -> password

func (u users) Authenticate(_ context.Context, username, password string) (oidcprovider.Claims, error) {
	if p, ok := u[username]; !ok || p != password {
		return oidcprovider.Claims{}, oidcprovider.ErrBadCredentials
	}
	return oidcprovider.Claims{Subject: "uid-" + username, Email: username + "@polytech.example", EmailVerified: true, Username: username}, nil
}

const redirect = "http://relying.party/callback"

func start(t *testing.T) (*oidc.Provider, *oauth2.Config) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p, err := oidcprovider.New(oidcprovider.Config{Issuer: srv.URL + "/idp", Title: "Polytech", Authenticator: users{"alice": "s3cret"},
		Clients: []oidcprovider.Client{{ID: "kratos", Secret: "kratos-secret", RedirectURIs: []string{redirect}}}})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/idp/", http.StripPrefix("/idp", p.Handler()))
	discovered, err := oidc.NewProvider(t.Context(), srv.URL+"/idp")
	if err != nil {
		t.Fatal(err)
	}
	return discovered, &oauth2.Config{ClientID: "kratos", ClientSecret: "kratos-secret", Endpoint: discovered.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signIn posts the login form of an authorization URL; it returns the
// response (a redirect to the client on success).
func signIn(t *testing.T, authURL, username, password string) *http.Response {
	t.Helper()
	u, _ := url.Parse(authURL)
	page, err := http.Get(authURL)
	if err != nil || page.StatusCode != http.StatusOK {
		t.Fatalf("the sign-in page: %v %v", page.Status, err)
	}
	page.Body.Close()
	form := u.Query()
	form.Set("username", username)
	form.Set("password", password)
	u.RawQuery = ""
	resp, err := noRedirects.PostForm(u.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestAuthorizationCodeFlow(t *testing.T) {
	provider, conf := start(t)
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st4te", oidc.Nonce("n0nce"), oauth2.S256ChallengeOption(verifier))

	if resp := signIn(t, authURL, "alice", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %s", resp.Status)
	}
	resp := signIn(t, authURL, "alice", "s3cret")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("signing in: %s", resp.Status)
	}
	back, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(back.String(), redirect) || back.Query().Get("state") != "st4te" {
		t.Fatalf("redirected to %s", back)
	}
	code := back.Query().Get("code")

	if _, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption("not-the-verifier")); err == nil {
		t.Fatal("a wrong PKCE verifier got tokens")
	}
	// The failed attempt used the code up.
	if _, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a code worked twice")
	}

	// Again, properly.
	resp = signIn(t, authURL, "alice", "s3cret")
	back, _ = url.Parse(resp.Header.Get("Location"))
	tok, err := conf.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idToken, err := provider.Verifier(&oidc.Config{ClientID: "kratos"}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims oidcprovider.Claims
	if err := idToken.Claims(&claims); err != nil || claims.Subject != "uid-alice" || claims.Email != "alice@polytech.example" || idToken.Nonce != "n0nce" {
		t.Fatalf("ID token: %+v nonce %q (%v)", claims, idToken.Nonce, err)
	}
	info, err := provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != "uid-alice" {
		t.Fatalf("userinfo: %+v %v", info, err)
	}

	// A client with a wrong secret gets nothing.
	resp = signIn(t, authURL, "alice", "s3cret")
	back, _ = url.Parse(resp.Header.Get("Location"))
	bad := *conf
	bad.ClientSecret = "guess"
	if _, err := bad.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a wrong client secret got tokens")
	}
}

func TestRefusesUnknownRedirects(t *testing.T) {
	_, conf := start(t)
	evil := *conf
	evil.RedirectURL = "https://evil.example/steal"
	resp, err := http.Get(evil.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an unregistered redirect URI: %s", resp.Status)
	}
}
