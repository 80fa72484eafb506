// Package forwardtest holds what every forward.Backend is tested with:
//
//   - Run, the conformance suite each backend must pass: the rules written
//     on the Backend interface (Add refreshes, Delete of an absent mapping
//     is no error, a foreign mapping is a *forward.ConflictError that
//     stays), that Properties tells the truth (ThirdParty, ListsFromState,
//     PermanentLeases), the lease granted against the lease listed, and a
//     cancelled context failing List, Add and Delete;
//   - RunRecords, the extra suite for backends that list from their own
//     records (NAT-PMP, PCP), with a gateway the test can restart, silence
//     and age;
//   - Memory, an in-memory gateway for unit tests of the planner, the loop
//     and the CLI scripts.
package forwardtest
