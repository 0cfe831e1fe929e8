package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/beepchat/beep/internal/oidcprovider"
	"github.com/beepchat/beep/services/ldapbridge/ldaptest"
)

// browser is an HTTP client with cookies that does not follow redirects,
// so that each hop of a sign-in is seen.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func hop(t *testing.T, c *http.Client, req *http.Request, want int) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d\n%s", req.Method, req.URL, resp.Status, want, body)
	}
	return resp, string(body)
}

func browse(t *testing.T, c *http.Client, u string, want int) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return hop(t, c, req, want)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, want int) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return hop(t, c, req, want)
}

// TestSignInWithPolytech: a Polytech person signs in through Kratos' browser
// flow, Kratos sends them to Beep's LDAP bridge, the directory checks their
// password, and they come back with a Kratos session that the gateway
// accepts. A wrong password stays at the bridge.
func TestSignInWithPolytech(t *testing.T) {
	bin := kratosBinary(t)
	ldapURL := ldaptest.Start(t, ldaptest.Person{UID: "alice", Password: "s3cret", Mail: "alice@polytech.example", Name: "Alice Martin"})
	inst, logs, stop := start(t, isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s",
		"-ldap-url", ldapURL, "-ldap-bind-dn", ldaptest.SearchDN, "-ldap-bind-password", ldaptest.SearchPassword, "-ldap-base-dn", ldaptest.BaseDN)...)
	defer stop()
	base := "http://" + inst.HTTPAddr
	c := browser(t)

	// A wrong password stays at the bridge.
	authorize := startProviderSignIn(t, c, base, "polytech")
	if !strings.HasPrefix(authorize, base+"/polytech/authorize?") {
		t.Fatalf("Kratos sent the browser to %s, not to the bridge\n%s", authorize, logs)
	}
	providerLogin(t, c, authorize, "alice", "guess", http.StatusUnauthorized)
	finishProviderSignIn(t, c, base, "polytech", providerLogin(t, c, authorize, "alice", "s3cret", http.StatusFound), logs)

	// The session cookie works at the gateway.
	req, _ := http.NewRequest(http.MethodGet, base+"/sessions/whoami", nil)
	_, who := hop(t, c, req, http.StatusOK)
	if !strings.Contains(who, `"email":"alice@polytech.example"`) || !strings.Contains(who, `"username":"alice"`) {
		t.Fatalf("whoami: %s", who)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/beep.community.v1.CommunityService/CreateServer", strings.NewReader(`{"name":"Polytech CS"}`))
	req.Header.Set("Content-Type", "application/json")
	_, created := hop(t, c, req, http.StatusOK)
	if !strings.Contains(created, `"name":"Polytech CS"`) {
		t.Fatalf("CreateServer with the session cookie: %s", created)
	}
}

// startProviderSignIn starts Kratos' browser login flow and chooses the
// provider; it returns where Kratos sends the browser (the provider's
// authorization URL).
func startProviderSignIn(t *testing.T, c *http.Client, base, provider string) string {
	t.Helper()
	resp, _ := browse(t, c, base+"/self-service/login/browser", http.StatusSeeOther)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	_, body := browse(t, c, base+"/self-service/login/flows?id="+loc.Query().Get("flow"), http.StatusOK)
	action, csrf := flowForm(t, body)
	form := url.Values{"provider": {provider}, "csrf_token": {csrf}}
	resp, _ = postForm(t, c, action, form, http.StatusSeeOther)
	return resp.Header.Get("Location")
}

// providerLogin fills in the provider's sign-in page (internal/oidcprovider)
// and returns where it sends the browser ("" unless it redirects).
func providerLogin(t *testing.T, c *http.Client, authorize, username, password string, want int) string {
	t.Helper()
	_, page := browse(t, c, authorize, http.StatusOK)
	form := url.Values{"username": {username}, "password": {password}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	u, _ := url.Parse(authorize)
	u.RawQuery = ""
	resp, _ := postForm(t, c, u.String(), form, want)
	return resp.Header.Get("Location")
}

// finishProviderSignIn follows the provider's redirect back to Kratos,
// which signs the browser in.
func finishProviderSignIn(t *testing.T, c *http.Client, base, provider, callback string, logs *logBuffer) {
	t.Helper()
	if !strings.HasPrefix(callback, base+"/self-service/methods/oidc/callback/"+provider+"?") {
		t.Fatalf("the provider sent the browser to %s", callback)
	}
	resp, _ := browse(t, c, callback, http.StatusSeeOther)
	if strings.Contains(resp.Header.Get("Location"), "error") {
		t.Fatalf("Kratos refused the sign-in: %s\n%s", resp.Header.Get("Location"), logs)
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

// fakeGoogle is a stand-in for Google: an OIDC provider with one account.
// googleStandIn is an OIDC issuer standing in for Google, with one client
// (clientID, secret "google-secret") whose callback is Kratos' at base.
func googleStandIn(t *testing.T, base, clientID string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	google := httptest.NewServer(mux)
	t.Cleanup(google.Close)
	provider, err := oidcprovider.New(oidcprovider.Config{Issuer: google.URL, Title: "Google", Authenticator: fakeGoogle{},
		Clients: []oidcprovider.Client{{ID: clientID, Secret: "google-secret",
			RedirectURIs: []string{base + "/self-service/methods/oidc/callback/google"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", provider.Handler())
	return google
}

type fakeGoogle struct{}

func (fakeGoogle) Authenticate(_ context.Context, username, password string) (oidcprovider.Claims, error) {
	if username != "bob@gmail.example" || password != "g00gle" {
		return oidcprovider.Claims{}, oidcprovider.ErrBadCredentials
	}
	return oidcprovider.Claims{Subject: "1098765", Email: username, EmailVerified: true, Name: "Bob", Username: "bob"}, nil
}

// TestSignInWithGoogle: the same browser flow with Google (a stand-in
// issuer on its own port, as Google is to Beep); Kratos creates the
// identity from Google's claims and the session works at the gateway.
func TestSignInWithGoogle(t *testing.T) {
	bin := kratosBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	google := googleStandIn(t, base, "beep.apps.googleusercontent.example")
	inst, logs, stop := start(t, append(isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s",
		"-google-issuer", google.URL, "-google-client-id", "beep.apps.googleusercontent.example", "-google-client-secret", "google-secret"),
		"-http-addr", addr)...)
	defer stop()
	if inst.HTTPAddr != addr {
		t.Fatalf("listening on %s, want %s", inst.HTTPAddr, addr)
	}
	c := browser(t)
	authorize := startProviderSignIn(t, c, base, "google")
	if !strings.HasPrefix(authorize, google.URL+"/authorize?") {
		t.Fatalf("Kratos sent the browser to %s, not to Google\n%s", authorize, logs)
	}
	finishProviderSignIn(t, c, base, "google", providerLogin(t, c, authorize, "bob@gmail.example", "g00gle", http.StatusFound), logs)
	req, _ := http.NewRequest(http.MethodGet, base+"/sessions/whoami", nil)
	_, who := hop(t, c, req, http.StatusOK)
	if !strings.Contains(who, `"email":"bob@gmail.example"`) {
		t.Fatalf("whoami: %s", who)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/beep.community.v1.CommunityService/ListMyServers", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	hop(t, c, req, http.StatusOK)
}

// TestLinkPolytechToAGoogleAccount: someone signed in with Google links
// their Polytech account in Kratos' settings flow; later, signing in with
// Polytech alone (another browser) gives the same identity. Unlinked, it
// does not any more.
func TestLinkPolytechToAGoogleAccount(t *testing.T) {
	bin := kratosBinary(t)
	ldapURL := ldaptest.Start(t, ldaptest.Person{UID: "bob", Password: "p0lytech", Mail: "bob@polytech.example", Name: "Bob"})
	addr := freeAddr(t)
	base := "http://" + addr
	google := googleStandIn(t, base, "beep-google")
	_, logs, stop := start(t, append(isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s",
		"-google-issuer", google.URL, "-google-client-id", "beep-google", "-google-client-secret", "google-secret",
		"-ldap-url", ldapURL, "-ldap-bind-dn", ldaptest.SearchDN, "-ldap-bind-password", ldaptest.SearchPassword, "-ldap-base-dn", ldaptest.BaseDN),
		"-http-addr", addr)...)
	defer stop()
	first := browser(t)
	finishProviderSignIn(t, first, base, "google", providerLogin(t, first, startProviderSignIn(t, first, base, "google"), "bob@gmail.example", "g00gle", http.StatusFound), logs)
	id := whoami(t, first, base)
	linkProvider(t, first, base, "polytech", "bob", "p0lytech", logs)

	// Another browser, Polytech only: the same identity.
	second := browser(t)
	finishProviderSignIn(t, second, base, "polytech", providerLogin(t, second, startProviderSignIn(t, second, base, "polytech"), "bob", "p0lytech", http.StatusFound), logs)
	if got := whoami(t, second, base); got != id {
		t.Fatalf("signing in with the linked Polytech account gave identity %s, want %s", got, id)
	}

	// Unlinked, the Polytech account is no longer a way into this identity:
	// signing in with it makes a new one.
	if loc := settings(t, first, base, "unlink", "polytech").Header.Get("Location"); strings.Contains(loc, "error") {
		t.Fatalf("unlinking: %s\n%s", loc, logs)
	}
	third := browser(t)
	finishProviderSignIn(t, third, base, "polytech", providerLogin(t, third, startProviderSignIn(t, third, base, "polytech"), "bob", "p0lytech", http.StatusFound), logs)
	if got := whoami(t, third, base); got == id {
		t.Fatalf("after unlinking, Polytech still signs in as %s", id)
	}
	// Google still works for the first identity.
	fourth := browser(t)
	finishProviderSignIn(t, fourth, base, "google", providerLogin(t, fourth, startProviderSignIn(t, fourth, base, "google"), "bob@gmail.example", "g00gle", http.StatusFound), logs)
	if got := whoami(t, fourth, base); got != id {
		t.Fatalf("Google signs in as %s after the unlink, want %s", got, id)
	}
}

// flowForm reads a Kratos flow's form action and CSRF token.
func flowForm(t *testing.T, body string) (action, csrf string) {
	t.Helper()
	var flow struct {
		UI struct {
			Action string `json:"action"`
			Nodes  []struct {
				Attributes struct {
					Name  string `json:"name"`
					Value any    `json:"value"`
				} `json:"attributes"`
			} `json:"nodes"`
		} `json:"ui"`
	}
	if err := json.Unmarshal([]byte(body), &flow); err != nil {
		t.Fatal(err)
	}
	for _, n := range flow.UI.Nodes {
		if n.Attributes.Name == "csrf_token" {
			csrf, _ = n.Attributes.Value.(string)
		}
	}
	return flow.UI.Action, csrf
}

// TestFirstGoogleSignInLinksAnExistingAccount: someone who registered with
// a password later signs in with Google using the same email. Kratos does
// not make a second account: it asks for the existing password once, then
// links Google, so the next Google sign-in is the same identity.
func TestFirstGoogleSignInLinksAnExistingAccount(t *testing.T) {
	bin := kratosBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	google := googleStandIn(t, base, "beep-google")
	_, logs, stop := start(t, append(isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s",
		"-google-issuer", google.URL, "-google-client-id", "beep-google", "-google-client-secret", "google-secret"),
		"-http-addr", addr)...)
	defer stop()

	// A password account with Bob's Gmail address.
	code, flow := jsonCall(t, http.MethodGet, base+"/self-service/registration/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("registration flow: %d", code)
	}
	const password = "a long and private passphrase"
	code, registered := jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{
		"method": "password", "password": password, "traits": map[string]any{"email": "bob@gmail.example", "username": "bob"}})
	if code != http.StatusOK {
		t.Fatalf("registration: %d %v", code, registered)
	}
	id := registered["identity"].(map[string]any)["id"].(string)

	// Google with the same address: Kratos asks to prove the password.
	c := browser(t)
	authorize := startProviderSignIn(t, c, base, "google")
	callback := providerLogin(t, c, authorize, "bob@gmail.example", "g00gle", http.StatusFound)
	resp, _ := browse(t, c, callback, http.StatusSeeOther)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	flowID := loc.Query().Get("flow")
	if flowID == "" {
		t.Fatalf("Kratos did not ask for the existing credential: redirected to %s\n%s", loc, logs)
	}
	_, body := browse(t, c, base+"/self-service/login/flows?id="+flowID, http.StatusOK)
	action, csrf := flowForm(t, body)
	postForm(t, c, action, url.Values{"csrf_token": {csrf}, "method": {"password"}, "identifier": {"bob@gmail.example"}, "password": {password}}, http.StatusSeeOther)

	// Google alone, in another browser: the same identity.
	other := browser(t)
	finishProviderSignIn(t, other, base, "google", providerLogin(t, other, startProviderSignIn(t, other, base, "google"), "bob@gmail.example", "g00gle", http.StatusFound), logs)
	req, _ := http.NewRequest(http.MethodGet, base+"/sessions/whoami", nil)
	_, who := hop(t, other, req, http.StatusOK)
	if !strings.Contains(who, `"id":"`+id+`"`) {
		t.Fatalf("Google sign-in after linking is not the password account %s: %s", id, who)
	}
}

// TestNativeAppSignsInWithGoogle is the native flow of a federated sign-in:
// the app starts an API login flow asking for a session token exchange
// code, the system browser does the provider's part and returns to the app
// with a second code, and the app exchanges both for a session token that
// the gateway accepts.
func TestNativeAppSignsInWithGoogle(t *testing.T) {
	bin := kratosBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	google := googleStandIn(t, base, "beep-google")
	_, logs, stop := start(t, append(isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s",
		"-google-issuer", google.URL, "-google-client-id", "beep-google", "-google-client-secret", "google-secret"),
		"-http-addr", addr)...)
	defer stop()

	// The app: an API login flow that will end with an exchange code.
	const returnTo = "beep://oauth/callback"
	code, flow := jsonCall(t, http.MethodGet, base+"/self-service/login/api?return_session_token_exchange_code=true&return_to="+url.QueryEscape(returnTo), nil, nil)
	if code != http.StatusOK {
		t.Fatalf("login flow: %d %v", code, flow)
	}
	initCode, _ := flow["session_token_exchange_code"].(string)
	if initCode == "" {
		t.Fatalf("the flow has no exchange code: %v", flow)
	}
	code, answer := jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{"method": "oidc", "provider": "google"})
	authorize, _ := answer["redirect_browser_to"].(string)
	if code != http.StatusUnprocessableEntity || !strings.HasPrefix(authorize, google.URL+"/authorize?") {
		t.Fatalf("the app is not sent to Google: %d %v", code, answer)
	}

	// The system browser: Google, then Kratos, which returns to the app.
	browser := browser(t)
	callback := providerLogin(t, browser, authorize, "bob@gmail.example", "g00gle", http.StatusFound)
	if !strings.HasPrefix(callback, base+"/self-service/methods/oidc/callback/google?") {
		t.Fatalf("Google sent the browser to %s", callback)
	}
	resp, _ := browse(t, browser, callback, http.StatusSeeOther)
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(back.String(), returnTo+"?") || back.Query().Get("code") == "" {
		t.Fatalf("Kratos did not return to the app with a code: %s\n%s", resp.Header.Get("Location"), logs)
	}

	// The app exchanges the two codes for a session token.
	code, exchanged := jsonCall(t, http.MethodGet, base+"/sessions/token-exchange?init_code="+url.QueryEscape(initCode)+"&return_to_code="+url.QueryEscape(back.Query().Get("code")), nil, nil)
	token, _ := exchanged["session_token"].(string)
	if code != http.StatusOK || token == "" {
		t.Fatalf("token exchange: %d %v", code, exchanged)
	}
	if code, out := jsonCall(t, http.MethodPost, base+"/beep.community.v1.CommunityService/ListMyServers",
		http.Header{"Authorization": {"Bearer " + token}}, map[string]any{}); code != http.StatusOK {
		t.Fatalf("the exchanged session at the gateway: %d %v", code, out)
	}
}
