package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/portfwd/portfwd/forward"
)

// procReader finds listening sockets and their owners in a /proc tree. It
// reads through fs.FS so tests can hand it a fake tree; only Bindings on
// Linux points it at the real /proc.
type procReader struct {
	fsys fs.FS // rooted at /proc
	// order is the host's byte order: the kernel prints each 32-bit word
	// of an address as a host-order integer (%08X of a __be32), so on
	// little-endian machines 127.0.0.1 reads "0100007F".
	order binary.ByteOrder
}

// procSocket is one parsed line of /proc/net/{tcp,tcp6,udp,udp6}.
type procSocket struct {
	local, remote netip.AddrPort
	state         uint8 // a TCP state number; UDP reuses them
	inode         uint64
}

// Socket states from the kernel's include/net/tcp_states.h.
const (
	stateEstablished = 0x01
	stateClose       = 0x07 // an unconnected UDP socket
	stateListen      = 0x0A
)

// cmdlineMax bounds Binding.Command: enough for "java -Xmx4G -jar
// server.jar nogui", short enough for one line of a table.
const cmdlineMax = 120

// procTables names the /proc/net tables holding each protocol's sockets.
var procTables = map[forward.Protocol][]string{
	forward.TCP: {"net/tcp", "net/tcp6"},
	forward.UDP: {"net/udp", "net/udp6"},
}

// bindings lists the sockets listening on port, with their owners.
func (r procReader) bindings(p forward.Protocol, port uint16) ([]Binding, error) {
	tables, ok := procTables[p]
	if !ok {
		return nil, fmt.Errorf("listing listeners: unknown protocol %q", p)
	}
	var socks []procSocket
	for _, name := range tables {
		s, err := r.listening(name, p, port)
		if err != nil {
			return nil, err
		}
		socks = append(socks, s...)
	}
	pids := r.owners(socks)
	bs := make([]Binding, 0, len(socks))
	for _, s := range socks {
		bs = append(bs, r.binding(p, s.local, pids[s.inode]))
	}
	return bs, nil
}

// listening reads one /proc/net table and keeps the sockets on port that
// take new traffic.
func (r procReader) listening(table string, p forward.Protocol, port uint16) ([]procSocket, error) {
	data, err := fs.ReadFile(r.fsys, table)
	if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(table, "6") {
		return nil, nil // IPv6 is disabled on this machine
	}
	if err != nil {
		return nil, fmt.Errorf("reading /proc/%s: %w", table, err)
	}
	var out []procSocket
	for line := range strings.Lines(string(data)) {
		s, ok := parseProcNet(line, r.order)
		if ok && s.local.Port() == port && accepts(p, s.state) {
			out = append(out, s)
		}
	}
	return out, nil
}

// accepts reports whether a socket in state takes traffic from new peers:
// a listening TCP socket, or an unconnected UDP one. A connected UDP
// socket (ESTABLISHED) takes datagrams from its one peer only.
func accepts(p forward.Protocol, state uint8) bool {
	if p == forward.UDP {
		return state == stateClose
	}
	return state == stateListen
}

// parseProcNet parses one line of /proc/net/{tcp,tcp6,udp,udp6}:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:63DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 ...
//
// It reports false for the header and for anything malformed.
func parseProcNet(line string, order binary.ByteOrder) (procSocket, bool) {
	f := strings.Fields(line)
	if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
		return procSocket{}, false
	}
	local, okL := parseHexAddrPort(f[1], order)
	remote, okR := parseHexAddrPort(f[2], order)
	state, errS := strconv.ParseUint(f[3], 16, 8)
	inode, errI := strconv.ParseUint(f[9], 10, 64)
	if !okL || !okR || errS != nil || errI != nil {
		return procSocket{}, false
	}
	return procSocket{local: local, remote: remote, state: uint8(state), inode: inode}, true
}

// parseHexAddrPort parses "0100007F:63DD": the address as host-order hex
// words, the port as plain big-endian hex.
func parseHexAddrPort(s string, order binary.ByteOrder) (netip.AddrPort, bool) {
	host, portHex, ok := strings.Cut(s, ":")
	if !ok || len(portHex) != 4 {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addr, ok := parseHexAddr(host, order)
	return netip.AddrPortFrom(addr, uint16(port)), ok
}

// parseHexAddr parses 8 hex digits (IPv4) or 32 (IPv6, four words).
func parseHexAddr(h string, order binary.ByteOrder) (netip.Addr, bool) {
	if len(h) != 8 && len(h) != 32 {
		return netip.Addr{}, false
	}
	b := make([]byte, len(h)/2)
	for i := 0; i < len(h); i += 8 {
		w, err := strconv.ParseUint(h[i:i+8], 16, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		order.PutUint32(b[i/2:], uint32(w))
	}
	return netip.AddrFromSlice(b)
}

// owners maps each socket's inode to the PID holding it, by reading the
// /proc/<pid>/fd/* links ("socket:[12345]"). Sockets whose owner cannot
// be seen are absent.
func (r procReader) owners(socks []procSocket) map[uint64]int {
	want := make(map[uint64]bool, len(socks))
	for _, s := range socks {
		if s.inode != 0 {
			want[s.inode] = true
		}
	}
	found := make(map[uint64]int, len(want))
	if len(want) == 0 {
		return found
	}
	for _, pid := range r.pids() {
		r.scanFDs(pid, want, found)
		if len(found) == len(want) {
			break
		}
	}
	return found
}

// pids lists the processes in /proc, lowest first: a socket shared after
// fork is credited to the parent, which usually has the lower PID.
func (r procReader) pids() []int {
	ents, err := fs.ReadDir(r.fsys, ".")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// scanFDs records in found the wanted socket inodes pid holds. A process
// whose fd directory cannot be read (another user's, while portfwd is not
// root, or one that just exited) is skipped.
func (r procReader) scanFDs(pid int, want map[uint64]bool, found map[uint64]int) {
	dir := strconv.Itoa(pid) + "/fd"
	ents, err := fs.ReadDir(r.fsys, dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		target, err := fs.ReadLink(r.fsys, dir+"/"+e.Name())
		if err != nil {
			continue
		}
		ino, ok := socketInode(target)
		if _, seen := found[ino]; ok && want[ino] && !seen {
			found[ino] = pid
		}
	}
}

// socketInode parses an fd link's target "socket:[12345]".
func socketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}

// binding builds a Binding, naming the owner when pid is known.
func (r procReader) binding(p forward.Protocol, local netip.AddrPort, pid int) Binding {
	b := Binding{Protocol: p, Local: local, PID: pid}
	if pid == 0 {
		return b
	}
	dir := strconv.Itoa(pid) + "/"
	if comm, err := fs.ReadFile(r.fsys, dir+"comm"); err == nil {
		b.Name = printable(strings.TrimSuffix(string(comm), "\n"))
	}
	if cmdline, err := fs.ReadFile(r.fsys, dir+"cmdline"); err == nil {
		b.Command = formatCmdline(cmdline)
	}
	return b
}

// formatCmdline turns /proc/<pid>/cmdline (arguments each ended by NUL)
// into one display line, truncated to cmdlineMax characters.
func formatCmdline(raw []byte) string {
	s := strings.TrimRight(string(raw), "\x00")
	s = printable(strings.ReplaceAll(s, "\x00", " "))
	if utf8.RuneCountInString(s) <= cmdlineMax {
		return s
	}
	r := []rune(s)
	return string(r[:cmdlineMax-1]) + "…"
}

// printable replaces control characters, so that a hostile or odd process
// name cannot move the cursor or forge lines in portfwd's output.
func printable(s string) string {
	return strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return '?'
		}
		return c
	}, s)
}
