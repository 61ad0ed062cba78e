# fobgw: a userspace WireGuard FOB gateway.
#   make demo   the gateway doing its job in the story's world (network namespaces; root)
#   make test   every test, unit and kernel end to end (root)

GO        ?= go
BIN       := bin
LDFLAGS   := -s -w
GOFLAGS_STATIC := CGO_ENABLED=0

# Debian packages the lab, the kernel tests and the benchmarks use.
DEB_PACKAGES := iproute2 wireguard-tools dnsmasq-base iperf3 nftables iptables \
                tcpdump curl dnsperf bind9-dnsutils procps psmisc kmod iputils-ping ca-certificates \
                qemu-user-static

.PHONY: all build cross cross-test test unit vet fmt-check tidy-check fuzz demo bench deps clean

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw ./cmd/fobgw

# Static binaries for the boards fobgw is made for; mips and mipsle (OpenWrt routers) without an FPU.
cross:
	GOOS=linux GOARCH=amd64 $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-amd64 ./cmd/fobgw
	GOOS=linux GOARCH=arm64 $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-arm64 ./cmd/fobgw
	GOOS=linux GOARCH=arm GOARM=7 $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-armv7 ./cmd/fobgw
	GOOS=linux GOARCH=mips GOMIPS=softfloat $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-mips ./cmd/fobgw
	GOOS=linux GOARCH=mipsle GOMIPS=softfloat $(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fobgw-linux-mipsle ./cmd/fobgw

# The tests that need no kernel (clamp, DNS wire format and cache, config parser) on arm64, armv7
# and big-endian mips under qemu-user (qemu-user-static, see deps); .ci/cross-test names them.
cross-test:
	GO=$(GO) bash .ci/cross-test

# Installs the Debian packages above when one is missing (needs root).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit"; exit 1; }

# Every test: unit tests, fuzz seed corpora, netlink tests in fresh namespaces and
# the end-to-end tests in the story's world. Kernel tests need root and fail (never
# skip) without it.
test: fmt-check vet tidy-check
	$(GO) test -count=1 -timeout 12m ./...

# Short fuzzing runs of every fuzz target.
fuzz:
	$(GO) test -run XXX -fuzz FuzzClamp -fuzztime 60s ./mssclamp

demo: deps
	bash bench/demo.sh

bench: deps
	bash bench/throughput.sh

clean:
	rm -rf $(BIN)
