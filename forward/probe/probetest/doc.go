// Package probetest runs small game servers that answer probe's
// application probes on loopback: the Minecraft Java Server List Ping
// (with the legacy 0xFE ping), the Minecraft Bedrock RakNet unconnected
// ping, and Valve's A2S_INFO with or without a challenge.
//
// They are written from the same public protocol descriptions as the
// probes (wiki.vg "Server List Ping" and "Raknet Protocol", the Valve
// Developer Community "Server queries"), independently of probe's own
// encoders, so a test against them checks the probe against the
// description and not against itself. Unit tests use them in package
// probe; the lab tests use them as the servers behind a forward.
//
// Each Serve function answers until its listener or connection is closed,
// then returns nil; any other failure to accept or read is returned.
package probetest
