package probe

import (
	"encoding/binary"
	"io/fs"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portfwd/portfwd/forward"
)

// fakeProc is testdata/proc (hand-written /proc/net tables, comm and
// cmdline files) plus the fd links, which are symlinks git would not keep
// well: see fdLinks.
func fakeProc(t *testing.T) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata/proc"), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(os.DirFS("testdata/proc"), name)
		fsys[name] = &fstest.MapFile{Data: data, Mode: 0o444}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range fdLinks {
		fsys[name] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}
	return fsys
}

// fdLinks are the fake tree's /proc/<pid>/fd entries. Pid 10000 is a
// forked child of java sharing its listener; 5000's fd directory is not
// readable (absent), like another user's process when not root. Inodes
// 1004 and 2003 belong to nobody visible.
var fdLinks = map[string]string{
	"self":           "4242",
	"4242/fd/0":      "/dev/null",
	"4242/fd/3":      "socket:[1001]",
	"4242/fd/4":      "socket:[9999]",
	"4242/fd/5":      "socket:[2002]",
	"4242/fd/6":      "pipe:[555]",
	"10000/fd/3":     "socket:[1001]",
	"4300/fd/5":      "socket:[2001]",
	"4300/fd/6":      "socket:[3001]",
	"4300/fd/7":      "socket:[3003]",
	"4300/fd/8":      "socket:[3002]",
	"4300/fd/9":      "socket:[1003]",
	"4242/fd/notint": "socket:[notanumber]",
}

const (
	javaCmd    = "/usr/bin/java -Xmx4G -jar server.jar nogui"
	bedrockCmd = "./bedrock_server"
)

func TestProcBindings(t *testing.T) {
	r := procReader{fsys: fakeProc(t), order: binary.LittleEndian}
	ap := netip.MustParseAddrPort
	tests := []struct {
		p    forward.Protocol
		port uint16
		want []Binding
	}{
		{forward.TCP, 25565, []Binding{
			{forward.TCP, ap("127.0.0.1:25565"), 4242, javaCmd, "java"},
			{forward.TCP, ap("10.8.0.2:25565"), 0, "", ""},
			{forward.TCP, ap("[::]:25565"), 4300, bedrockCmd, "bedrock_server"},
			{forward.TCP, ap("[::ffff:192.168.1.10]:25565"), 4242, javaCmd, "java"},
			{forward.TCP, ap("[::1]:25565"), 0, "", ""},
		}},
		{forward.TCP, 8080, []Binding{{forward.TCP, ap("0.0.0.0:8080"), 0, "", ""}}},
		{forward.UDP, 19132, []Binding{
			{forward.UDP, ap("0.0.0.0:19132"), 4300, bedrockCmd, "bedrock_server"},
			{forward.UDP, ap("[::]:19132"), 4300, bedrockCmd, "bedrock_server"},
		}},
		{forward.UDP, 25565, []Binding{}},
		{forward.TCP, 19132, []Binding{}},
	}
	for _, tt := range tests {
		got, err := r.bindings(tt.p, tt.port)
		if err != nil {
			t.Fatalf("bindings(%s, %d): %v", tt.p, tt.port, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("bindings(%s, %d) =\n%+v\nwant\n%+v", tt.p, tt.port, got, tt.want)
		}
	}
}

func TestProcBindingsMissingTables(t *testing.T) {
	fsys := fakeProc(t)
	delete(fsys, "net/tcp6") // IPv6 disabled: not an error
	r := procReader{fsys: fsys, order: binary.LittleEndian}
	if got, err := r.bindings(forward.TCP, 25565); err != nil || len(got) != 2 {
		t.Errorf("without tcp6: %d bindings, %v; want 2, nil", len(got), err)
	}
	delete(fsys, "net/tcp")
	if _, err := r.bindings(forward.TCP, 25565); err == nil || !strings.Contains(err.Error(), "/proc/net/tcp") {
		t.Errorf("without tcp: err = %v, want one naming /proc/net/tcp", err)
	}
	if _, err := r.bindings("sctp", 1); err == nil {
		t.Error("unknown protocol: no error")
	}
}

func TestParseProcNet(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name, line string
		want       procSocket
		ok         bool
	}{
		{"tcp loopback listen",
			"   0: 0100007F:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1001 1 0000000000000000 100 0 0 10 0",
			procSocket{ap("127.0.0.1:25565"), ap("0.0.0.0:0"), stateListen, 1001}, true},
		{"tcp established",
			"   2: 0A01A8C0:63DD 1401A8C0:C738 01 00000000:00000000 02:0009F5C4 00000000  1000        0 1003 4 0000000000000000 20 4 30 10 -1",
			procSocket{ap("192.168.1.10:25565"), ap("192.168.1.20:51000"), stateEstablished, 1003}, true},
		{"tcp6 wildcard",
			"   0: 00000000000000000000000000000000:63DD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2001 1 0000000000000000 100 0 0 10 0",
			procSocket{ap("[::]:25565"), ap("[::]:0"), stateListen, 2001}, true},
		{"tcp6 IPv4-mapped",
			"   1: 0000000000000000FFFF00000A01A8C0:63DD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2002 1",
			procSocket{ap("[::ffff:192.168.1.10]:25565"), ap("[::]:0"), stateListen, 2002}, true},
		{"tcp6 loopback",
			"   2: 00000000000000000000000001000000:63DD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2003 1",
			procSocket{ap("[::1]:25565"), ap("[::]:0"), stateListen, 2003}, true},
		{"tcp6 global",
			"   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1",
			procSocket{ap("[2001:db8::1]:80"), ap("[::]:0"), stateListen, 7}, true},
		{"udp unconnected",
			"  123: 00000000:4ABC 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 3001 2 0000000000000000 0",
			procSocket{ap("0.0.0.0:19132"), ap("0.0.0.0:0"), stateClose, 3001}, true},
		{"header", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", procSocket{}, false},
		{"empty", "", procSocket{}, false},
		{"short", "   0: 0100007F:63DD 00000000:0000 0A", procSocket{}, false},
		{"odd address length", "   0: 0100007:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1", procSocket{}, false},
		{"no port", "   0: 0100007F 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1", procSocket{}, false},
		{"bad hex", "   0: 0100007G:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1", procSocket{}, false},
		{"signed word", "   0: +100007F:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1", procSocket{}, false},
		{"bad state", "   0: 0100007F:63DD 00000000:0000 1FF 00000000:00000000 00:00000000 00000000 0 0 1", procSocket{}, false},
		{"bad inode", "   0: 0100007F:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1", procSocket{}, false},
	}
	for _, tt := range tests {
		got, ok := parseProcNet(tt.line, binary.LittleEndian)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: parseProcNet = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestParseProcNetBigEndian checks the other byte order: on a big-endian
// host the kernel prints 127.0.0.1 as 7F000001.
func TestParseProcNetBigEndian(t *testing.T) {
	line := "   0: 7F000001:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1"
	got, ok := parseProcNet(line, binary.BigEndian)
	if want := netip.MustParseAddrPort("127.0.0.1:25565"); !ok || got.local != want {
		t.Errorf("big-endian: %v, %v; want %v", got.local, ok, want)
	}
}

func TestSocketInode(t *testing.T) {
	tests := []struct {
		target string
		want   uint64
		ok     bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12345]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
	}
	for _, tt := range tests {
		if got, ok := socketInode(tt.target); got != tt.want || ok != tt.ok {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", tt.target, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFormatCmdline(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct{ raw, want string }{
		{"/usr/bin/java\x00-jar\x00server.jar\x00", "/usr/bin/java -jar server.jar"},
		{"nginx: master process /usr/sbin/nginx", "nginx: master process /usr/sbin/nginx"}, // rewritten argv, no NULs
		{"", ""},
		{"evil\x1b[2J\x00arg\n", "evil?[2J arg?"},
		{long, strings.Repeat("a", cmdlineMax-1) + "…"},
		{strings.Repeat("é", 130), strings.Repeat("é", cmdlineMax-1) + "…"},
	}
	for _, tt := range tests {
		if got := formatCmdline([]byte(tt.raw)); got != tt.want {
			t.Errorf("formatCmdline(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// FuzzParseProcNet feeds the /proc/net line parser arbitrary lines: it
// must never panic, and what it accepts must be a usable address.
func FuzzParseProcNet(f *testing.F) {
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile("testdata/proc/net/" + name)
		if err != nil {
			f.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			f.Add(line)
		}
	}
	f.Add("0: :: :: 0 0 0 0 0 0 0")
	f.Fuzz(func(t *testing.T, line string) {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			s, ok := parseProcNet(line, order)
			if ok && (!s.local.IsValid() || !s.remote.IsValid()) {
				t.Errorf("parseProcNet(%q) accepted an invalid address: %+v", line, s)
			}
		}
	})
}
