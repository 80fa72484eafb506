package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir, as PEM files, and returns their paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "probe server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// startTLSProbeServer runs portfwd probe-server with --tls-cert and
// --tls-key on loopback until the test ends, and returns its address.
func startTLSProbeServer(t *testing.T, certFile, keyFile, tokenFile string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	f := newFactory(IOStreams{Out: io.Discard, ErrOut: pw})
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"probe-server", "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "--token-file", tokenFile}, f)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || !strings.HasSuffix(lines.Text(), " (HTTPS)") {
		t.Fatalf("probe-server said %q; want where it listens, over HTTPS", lines.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return strings.TrimSuffix(strings.TrimPrefix(lines.Text(), "probe server listening on "), " (HTTPS)")
}

// checkOutside runs portfwd check -o json with args against an in-memory
// gateway and returns what its outside layer said.
func checkOutside(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	f := newFactory(IOStreams{Out: &out, ErrOut: io.Discard})
	f.Openers = func(openOptions) []forward.Opener {
		return []forward.Opener{{Name: "memory", Detect: true, Open: func(context.Context, bool) (forward.Backend, error) {
			return forwardtest.NewMemory(netip.MustParseAddr("127.0.0.1")), nil
		}}}
	}
	f.Memory = nil
	args = append([]string{"check", "-o", "json", "--state-dir", t.TempDir()}, args...)
	run(context.Background(), args, f)
	var doc checkDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || len(doc.Rules) != 1 {
		t.Fatalf("check %v printed %q (%v)", args, out.String(), err)
	}
	for _, l := range doc.Rules[0].Layers {
		if l.Layer == "outside" {
			return l.Message
		}
	}
	t.Fatalf("check %v: no outside layer in %+v", args, doc.Rules[0].Layers)
	return ""
}

// TestCheckViaTLS: probe-server serves HTTPS with --tls-cert/--tls-key,
// and check --via https://… reaches it, trusting a self-signed certificate
// with --via-ca and sending the token read from --token-file. The server
// runs on loopback, which it never probes, so its answer is a refusal of
// the target — proof the request got through TLS and the token.
func TestCheckViaTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	tokenFile := writeToken(t, "s3cret\n")
	via := "https://" + startTLSProbeServer(t, certFile, keyFile, tokenFile)

	if msg := checkOutside(t, "--via", via, "--token-file", tokenFile, "tcp/25565"); !strings.Contains(msg, "certificate") {
		t.Errorf("without --via-ca: outside said %q; want an untrusted certificate", msg)
	}
	msg := checkOutside(t, "--via", via, "--via-ca", certFile, "--token-file", tokenFile, "tcp/25565")
	if !strings.Contains(msg, "does not probe 127.0.0.1, a loopback address") {
		t.Errorf("with --via-ca: outside said %q; want the server's answer", msg)
	}
}

// TestVantageToken: the probe server's token is --token or --token-file,
// else $PORTFWD_PROBE_TOKEN, else the config's unless --via replaced its
// URL; --via-ca must hold a certificate.
func TestVantageToken(t *testing.T) {
	file := writeToken(t, "from-file\n")
	cfgServer := forward.ProbeServer{URL: "https://vps.example:8443", Token: "from-config"}
	env := func(v string) func(string) string { return func(string) string { return v } }
	for _, tt := range []struct {
		name string
		v    vantageFlags
		want string
	}{
		{"config", vantageFlags{}, "from-config"},
		{"env over config", vantageFlags{getenv: env("from-env")}, "from-env"},
		{"file over env", vantageFlags{TokenFile: file, getenv: env("from-env")}, "from-file"},
		{"flag over env", vantageFlags{Token: "from-flag", getenv: env("from-env")}, "from-flag"},
		{"--via drops the config's", vantageFlags{Via: []string{"https://other.example:8443"}}, ""},
		{"--via with env", vantageFlags{Via: []string{"https://other.example:8443"}, getenv: env("from-env")}, "from-env"},
	} {
		rv, err := tt.v.vantage(cfgServer)
		if err != nil || rv.Token != tt.want {
			t.Errorf("%s: token %q, %v; want %q", tt.name, rv.Token, err, tt.want)
		}
	}
	if _, err := (vantageFlags{Token: "a", TokenFile: file}).vantage(cfgServer); err == nil {
		t.Error("--token and --token-file: no error")
	}
	if _, err := (vantageFlags{CA: file}).vantage(cfgServer); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("--via-ca of a non-PEM file: %v", err)
	}
}
