// Package oidcprovider is a small OpenID Connect provider: the
// authorization-code flow (with PKCE), RS256 ID tokens, discovery, keys and
// userinfo, over any way of checking a username and password. Beep serves
// it in front of LDAP (services/ldapbridge), so that Kratos, which speaks
// OIDC but not LDAP, can sign people in with their directory account.
//
// Codes and access tokens live in memory: run one instance (or route a
// client's requests to the same one).
package oidcprovider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ErrBadCredentials is what an Authenticator returns for a wrong username
// or password (anything else is a failure of the directory).
var ErrBadCredentials = errors.New("oidcprovider: wrong username or password")

// Claims are what the provider says about a signed-in user.
type Claims struct {
	Subject       string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	Username      string `json:"preferred_username,omitempty"`
}

// Authenticator checks a username and password.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (Claims, error)
}

// Client is a relying party (Kratos).
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Config configures the provider.
type Config struct {
	// Issuer is the URL the provider is served at (its handler's root).
	Issuer string
	// Title names the sign-in page ("Polytech").
	Title         string
	Clients       []Client
	Authenticator Authenticator
	// Key signs ID tokens; one is made when nil.
	Key *rsa.PrivateKey
}

const (
	codeTTL  = time.Minute
	tokenTTL = 5 * time.Minute
)

// Provider serves the OIDC endpoints.
type Provider struct {
	cfg    Config
	signer jose.Signer
	keyID  string

	mu     sync.Mutex
	codes  map[string]grant
	tokens map[string]grant
}

// grant is an issued code or access token.
type grant struct {
	client, redirectURI, nonce, challenge string
	claims                                Claims
	until                                 time.Time
}

// New returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.Authenticator == nil || len(cfg.Clients) == 0 {
		return nil, errors.New("oidcprovider: an issuer, an authenticator and a client are required")
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	if cfg.Key == nil {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		cfg.Key = key
	}
	p := &Provider{cfg: cfg, keyID: random(8), codes: map[string]grant{}, tokens: map[string]grant{}}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: cfg.Key, KeyID: p.keyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	p.signer = signer
	return p, nil
}

// Handler serves the provider's endpoints below its issuer's path; mount
// it with that prefix stripped.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorizePage)
	mux.HandleFunc("POST /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	return mux
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.cfg.Issuer,
		"authorization_endpoint":                p.cfg.Issuer + "/authorize",
		"token_endpoint":                        p.cfg.Issuer + "/token",
		"userinfo_endpoint":                     p.cfg.Issuer + "/userinfo",
		"jwks_uri":                              p.cfg.Issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported":                      []string{"sub", "email", "email_verified", "name", "preferred_username"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.cfg.Key.PublicKey, KeyID: p.keyID, Algorithm: "RS256", Use: "sig"}}})
}

func (p *Provider) client(id string) (Client, bool) {
	i := slices.IndexFunc(p.cfg.Clients, func(c Client) bool { return c.ID == id })
	if i < 0 {
		return Client{}, false
	}
	return p.cfg.Clients[i], true
}

// authRequest is an authorization request's parameters.
type authRequest struct {
	ClientID, RedirectURI, State, Nonce, Scope, Challenge, ChallengeMethod string
}

func readAuthRequest(v url.Values) authRequest {
	return authRequest{ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"), State: v.Get("state"), Nonce: v.Get("nonce"),
		Scope: v.Get("scope"), Challenge: v.Get("code_challenge"), ChallengeMethod: v.Get("code_challenge_method")}
}

// check validates the request; errors before the redirect URI is known
// are shown, not redirected (no open redirects).
func (p *Provider) check(r authRequest, responseType string) error {
	c, ok := p.client(r.ClientID)
	if !ok || !slices.Contains(c.RedirectURIs, r.RedirectURI) {
		return errors.New("unknown client or redirect URI")
	}
	if responseType != "code" || !slices.Contains(strings.Fields(r.Scope), "openid") {
		return errors.New("only the authorization-code flow with the openid scope is supported")
	}
	if r.Challenge != "" && r.ChallengeMethod != "S256" {
		return errors.New("only S256 code challenges are supported")
	}
	return nil
}

var page = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in with {{.Title}}</title></head>
<body><main><h1>Sign in with {{.Title}}</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="authorize">
<label>Username <input name="username" autocomplete="username" required value="{{.Username}}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<button type="submit">Sign in</button>
</form></main></body></html>`))

func (p *Provider) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := p.check(readAuthRequest(q), q.Get("response_type")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.showPage(w, http.StatusOK, q, "", "")
}

func (p *Provider) showPage(w http.ResponseWriter, status int, q url.Values, username, problem string) {
	hidden := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "state", "nonce", "scope", "response_type", "code_challenge", "code_challenge_method"} {
		hidden[k] = q.Get(k)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = page.Execute(w, map[string]any{"Title": p.cfg.Title, "Hidden": hidden, "Username": username, "Error": problem})
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	req := readAuthRequest(r.PostForm)
	if err := p.check(req, r.PostForm.Get("response_type")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if username == "" || password == "" {
		p.showPage(w, http.StatusUnauthorized, r.PostForm, username, "Enter your username and password.")
		return
	}
	claims, err := p.cfg.Authenticator.Authenticate(r.Context(), username, password)
	if errors.Is(err, ErrBadCredentials) {
		p.showPage(w, http.StatusUnauthorized, r.PostForm, username, "Wrong username or password.")
		return
	}
	if err != nil {
		p.showPage(w, http.StatusServiceUnavailable, r.PostForm, username, "The directory cannot be reached; try again.")
		return
	}
	code := random(32)
	p.mu.Lock()
	p.sweep()
	p.codes[code] = grant{client: req.ClientID, redirectURI: req.RedirectURI, nonce: req.Nonce, challenge: req.Challenge, claims: claims, until: time.Now().Add(codeTTL)}
	p.mu.Unlock()
	to, _ := url.Parse(req.RedirectURI)
	q := to.Query()
	q.Set("code", code)
	if req.State != "" {
		q.Set("state", req.State)
	}
	to.RawQuery = q.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, known := p.client(id)
	if !known || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, "unsupported_grant_type")
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g, found := p.codes[code]
	delete(p.codes, code) // single use
	p.mu.Unlock()
	if !found || time.Now().After(g.until) || g.client != id || g.redirectURI != r.PostForm.Get("redirect_uri") {
		tokenError(w, "invalid_grant")
		return
	}
	if g.challenge != "" {
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			tokenError(w, "invalid_grant")
			return
		}
	}
	now := time.Now()
	idToken, err := p.sign(map[string]any{
		"iss": p.cfg.Issuer, "sub": g.claims.Subject, "aud": id, "iat": now.Unix(), "exp": now.Add(tokenTTL).Unix(),
		"nonce": g.nonce, "email": g.claims.Email, "email_verified": g.claims.EmailVerified, "name": g.claims.Name,
		"preferred_username": g.claims.Username,
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	access := random(32)
	p.mu.Lock()
	g.until = now.Add(tokenTTL)
	p.tokens[access] = g
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(tokenTTL.Seconds()), "id_token": idToken})
}

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	g, ok := p.tokens[token]
	p.mu.Unlock()
	if !ok || time.Now().After(g.until) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	writeJSON(w, http.StatusOK, g.claims)
}

func (p *Provider) sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// sweep drops expired codes and tokens (p.mu held).
func (p *Provider) sweep() {
	now := time.Now()
	for k, g := range p.codes {
		if now.After(g.until) {
			delete(p.codes, k)
		}
	}
	for k, g := range p.tokens {
		if now.After(g.until) {
			delete(p.tokens, k)
		}
	}
}

func tokenError(w http.ResponseWriter, code string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
