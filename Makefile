# portfwd — build, test, demo and benchmark.
#
#   make build     bin/portfwd and bin/portfwd-lab, versioned by git describe
#   make install   make build, then portfwd to /usr/local/bin (as root)
#   make package   a Debian package in dist/ (nfpm, as a Go module)
#   make demo      build, create the namespace lab, apply a Minecraft config
#                  on the LAN host, prove it from the WAN host, tear down (root)
#   make test      what CI runs (root): install what the tests need, gofmt and
#                  vet, then two passes, each in a network namespace of its own
#                  with only loopback up: `make unit`, then `make lab-test`
#   make unit      the unit tests: every test but the lab's, fuzz seeds
#                  included (root, or a user allowed user namespaces)
#   make lab-test  the lab tests (TestLab…): real miniupnpd and iptables in
#                  the namespace lab (root)
#   make bench     the lab benchmark: portfwd vs upnpc, side by side (root)
#   make fuzz      a short run of every fuzz target
#   make metrics   lines per package, function lengths, dead code

export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
MODULE  := github.com/portfwd/portfwd
GO      ?= go
BIN     := bin
DEB_PKGS := miniupnpd-nftables nftables iptables miniupnpc natpmpc iproute2 procps systemd git make man-db dpkg docker.io
# Which package provides each command the lab runs (used to skip apt-get when
# everything is already installed).
DEB_CMDS := miniupnpd nft iptables upnpc natpmpc ip pgrep systemd-analyze git make man dpkg-deb dockerd docker nsenter


.PHONY: all build install package deps modules test unit lab-test fuzz bench demo lint metrics clean

# LOOPBACK_ONLY runs a command in a fresh network namespace with only
# loopback up, so a test that would send a packet to the machine's real
# network fails instead (DESIGN.md, "Tests, in layers"). The lab needs no
# more: its namespaces (ip netns add) get their links from the lab itself,
# never from the namespace the tests run in. Without root, unshare maps the
# user to root in a new user namespace. Nothing is downloaded inside
# (GOPROXY=off): `make modules` fills the module cache first.
ifeq ($(shell id -u),0)
LOOPBACK_ONLY := GOPROXY=off unshare --net
else
LOOPBACK_ONLY := GOPROXY=off unshare --map-root-user --net
endif
LOOPBACK_ONLY += sh -c 'ip link set lo up && exec "$$0" "$$@"'

all: build

# VERSION is what `portfwd version` prints for a build from this checkout:
# git describe (the last tag, commits since, the commit, -dirty). Without git
# (a tarball) it is empty, and portfwd reads the module's build info instead.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X main.version=$(VERSION))

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/portfwd ./cmd/portfwd
	$(GO) build -o $(BIN)/portfwd-lab ./cmd/portfwd-lab

## install: make build, then portfwd to $(PREFIX)/bin (/usr/local/bin, where
## the systemd units in configs/systemd look for it). As root.
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/portfwd $(DESTDIR)$(PREFIX)/bin/portfwd

## package: the Debian package, dist/portfwd_VERSION_ARCH.deb, for this
## machine's architecture: /usr/bin/portfwd (static, CGO_ENABLED=0), the
## systemd units (ExecStart on /usr/bin/portfwd), bash/zsh/fish completions,
## the man pages, the config schema, /etc/portfwd/portfwd.yaml as a conffile.
## The files are staged in $(STAGE); internal/tools/debpkg (a module of its
## own, for nfpm's dependencies) reads configs/package/nfpm.yaml and writes
## the package. Release builds for other architectures: .goreleaser.yaml.
DIST  ?= dist
STAGE ?= $(BIN)/package
PKG_ARCH := $(shell $(GO) env GOARCH)
package:
	rm -rf $(STAGE) && mkdir -p $(STAGE)/systemd $(STAGE)/completions $(DIST)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(STAGE)/portfwd ./cmd/portfwd
	for u in configs/systemd/*.service configs/systemd/*.timer; do \
		sed 's|^ExecStart=/usr/local/bin/portfwd |ExecStart=/usr/bin/portfwd |' $$u > $(STAGE)/systemd/$${u##*/}; done
	$(STAGE)/portfwd completion bash > $(STAGE)/completions/portfwd.bash
	$(STAGE)/portfwd completion zsh > $(STAGE)/completions/_portfwd
	$(STAGE)/portfwd completion fish > $(STAGE)/completions/portfwd.fish
	$(STAGE)/portfwd man $(STAGE)/man && gzip -9n $(STAGE)/man/*.1
	v=$$($(STAGE)/portfwd --version | sed 's/^portfwd //'); \
	cd internal/tools/debpkg && $(GO) run . -root $(CURDIR) -stage $(abspath $(STAGE)) -version "$$v" -arch $(PKG_ARCH) -out $(abspath $(DIST))

## deps: Debian packages for the lab (as root) and the Go modules.
deps: modules
	@missing=""; for c in $(DEB_CMDS); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages (missing:$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS); \
	fi

# TOOL_MODULES are modules of their own under internal/tools, whose large
# dependencies (nfpm, goreleaser) stay out of go.mod: debpkg makes the
# Debian package, releasecheck checks .goreleaser.yaml. make unit and make
# lint cover them too.
TOOL_MODULES := internal/tools/debpkg internal/tools/releasecheck
modules:
	$(GO) mod download
	for m in $(TOOL_MODULES); do (cd $$m && $(GO) mod download) || exit 1; done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	for m in $(TOOL_MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

## test: the whole suite, in two passes split by name: a lab test is
## TestLab… (lab.ForTest fails any other, and any in the unit pass).
test: deps lint unit lab-test

## unit: every test but the lab tests, fuzz seeds included. PORTFWD_UNIT=1
## makes lab.ForTest fail: a lab test named otherwise would run here.
unit: modules
	PORTFWD_UNIT=1 $(LOOPBACK_ONLY) $(GO) test -count=1 -timeout 10m -skip '^TestLab' ./...
	for m in $(TOOL_MODULES); do (cd $$m && $(LOOPBACK_ONLY) $(GO) test -count=1 ./...) || exit 1; done

## lab-test: the lab tests. PORTFWD_LAB=1 makes a missing lab prerequisite a
## failure, never a skip.
lab-test: deps
	PORTFWD_LAB=1 $(LOOPBACK_ONLY) $(GO) test -count=1 -timeout 20m -run '^TestLab' ./...

## metrics: the figures the redesign is measured by: production and test
## lines per package, function lengths, and dead code.
metrics: modules
	@for d in $$($(GO) list -f '{{.Dir}}' ./... | sed "s|$$PWD/||"); do \
		p=$$(ls $$d/*.go | grep -v _test.go | xargs cat | wc -l); t=$$(ls $$d/*_test.go 2>/dev/null | xargs -r cat | wc -l); \
		printf '%-28s %6d prod %6d test\n' $$d $$p $$t; done
	$(GO) run ./internal/tools/funclen -over 40 cmd forward upnp firewall internal
	@echo "deadcode, production packages (the test-support ones, forwardtest, probetest and"; \
	echo "internal/lab, are reached only from tests); nothing below this line is good:"
	@$(GO) run golang.org/x/tools/cmd/deadcode@v0.47.0 -filter '^$(MODULE)/(cmd/portfwd|cmd/portfwd-lab|forward|forward/probe|upnp|upnp/pcp|firewall)$$' ./...

## fuzz: a short run of every fuzz target (their seeds also run in make test).
FUZZTIME ?= 20s
# FUZZMINIMIZETIME bounds how long a worker shrinks each new input before
# fuzzing on (go test's default is 60s). Shrinking tries every cut of the
# input, quadratic in its length: for FuzzLoad's inputs of a kilobyte or
# more it took up to that minute per new input, at 0 execs/s: a stall.
FUZZMINIMIZETIME ?= 3s
FUZZ_TARGETS := forward:FuzzLoad \
	upnp:FuzzParseSSDPResponse upnp:FuzzParseSOAPFault upnp:FuzzParsePortListing upnp:FuzzLenientXML \
	forward/probe:FuzzReadVarInt forward/probe:FuzzDecodeJavaStatus forward/probe:FuzzDecodeLegacyPing \
	forward/probe:FuzzDecodeBedrockPong forward/probe:FuzzDecodeA2SInfo forward/probe:FuzzParseProcNet \
	forward/probe:FuzzClientFromHeader \
	firewall:FuzzParseRule upnp/pcp:FuzzDecodeNATPMP upnp/pcp:FuzzDecodePCP upnp/pcp:FuzzReadRecords
# A target that fails with a bare "context deadline exceeded" at the end of
# its time and writes no failing input hit the fuzz coordinator's own race
# (golang/go#75804, fixed in Go 1.27; this toolchain is 1.26): it runs once
# more. Any other failure, or a failing input written to testdata/fuzz, or
# the race twice, fails the run.
fuzz: modules
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		for try in 1 2; do \
			echo "== $$pkg $$fn"; \
			if $(LOOPBACK_ONLY) $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg >$$log 2>&1; then \
				cat $$log; break; fi; \
			cat $$log; \
			if [ $$try = 1 ] && grep -qx '    context deadline exceeded' $$log && [ -z "$$(git status --porcelain -- $$pkg/testdata/fuzz/$$fn)" ]; then \
				echo "== $$fn: the fuzz coordinator's end-of-time race (golang/go#75804), no failing input: once more"; continue; fi; \
			exit 1; \
		done; \
	done

## bench: portfwd against upnpc in the lab, in one run, with ratios. Every
## benchmark is a lab benchmark (BenchmarkLab…), so it runs like lab-test.
bench: deps
	PORTFWD_LAB=1 $(LOOPBACK_ONLY) $(GO) test -count=1 -run '^$$' -bench . -benchtime 5x -timeout 20m ./cmd/portfwd

## demo: the main job end to end on the lab.
demo: deps build
	@set -e; lab=$(BIN)/portfwd-lab; pf=$(BIN)/portfwd; \
	export XDG_CACHE_HOME=$$(mktemp -d); export PORTFWD_STATE_DIR=$$XDG_CACHE_HOME/state; \
	trap 'kill $$server $$vantage 2>/dev/null; $$lab down >/dev/null 2>&1 || true; rm -rf "$$XDG_CACHE_HOME"' EXIT; \
	echo "== 1. the lab: wan (the internet) / router (miniupnpd) / lan (your PC)"; \
	$$lab up >/dev/null; \
	wan=$$($$lab env | sed -n 's/^LAB_ROUTER_WAN=//p'); friend=$$($$lab env | sed -n 's/^LAB_WAN_HOST=//p'); \
	echo "   router's public address: $$wan; a friend's machine on the internet: $$friend"; \
	echo "== 2. a Minecraft server on the LAN host (port 25565), and portfwd probe-server at the friend's"; \
	$$lab exec lan -- $$lab listen minecraft 25565 -greeting "Saturday survival" & server=$$!; \
	$$lab exec wan -- $$pf probe-server --listen "$$friend:8443" 2>/dev/null & vantage=$$!; \
	sleep 0.5; \
	echo "== 3. portfwd apply configs/minecraft.yaml on the LAN host: forward, then prove it from outside"; \
	$$lab exec lan -- $$pf apply --via "http://$$friend:8443" configs/minecraft.yaml; \
	echo "== 4. the friend pings the server in Minecraft's own protocol"; \
	$$lab exec wan -- $$pf probe "$$wan:25565" --kind minecraft-java; \
	echo "== 5. portfwd status"; \
	$$lab exec lan -- $$pf status configs/minecraft.yaml; \
	echo "== 6. apply again: nothing to change"; \
	$$lab exec lan -- $$pf apply --no-probe configs/minecraft.yaml; \
	echo "== 7. portfwd down, and the friend can no longer connect"; \
	$$lab exec lan -- $$pf down configs/minecraft.yaml; \
	if $$lab exec wan -- $$pf probe "$$wan:25565" --kind minecraft-java --timeout 2s; then echo "still open after down"; exit 1; fi; \
	echo "== demo passed: reachable from outside after apply, closed after down"

clean:
	rm -rf $(BIN) $(DIST)
