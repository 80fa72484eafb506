package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
	"github.com/spf13/cobra"
)

// probeOptions is everything probe needs, resolved from flags.
type probeOptions struct {
	Out     *printer
	Timeout time.Duration
	Target  string
	Kind    probe.Kind
}

func newCmdProbe(f *factory, runF func(context.Context, *probeOptions) error) *cobra.Command {
	opts := &probeOptions{}
	var kind string
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT",
		Short: "Probe one server from wherever this runs (the \"ask a friend\" mode)",
		Long: `probe speaks one server's own protocol to HOST:PORT and says whether it
answered, with what it said (name, players, version) and the round trip. Send
it to a friend outside your home: what they see is what the internet sees.

Kinds: ` + kindList() + `.`,
		Example: `  portfwd probe 203.0.113.7:25565 --kind minecraft-java
  portfwd probe my.home.example:19132 --kind minecraft-bedrock -o json`,
		Args: probeArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.Timeout, opts.Target, opts.Kind = f.out, f.Settings.Timeout, args[0], probe.Kind(kind)
			return runOr(cmd.Context(), runF, runProbe, opts)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "tcp", "probe kind: "+kindList())
	return cmd
}

// probeArgs wants the one HOST:PORT probe asks, and says so with an
// example (cobra's own words are "accepts 1 arg(s)").
func probeArgs(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		return nil
	}
	return fmt.Errorf("probe takes one HOST:PORT, the server to ask (got %d argument(s)), e.g. portfwd probe 203.0.113.7:25565 --kind minecraft-java", len(args))
}

// unknownKind is the error for a --kind probe does not know, with the
// kind it was probably meant to be.
func unknownKind(k probe.Kind) error {
	var names []string
	for _, known := range probe.Kinds() {
		names = append(names, string(known))
	}
	hint := ""
	if s := forward.Suggest(string(k), names); s != "" {
		hint = " (did you mean " + s + "?)"
	}
	return fmt.Errorf("--kind %q: no such probe kind%s; the kinds are %s", k, hint, kindList())
}

func kindList() string {
	var ks []string
	for _, k := range probe.Kinds() {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

type probeDoc struct {
	FormatVersion int         `json:"format_version"`
	Kind          string      `json:"kind"`
	Address       string      `json:"address"`
	Answered      bool        `json:"answered"`
	LatencyMS     float64     `json:"latency_ms,omitempty"`
	Info          *probe.Info `json:"info,omitempty"`
	Error         string      `json:"error,omitempty"`
}

func runProbe(ctx context.Context, opts *probeOptions) error {
	if !opts.Kind.Known() {
		return unknownKind(opts.Kind)
	}
	addr, err := resolveTarget(ctx, opts.Target)
	if err != nil {
		return err
	}
	res := probe.Run(ctx, opts.Kind, addr, probe.Options{Timeout: min(opts.Timeout, probe.DefaultTimeout)})
	if err := ctx.Err(); err != nil && !res.Answered {
		return fmt.Errorf("probing %s: %w", addr, err) // no verdict: it was not the server that went quiet
	}
	doc := probeDoc{FormatVersion: formatVersion, Kind: string(opts.Kind), Address: addr.String(), Answered: res.Answered,
		LatencyMS: float64(res.Latency.Microseconds()) / 1000}
	if res.Answered {
		doc.Info = &res.Info
	} else if res.Err != nil {
		doc.Error = res.Err.Error()
	}
	if err := printProbe(opts.Out, doc, res); err != nil {
		return err
	}
	if !res.Answered {
		return withCode(exitUnreachable, nil)
	}
	return nil
}

func printProbe(out *printer, doc probeDoc, res probe.Result) error {
	if out.json {
		return out.JSON(doc)
	}
	if !res.Answered {
		_, err := fmt.Fprintf(out.io.Out, "%s %s: no: %s\n", doc.Kind, doc.Address, forward.Printable(fmt.Sprint(res.Err)))
		return err
	}
	r := probe.Report{Verdict: probe.Reachable, Info: &res.Info, Latency: res.Latency}
	_, err := fmt.Fprintf(out.io.Out, "%s %s: answered: %s\n", doc.Kind, doc.Address, detail(r))
	return err
}

// resolveTarget accepts HOST:PORT with an IPv4 address or a name.
func resolveTarget(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want HOST:PORT", s)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %s: %v", host, err)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(addrs[0].Unmap().String(), port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: bad port", s)
	}
	return ap, nil
}

// probeServerOptions is everything probe-server needs, resolved from its
// flags and the environment.
type probeServerOptions struct {
	Log    io.Writer
	Listen []string // one dual-stack address (":8443"), or several
	Server *probe.Server
}

// probeServerFlags are the flags of probe-server read after parsing: where
// the token comes from, and the trusted proxies.
type probeServerFlags struct {
	token, tokenFile string
	proxies          []string
	tlsCert, tlsKey  string
}

// probeTokenEnv holds the probe server's token when no flag gives it.
const probeTokenEnv = "PORTFWD_PROBE_TOKEN"

// maxTokenFileBytes bounds a token file: a token is a line, and a wrong
// path (/dev/zero, a log) must fail, not fill the memory.
const maxTokenFileBytes = 4 << 10

// probeServerLong is probe-server's --help.
const probeServerLong = `probe-server answers portfwd check from outside your home: it probes the
ports a request names, on the address the request came from, and on no other
address, so it cannot be used to scan or flood anyone else. It never probes
its own host or link (loopback, link-local), nor private networks unless
--allow-private. Requests are limited in ports, rate per source (an IPv4
address or an IPv6 /56) and time; requests without the right token are
limited apart, so they cannot crowd out those with it.

The token comes from --token-file or --token (not both; --token shows in ps),
else from $` + probeTokenEnv + `; a flag wins over the environment.

Serve HTTPS with --tls-cert and --tls-key (PEM files, such as Let's Encrypt's
fullchain.pem and privkey.pem; restart to load renewed ones), or put it behind
a TLS-terminating reverse proxy: over plain HTTP the token travels in clear.
Clients send the token in the Authorization header, never in the URL: give
portfwd check its --token-file or $` + probeTokenEnv + ` (not --token, which
shows in ps), and --via-ca with the certificate when it is self-signed.

It listens on IPv4 and IPv6 (--listen :8443, the default, takes both on one
socket; or repeat --listen with one address of each), and answers a request
over IPv6 by probing the requester's IPv6 address: portfwd check asks over
IPv6 for rules with family: ipv6 or dual, from the address their pinhole
opens.

Behind a reverse proxy every request comes from the proxy: name the proxy's address with
--trusted-proxy and the header it writes the client's address in with
--client-ip-header (X-Real-IP, X-Forwarded-For or Forwarded; the last address
in it is used), and listen where only the proxy reaches. Headers from any
other peer are ignored.`

func newCmdProbeServer(f *factory) *cobra.Command { return newCmdProbeServerRun(f, nil) }

// newCmdProbeServerRun is probe-server with the runF seam of the other
// commands.
func newCmdProbeServerRun(f *factory, runF func(context.Context, *probeServerOptions) error) *cobra.Command {
	opts := &probeServerOptions{Server: &probe.Server{}}
	var pf probeServerFlags
	cmd := &cobra.Command{
		Use:   "probe-server",
		Short: "Serve outside checks for portfwd check --via (run it on a VPS or a friend's machine)",
		Long:  probeServerLong,
		Example: `  portfwd probe-server --listen :8443 --token-file /etc/portfwd/token \
      --tls-cert /etc/portfwd/cert.pem --tls-key /etc/portfwd/key.pem
  portfwd probe-server --listen 127.0.0.1:8443 --token-file /etc/portfwd/token \
      --trusted-proxy 127.0.0.1 --client-ip-header X-Real-IP`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pf.resolve(opts.Server, os.Getenv); err != nil {
				return err
			}
			if pf.token != "" {
				fmt.Fprintf(f.IO.ErrOut, "warning: --token is visible to every user of this machine (ps); use --token-file or %s\n", probeTokenEnv)
			}
			opts.Log = f.IO.ErrOut
			return runOr(cmd.Context(), runF, runProbeServer, opts)
		},
	}
	probeServerFlagSet(cmd, opts, &pf)
	return cmd
}

// probeServerFlagSet declares probe-server's flags.
func probeServerFlagSet(cmd *cobra.Command, opts *probeServerOptions, pf *probeServerFlags) {
	s, fl := opts.Server, cmd.Flags()
	fl.StringArrayVar(&opts.Listen, "listen", []string{":8443"}, "address to listen on; :PORT takes IPv4 and IPv6 on one socket; repeat it for several, e.g. --listen 192.0.2.8:8443 --listen [2001:db8::8]:8443")
	fl.StringVar(&pf.token, "token", "", "require this shared token (Authorization: Bearer); visible in ps, prefer --token-file or "+probeTokenEnv)
	fl.StringVar(&pf.tokenFile, "token-file", "", "require the shared token in this file (its first line); wins over "+probeTokenEnv)
	fl.IntVar(&s.MaxPorts, "max-ports", probe.DefaultMaxPorts, "most ports one request may ask for")
	fl.Float64Var(&s.Rate, "rate", probe.DefaultRate, "requests per second allowed from one source (an IPv4 address or an IPv6 /56)")
	fl.IntVar(&s.Burst, "burst", probe.DefaultBurst, "requests one source may make at once before the rate applies")
	fl.DurationVar(&s.Timeout, "probe-timeout", 3*time.Second, "deadline of each probe")
	fl.BoolVar(&s.AllowPrivate, "allow-private", false, "probe private (RFC 1918, RFC 4193) and carrier-grade NAT addresses too: for a probe server on a LAN")
	fl.StringSliceVar(&pf.proxies, "trusted-proxy", nil, "address of a reverse proxy in front of the server (repeatable); its requests are answered for the client named in --client-ip-header")
	fl.StringVar(&s.ClientIPHeader, "client-ip-header", "", "header a --trusted-proxy writes the client's address in, e.g. X-Real-IP")
	fl.StringVar(&pf.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM, the chain after it); needs --tls-key")
	fl.StringVar(&pf.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
}

func runProbeServer(ctx context.Context, opts *probeServerOptions) error {
	return probe.ListenAndServe(ctx, opts.Listen, opts.Server, opts.Log)
}

// resolve fills in s's token and trusted proxies from the flags and, for
// the token, the environment.
func (pf probeServerFlags) resolve(s *probe.Server, getenv func(string) string) error {
	token, err := probeToken(pf.token, pf.tokenFile, getenv(probeTokenEnv))
	if err != nil {
		return err
	}
	s.Token = token
	if s.TLS, err = serverTLS(pf.tlsCert, pf.tlsKey); err != nil {
		return err
	}
	for _, p := range pf.proxies {
		a, err := netip.ParseAddr(strings.TrimSpace(p))
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("--trusted-proxy %q: want the proxy's IP address, such as 127.0.0.1", p)
		}
		s.TrustedProxies = append(s.TrustedProxies, a.Unmap())
	}
	return nil
}

// serverTLS is the TLS config of --tls-cert and --tls-key, which go
// together; nil when neither is given (plain HTTP).
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// probeToken is the token of --token or --token-file, which may not both
// be given, else of the environment ("" for none).
func probeToken(flag, file, env string) (string, error) {
	switch {
	case flag != "" && file != "":
		return "", errors.New("--token and --token-file both given; keep --token-file, which keeps the token out of ps")
	case file != "":
		return readTokenFile(file)
	case flag != "":
		return flag, nil
	}
	return strings.TrimSpace(env), nil
}

// readTokenFile reads a token from the first line of path.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the token from %s: %w", path, err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("token file %s is over %d bytes; it should hold the token alone", path, maxTokenFileBytes)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if token := strings.TrimSpace(line); token != "" {
		return token, nil
	}
	return "", fmt.Errorf("token file %s is empty; put the token on its first line", path)
}
