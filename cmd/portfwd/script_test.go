package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// The CLI scripts in testdata/script run the real command line (flags,
// exit codes, output, JSON documents) in a process of its own, as a user
// would. Scripts that set PORTFWD_TEST_GATEWAY run against an in-memory
// gateway kept in that file, handed in through the factory's Openers seam
// in place of every real backend; the `gateway` command below sets it up
// and looks into it. No script reaches a real gateway: the lab tests do.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"portfwd": portfwdMain})
}

// portfwdMain is main, with the file-backed gateway when
// $PORTFWD_TEST_GATEWAY names one.
func portfwdMain() {
	f := newFactory(systemStreams())
	if path := os.Getenv("PORTFWD_TEST_GATEWAY"); path != "" {
		f.Openers = func(o openOptions) []forward.Opener { return fileGatewayOpeners(path, o.Timeout) }
		f.Memory = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], f)
	stop()
	os.Exit(code)
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Setup: func(env *testscript.Env) error {
		// Keep state and cache inside the script's work dir, even as root.
		env.Setenv("PORTFWD_STATE_DIR", env.WorkDir+"/state")
		env.Setenv("XDG_CACHE_HOME", env.WorkDir+"/cache")
		// $CONFIGS is the repository's configs/, so scripts apply the
		// example files users do.
		configs, err := filepath.Abs("../../configs")
		env.Setenv("CONFIGS", configs)
		return err
	}, Cmds: map[string]func(*testscript.TestScript, bool, []string){"gateway": cmdGateway}})
}

// fileGateway is the in-memory gateway's file: its settings and the
// mappings it holds.
type fileGateway struct {
	Self     netip.Addr `json:"self"`
	Self6    netip.Addr `json:"self6"` // this host's IPv6 address; set: the gateway opens pinholes
	External netip.Addr `json:"external"`
	Name     string     `json:"name"`   // Properties.Name; "memory" when empty
	Refuse   []string   `json:"refuse"` // keys ("tcp/2456") whose Add the gateway refuses
	Silent   bool       `json:"silent"` // answers nothing: opening waits --timeout, then fails
	// Networks, when set, are all the gateway reaches (HostChecker).
	Networks []netip.Prefix    `json:"networks"`
	Mappings []forward.Mapping `json:"mappings"`
}

func readFileGateway(path string) (*fileGateway, error) {
	fg := &fileGateway{Self: netip.MustParseAddr("127.0.0.1"), External: netip.MustParseAddr("203.0.113.7")}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fg, nil
	}
	if err == nil {
		err = json.Unmarshal(b, fg)
	}
	return fg, err
}

func (fg *fileGateway) write(path string) error {
	b, err := json.MarshalIndent(fg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// fileGatewayOpeners is one opener, detected as auto detection would,
// of the gateway in path; a silent one waits for wait (--timeout) as a
// real protocol would.
func fileGatewayOpeners(path string, wait time.Duration) []forward.Opener {
	return []forward.Opener{{Name: "memory", Detect: true, Wait: wait, Open: func(ctx context.Context, _ bool) (forward.Backend, error) {
		fg, err := readFileGateway(path)
		if err != nil {
			return nil, err
		}
		if fg.Silent {
			return nil, silence(ctx, wait)
		}
		mem := forwardtest.NewMemory(fg.Self)
		mem.External = fg.External
		mem.Self6 = fg.Self6
		for _, m := range fg.Mappings {
			mem.Put(m)
		}
		return &fileBackend{Memory: mem, path: path, fg: fg}, nil
	}}}
}

// silence is what opening a silent gateway returns, after wait or the
// end of ctx.
func silence(ctx context.Context, wait time.Duration) error {
	select {
	case <-time.After(wait):
		return forward.NoGateway(fmt.Errorf("the test gateway did not answer within %s", wait))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fileBackend is forwardtest.Memory written back to its file after every
// change, refusing the keys the file lists.
type fileBackend struct {
	*forwardtest.Memory
	path string
	fg   *fileGateway
}

// Add implements forward.Backend.
func (b *fileBackend) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if slices.Contains(b.fg.Refuse, m.Key.String()) {
		return forward.Mapping{}, fmt.Errorf("adding mapping %s: the test gateway refuses it: %w", m.Key, forward.ErrNotAuthorized)
	}
	got, err := b.Memory.Add(ctx, m)
	if err != nil {
		return got, err
	}
	return got, b.save(ctx)
}

// Delete implements forward.Backend.
func (b *fileBackend) Delete(ctx context.Context, m forward.Mapping) error {
	if err := b.Memory.Delete(ctx, m); err != nil {
		return err
	}
	return b.save(ctx)
}

// Properties implements forward.Backend.
func (b *fileBackend) Properties() forward.Properties {
	p := b.Memory.Properties()
	if b.fg.Name != "" {
		p.Name = b.fg.Name
	}
	return p
}

// HostProblem implements forward.HostChecker over the file's networks.
func (b *fileBackend) HostProblem(host netip.Addr) string {
	if !host.IsValid() || len(b.fg.Networks) == 0 ||
		slices.ContainsFunc(b.fg.Networks, func(p netip.Prefix) bool { return p.Contains(host) }) {
		return ""
	}
	return fmt.Sprintf("%s is on none of the test gateway's networks", host)
}

func (b *fileBackend) save(ctx context.Context) error {
	ms, err := b.Memory.List(ctx)
	if err != nil {
		return err
	}
	b.fg.Mappings = ms
	return b.fg.write(b.path)
}

// cmdGateway is the scripts' look into the in-memory gateway at
// $PORTFWD_TEST_GATEWAY:
//
//	gateway put PROTO/PORT HOST:PORT DESCRIPTION   another client's mapping; a
//	                                               "quoted" description is read as a Go string
//	gateway refuse PROTO/PORT                      refuse mappings on a key
//	gateway silent on|off                          answer nothing (opening waits --timeout)
//	gateway networks PREFIX...                     the only networks it reaches
//	gateway ipv6 ADDR                              open pinholes, this host being ADDR
//	gateway has PROTO/PORT [HOST:PORT [DESCRIPTION]]
//	gateway count N                                how many mappings it holds
func cmdGateway(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: gateway put|refuse|silent|networks|has|count ARGS")
	}
	path := ts.Getenv("PORTFWD_TEST_GATEWAY")
	fg, err := readFileGateway(path)
	ts.Check(err)
	switch args[0] {
	case "put":
		fg.Mappings = append(fg.Mappings, scriptMapping(ts, args[1:]))
		ts.Check(fg.write(path))
	case "refuse":
		fg.Refuse = append(fg.Refuse, args[1])
		ts.Check(fg.write(path))
	case "silent":
		fg.Silent = args[1] == "on"
		ts.Check(fg.write(path))
	case "ipv6":
		fg.Self6, err = netip.ParseAddr(args[1])
		ts.Check(err)
		ts.Check(fg.write(path))
	case "networks":
		for _, a := range args[1:] {
			p, err := netip.ParsePrefix(a)
			ts.Check(err)
			fg.Networks = append(fg.Networks, p)
		}
		ts.Check(fg.write(path))
	case "has":
		found := slices.ContainsFunc(fg.Mappings, func(m forward.Mapping) bool { return matches(ts, m, args[1:]) })
		if found == neg {
			ts.Fatalf("gateway has %s: %v; mappings: %+v", strings.Join(args[1:], " "), found, fg.Mappings)
		}
	case "count":
		if n, _ := strconv.Atoi(args[1]); (len(fg.Mappings) == n) == neg {
			ts.Fatalf("gateway holds %d mapping(s), want %s%s", len(fg.Mappings), map[bool]string{true: "not ", false: ""}[neg], args[1])
		}
	default:
		ts.Fatalf("gateway: unknown verb %q", args[0])
	}
}

// scriptMapping reads PROTO/PORT HOST:PORT DESCRIPTION.
func scriptMapping(ts *testscript.TestScript, args []string) forward.Mapping {
	if len(args) != 3 {
		ts.Fatalf("want PROTO/PORT HOST:PORT DESCRIPTION")
	}
	k := scriptKey(ts, args[0])
	ap, err := netip.ParseAddrPort(args[1])
	ts.Check(err)
	desc := args[2]
	if s, err := strconv.Unquote(desc); err == nil {
		desc = s // control characters, as a hostile device would send them
	}
	return forward.Mapping{Key: k, InternalHost: ap.Addr(), InternalPort: ap.Port(), Description: desc, Enabled: true}
}

// scriptKey reads "tcp/25565", or "tcp6/25565" for a pinhole.
func scriptKey(ts *testscript.TestScript, s string) forward.Key {
	proto, port, ok := strings.Cut(s, "/")
	n, err := strconv.ParseUint(port, 10, 16)
	if !ok || err != nil {
		ts.Fatalf("bad key %q: want PROTO/PORT", s)
	}
	k := forward.Key{Protocol: forward.Protocol(proto), ExternalPort: uint16(n)}
	if p, six := strings.CutSuffix(proto, "6"); six {
		k.Protocol, k.Family = forward.Protocol(p), forward.IPv6
	}
	return k
}

// matches reports whether m is on the key args name, to HOST:PORT and
// with the description when given.
func matches(ts *testscript.TestScript, m forward.Mapping, args []string) bool {
	if m.Key != scriptKey(ts, args[0]) {
		return false
	}
	if len(args) > 1 && netip.AddrPortFrom(m.InternalHost, m.InternalPort).String() != args[1] {
		return false
	}
	return len(args) < 3 || m.Description == args[2]
}
