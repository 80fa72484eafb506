// Package forwardtest holds what every forward.Backend is tested with: Run,
// the conformance suite each backend must pass, and Memory, an in-memory
// gateway for unit tests of the planner and the CLI.
package forwardtest
