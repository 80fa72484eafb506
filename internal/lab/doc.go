// Package lab builds the home network of LAB.md out of Linux network
// namespaces, with a real miniupnpd (Debian's miniupnpd-nftables) as the
// router, so portfwd's features are proven against a real gateway rather
// than a mock.
//
// Three namespaces per lab, named "pfl-<6 hex>-wan", "-router" and "-lan" so
// that parallel tests and parallel test binaries never collide:
//
//	wan  ── veth ──  router                ── veth ──  lan
//	50.60.70.80      wan 50.60.70.1 / lan 192.168.77.1   192.168.77.10 (+ .11)
//
// The router forwards, NATs with nftables (the table and chains the
// miniupnpd nftables backend expects) and runs miniupnpd in the foreground
// with its log in the lab's temp dir. Every file miniupnpd writes (config,
// lease file, pid file, MiniSSDPd socket path, log) lives in that dir, so
// two labs can run at once.
//
// Tests call ForTest, and are named TestLab… (BenchmarkLab…): make test runs
// them apart from the unit tests. A test whose every goroutine must be on
// one lab host re-runs itself there with RunChild, and ChildOf tells it
// that it is that child. The portfwd-lab command calls Up with
// Options.Detached and Save, and later Load to reach the same lab from
// another process. Everything needs root; Prerequisites names what is
// missing.
package lab
