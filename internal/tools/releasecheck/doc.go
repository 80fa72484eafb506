// Package releasecheck checks .goreleaser.yaml offline with goreleaser's
// own config loader (its test is all there is): the file must load
// strictly (an unknown or misspelt key fails), build the architectures
// portfwd is released for, and package the same files as `make package`
// (configs/package/nfpm.yaml). It is a module of its own so that
// goreleaser's dependencies stay out of portfwd's go.mod; make unit runs it.
package releasecheck
