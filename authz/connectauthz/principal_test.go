package connectauthz

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
)

func TestSigner(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	if _, err := NewSigner(key[:MinKeyBytes-1]); err == nil {
		t.Fatal("a short key was accepted")
	}
	at := time.Unix(1_800_000_000, 0)
	s, _ := NewSigner(key)
	s.now = func() time.Time { return at }
	other, _ := NewSigner([]byte(strings.Repeat("o", MinKeyBytes)))
	other.now = s.now
	good := s.Sign(authz.Principal{UserID: "ann.b@example.org"})
	tampered := strings.Replace(good, base64Of("ann.b@example.org"), base64Of("eve"), 1)

	ann := authz.Principal{UserID: "ann.b@example.org"}
	service := authz.ServicePrincipal("user")
	// A user's signature does not make a service of them.
	promoted := strings.Replace(good, base64Of("ann.b@example.org")+".", base64Of("ann.b@example.org")+"."+base64Of("user"), 1)
	tests := []struct {
		name   string
		value  string
		verify *Signer
		after  time.Duration
		want   authz.Principal // the zero principal: refused
	}{
		{"good", good, s, 0, ann},
		{"good until it expires", good, s, principalTTL, ann},
		{"expired", good, s, principalTTL + time.Second, authz.Principal{}},
		{"another user's name, same signature", tampered, s, 0, authz.Principal{}},
		{"signed with another key", good, other, 0, authz.Principal{}},
		{"no signature", strings.Join(strings.Split(good, ".")[:3], "."), s, 0, authz.Principal{}},
		{"garbage", "x", s, 0, authz.Principal{}},
		{"empty user", s.Sign(authz.Principal{}), s, 0, authz.Principal{}},
		{"a service on its own behalf", s.Sign(service), s, 0, service},
		{"a user and a service at once", s.Sign(authz.Principal{UserID: "ann", Service: "user"}), s, 0, authz.Principal{}},
		{"a user's signature with a service added", promoted, s, 0, authz.Principal{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.verify.now = func() time.Time { return at.Add(tt.after) }
			defer func() { tt.verify.now = func() time.Time { return at } }()
			p, err := tt.verify.Verify(tt.value)
			if tt.want == (authz.Principal{}) {
				if err == nil {
					t.Fatalf("accepted as %+v", p)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("got %+v, %v; want %+v", p, err, tt.want)
			}
		})
	}
}

func base64Of(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
