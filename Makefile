# fobgw: a userspace WireGuard FOB gateway.
#   make demo   the gateway doing its job in the story's world (network namespaces; root)
#   make test   every test, unit and kernel end to end (root)

GO        ?= go
BIN       := bin
LDFLAGS   := -s -w
# -buildvcs=auto stamps the commit into the binary (`fobgw version`) when built in a git
# clone, also where the environment's GOFLAGS says -buildvcs=false.
GOFLAGS_STATIC := CGO_ENABLED=0 GOFLAGS="$(GOFLAGS) -buildvcs=auto"

# Debian packages the lab, the kernel tests and the benchmarks use.
DEB_PACKAGES := iproute2 wireguard-tools dnsmasq-base iperf3 nftables iptables \
                tcpdump curl dnsperf bind9-dnsutils procps psmisc kmod iputils-ping ca-certificates \
                systemd util-linux adduser seccomp chromium patch qemu-user-static

.PHONY: all build cross cross-test package test vet fmt-check tidy-check fuzz demo bench deps clean wgpatch

all: build

# wireguard-go as fobgw builds it: the version go.mod pins with patches/wireguard/*.patch applied,
# in build/wireguard-go (go.mod's replace points there). Quick when nothing changed; stops,
# naming the patch, when one no longer applies.
wgpatch:
	@bash patches/apply.sh

build: wgpatch
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw ./cmd/fobgw

# Static binaries for the boards fobgw is made for; mips and mipsle (OpenWrt routers) without an FPU.
cross: wgpatch
	GOOS=linux GOARCH=amd64 $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-amd64 ./cmd/fobgw
	GOOS=linux GOARCH=arm64 $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-arm64 ./cmd/fobgw
	GOOS=linux GOARCH=arm GOARM=7 $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-armv7 ./cmd/fobgw
	GOOS=linux GOARCH=mips GOMIPS=softfloat $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-mips ./cmd/fobgw
	GOOS=linux GOARCH=mipsle GOMIPS=softfloat $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-mipsle ./cmd/fobgw

# The tests that need no kernel (clamp, DNS wire format and cache, config parser, the patched
# wireguard-go's checksums, offloads and buffer pool) on arm64, armv7 and big-endian mips under
# qemu-user (qemu-user-static, see deps); .ci/cross-test names them.
cross-test: wgpatch
	GO=$(GO) bash .ci/cross-test

# Debian packages of fobgw for the boards (dist/nfpm.yaml; built by dist/pkg, a module of
# its own around nfpm's deb packager) into $(BIN)/: fobgw_VERSION_ARCH.deb.
PKG_VERSION ?= $(shell TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format='0.0~git%cd.%h' 2>/dev/null || echo 0.0~unknown)
PKG_ARCHS   ?= amd64 arm64 armhf
package: cross
	$(GO) -C dist/pkg run . -root ../.. -bin $(abspath $(BIN)) -out $(abspath $(BIN)) -version '$(PKG_VERSION)' $(PKG_ARCHS)

# Installs the Debian packages above when one is missing (needs root). `dpkg -s` would pass
# for a removed package whose configuration files remain; dpkg-query's status says
# "install ok installed" only for an installed one.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		[ "$$(dpkg-query -W -f '$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: wgpatch
	$(GO) vet ./...

tidy-check: wgpatch
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit"; exit 1; }

# Every test: unit tests, fuzz seed corpora, netlink tests in fresh namespaces and
# the end-to-end tests in the story's world; then the tests of the patched wireguard-go
# packages (upstream's and the patches' own). Kernel tests need root and fail (never
# skip) without it. Installs the Debian packages the tests need first, as `make demo` does.
test: deps wgpatch fmt-check vet tidy-check
	$(GO) test -count=1 -timeout 12m ./...
	cd build/wireguard-go && $(GO) test -count=1 -timeout 5m ./conn/ ./device/ ./tun/

# Short fuzzing runs of every fuzz target (every func Fuzz* in a test file), FUZZTIME each:
# go test fuzzes one target at a time.
FUZZTIME ?= 30s
fuzz: wgpatch
	@set -e; for f in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go')); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$t ($$(dirname $$f), $(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
		done; \
	done

demo: deps wgpatch
	bash bench/demo.sh

bench: deps wgpatch
	bash bench/throughput.sh

clean:
	rm -rf $(BIN) build
