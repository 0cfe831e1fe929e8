package inprocess_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "beep test spicedb"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestRemoteOverTLS is the distributed mode's connection: TLS and the
// preshared key. A client that does not trust the certificate is refused.
func TestRemoteOverTLS(t *testing.T) {
	cert, key := selfSigned(t)
	srv, err := inprocess.Start(t.Context(), inprocess.Config{GRPCAddr: "127.0.0.1:0", TLSCertFile: cert, TLSKeyFile: key, Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	c, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr(), PresharedKey: srv.PresharedKey(), CACertFile: cert})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	at, err := c.Write(t.Context(), owner("s1", "ann"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Require(t.Context(), authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Server.ManageServer, ResourceID: "s1"}, authz.AtLeastAsFresh(at)); err != nil {
		t.Fatal(err)
	}

	// System roots do not trust the self-signed certificate.
	untrusting, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr(), PresharedKey: srv.PresharedKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	if _, err := untrusting.ReadSchema(t.Context()); err == nil {
		t.Fatal("a client that does not trust the certificate got an answer")
	}
	// A plaintext client cannot talk to the TLS port.
	plain, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr(), PresharedKey: srv.PresharedKey(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.ReadSchema(t.Context()); err == nil {
		t.Fatal("a plaintext client got an answer from the TLS port")
	}
}
