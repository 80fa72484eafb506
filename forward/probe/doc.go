// Package probe proves a forward works: application probes that speak each
// game's own protocol (Minecraft Java and Bedrock, Source A2S), plain TCP,
// UDP echo and HTTP(S); the probe server a user runs outside the home to
// test from there; and the layered diagnosis that names the first broken
// layer (local listener, gateway mapping, WAN address, outside vantage).
//
// Run is one probe; Server and RemoteVantage are the probe server and its
// client; Checker.Check runs the layers for the Targets of a config;
// Bindings finds who holds a port on this machine. Every probe runs under a
// deadline and reports what it learned, never "open" for a UDP port that did
// not answer.
package probe
