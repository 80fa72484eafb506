# portfwd — build, test, demo and benchmark.
#
#   make demo    build, create the namespace lab, apply a Minecraft config on
#                the LAN host, prove it from the WAN host, tear down (root)
#   make test    install what the tests need, then gofmt, vet, unit, fuzz
#                seeds and the lab tests against real miniupnpd (root)
#   make bench   the lab benchmark: portfwd vs upnpc, side by side (root)

export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO      ?= go
BIN     := bin
DEB_PKGS := miniupnpd-nftables nftables iptables miniupnpc natpmpc iproute2 procps
# Which package provides each command the lab runs (used to skip apt-get when
# everything is already installed).
DEB_CMDS := miniupnpd nft iptables upnpc natpmpc ip pgrep

.PHONY: all build deps test unit lab-test fuzz bench demo lint clean

all: build

build:
	$(GO) build -o $(BIN)/portfwd ./cmd/portfwd
	$(GO) build -o $(BIN)/portfwd-lab ./cmd/portfwd-lab

## deps: Debian packages for the lab (as root) and the Go modules.
deps:
	@missing=""; for c in $(DEB_CMDS); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages (missing:$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS); \
	fi
	$(GO) mod download

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: the whole suite. PORTFWD_LAB=1 makes a missing lab prerequisite a
## failure, never a skip.
test: deps lint
	PORTFWD_LAB=1 $(GO) test -count=1 -timeout 20m ./...

unit:
	$(GO) test -count=1 -short ./...

## fuzz: a short run of every fuzz target (their seeds also run in make test).
FUZZTIME ?= 20s
FUZZ_TARGETS := forward:FuzzLoad \
	upnp:FuzzParseSSDPResponse upnp:FuzzParseSOAPFault upnp:FuzzParsePortListing \
	upnp:FuzzDecodePCPResponse upnp:FuzzNATPMPResponse \
	forward/probe:FuzzReadVarInt forward/probe:FuzzDecodeJavaStatus forward/probe:FuzzDecodeLegacyPing \
	forward/probe:FuzzDecodeBedrockPong forward/probe:FuzzDecodeA2SInfo forward/probe:FuzzParseProcNet \
	firewall:FuzzParseRule
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$pkg $$fn"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

## bench: portfwd against upnpc in the lab, in one run, with ratios.
bench: deps
	PORTFWD_LAB=1 $(GO) test -count=1 -run '^$$' -bench . -benchtime 5x -timeout 20m ./cmd/portfwd

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
	rm -rf $(BIN)
