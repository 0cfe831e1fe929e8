// Package ldapbridge signs Polytech people in with their LDAP account
// through OIDC: Kratos has no LDAP (ory/kratos#274) but speaks OIDC, so Beep
// serves a small OIDC provider (internal/oidcprovider) whose password check
// is an LDAP search and bind. In production the same Kratos slot can point
// at Keycloak with LDAP user federation instead (see docs/identity.md).
package ldapbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/beepchat/beep/internal/oidcprovider"
)

// Config says how to find and check a person in the directory.
type Config struct {
	// URL is ldap://host:389 or ldaps://host:636.
	URL string
	// StartTLS upgrades an ldap:// connection before anything is sent.
	StartTLS bool
	// TLS configures ldaps:// and StartTLS (nil: system roots).
	TLS *tls.Config
	// BindDN and BindPassword are the account that searches (empty:
	// anonymous search).
	BindDN, BindPassword string
	// BaseDN is where people are searched.
	BaseDN string
	// UserFilter finds one person; {username} is replaced by the escaped
	// username. Default "(uid={username})".
	UserFilter string
	// The attributes mapped to claims: the subject (stable, default "uid";
	// "entryUUID" is better where available), email ("mail"), name ("cn"),
	// username ("uid").
	SubjectAttribute, EmailAttribute, NameAttribute, UsernameAttribute string
	// Timeout bounds each directory operation (default 5s).
	Timeout time.Duration
}

// Directory checks credentials against LDAP.
type Directory struct{ cfg Config }

var _ oidcprovider.Authenticator = (*Directory)(nil)

// New returns a directory with defaults filled in.
func New(cfg Config) (*Directory, error) {
	if cfg.URL == "" || cfg.BaseDN == "" {
		return nil, errors.New("ldapbridge: a URL and a base DN are required")
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&cfg.UserFilter, "(uid={username})")
	def(&cfg.SubjectAttribute, "uid")
	def(&cfg.EmailAttribute, "mail")
	def(&cfg.NameAttribute, "cn")
	def(&cfg.UsernameAttribute, "uid")
	if !strings.Contains(cfg.UserFilter, "{username}") {
		return nil, errors.New("ldapbridge: the user filter must contain {username}")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Directory{cfg: cfg}, nil
}

// Authenticate finds the person by username and binds as them with the
// password: the directory, not Beep, checks it.
func (d *Directory) Authenticate(ctx context.Context, username, password string) (oidcprovider.Claims, error) {
	// An empty password would be an unauthenticated bind, which LDAP
	// servers accept: never let it through.
	if username == "" || password == "" {
		return oidcprovider.Claims{}, oidcprovider.ErrBadCredentials
	}
	conn, err := d.dial(ctx)
	if err != nil {
		return oidcprovider.Claims{}, err
	}
	defer conn.Close()
	if d.cfg.BindDN != "" {
		if err := conn.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
			return oidcprovider.Claims{}, fmt.Errorf("ldapbridge: binding as the search account: %w", err)
		}
	}
	attrs := []string{d.cfg.SubjectAttribute, d.cfg.EmailAttribute, d.cfg.NameAttribute, d.cfg.UsernameAttribute}
	filter := strings.ReplaceAll(d.cfg.UserFilter, "{username}", ldap.EscapeFilter(username))
	found, err := conn.Search(ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
		int(d.cfg.Timeout.Seconds()), false, filter, attrs, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return oidcprovider.Claims{}, fmt.Errorf("ldapbridge: searching: %w", err)
	}
	if found == nil || len(found.Entries) != 1 {
		return oidcprovider.Claims{}, oidcprovider.ErrBadCredentials // none, or ambiguous
	}
	entry := found.Entries[0]
	if err := conn.Bind(entry.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return oidcprovider.Claims{}, oidcprovider.ErrBadCredentials
		}
		return oidcprovider.Claims{}, fmt.Errorf("ldapbridge: binding: %w", err)
	}
	claims := oidcprovider.Claims{
		Subject:  entry.GetAttributeValue(d.cfg.SubjectAttribute),
		Email:    entry.GetAttributeValue(d.cfg.EmailAttribute),
		Name:     entry.GetAttributeValue(d.cfg.NameAttribute),
		Username: entry.GetAttributeValue(d.cfg.UsernameAttribute),
	}
	// The directory is the institution's record of its addresses.
	claims.EmailVerified = claims.Email != ""
	if claims.Subject == "" {
		return oidcprovider.Claims{}, fmt.Errorf("ldapbridge: %s has no %s", entry.DN, d.cfg.SubjectAttribute)
	}
	return claims, nil
}

func (d *Directory) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	if deadline, ok := ctx.Deadline(); ok {
		dialer.Deadline = deadline
	}
	conn, err := ldap.DialURL(d.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.cfg.TLS))
	if err != nil {
		return nil, fmt.Errorf("ldapbridge: connecting to %s: %w", d.cfg.URL, err)
	}
	conn.SetTimeout(d.cfg.Timeout)
	if d.cfg.StartTLS {
		tlsConfig := d.cfg.TLS
		if tlsConfig == nil {
			host, _, _ := strings.Cut(strings.TrimPrefix(d.cfg.URL, "ldap://"), ":")
			tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := conn.StartTLS(tlsConfig); err != nil {
			conn.Close()
			return nil, fmt.Errorf("ldapbridge: StartTLS: %w", err)
		}
	}
	return conn, nil
}
