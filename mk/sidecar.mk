# mk/sidecar.mk — the Go half of the Tailscale plumbing (sidecar/): clawgate-tsnet, the offline
# testnet harness, and tailscaled/tailscale built from the same pinned tailscale.com tag.
# Decisions: docs/decisions/0001-sidecar-go-module-deps.md.

SIDECAR_DIR := sidecar
SIDECAR_BIN := $(SIDECAR_DIR)/bin
GO          ?= go
# The module needs go >= 1.26.6 (tailscale.com v1.102.3). "auto" uses the local toolchain when it
# is new enough (GOTOOLCHAIN=local behaviour) and otherwise fetches go1.26.6 via the module proxy.
SIDECAR_GO  := cd $(SIDECAR_DIR) && GOTOOLCHAIN=auto GOFLAGS=-mod=readonly $(GO)
# Bounds a hung test run; the whole Go suite normally takes a few seconds.
SIDECAR_TEST_TIMEOUT ?= 300s

SIDECAR_SRCS := $(shell find $(SIDECAR_DIR) -name '*.go' -not -path '*/bin/*' 2>/dev/null) \
                $(SIDECAR_DIR)/go.mod $(SIDECAR_DIR)/go.sum
SIDECAR_BINS := $(SIDECAR_BIN)/clawgate-tsnet $(SIDECAR_BIN)/clawgate-testnet \
                $(SIDECAR_BIN)/tailscaled $(SIDECAR_BIN)/tailscale

DEPS_TARGETS += deps-sidecar
TEST_TARGETS += test-sidecar

.PHONY: deps-sidecar sidecar test-sidecar sidecar-mod-download

## make deps-sidecar: warm the Go module cache (go mod download) and build the binaries the Rust
## integration tests spawn (sidecar/bin/*).
deps-sidecar: sidecar-mod-download sidecar

sidecar-mod-download:
	@command -v $(GO) >/dev/null || { echo "deps-sidecar: Go is not installed (need go >= 1.21 to bootstrap go1.26.6; e.g. apt-get install golang-go)"; exit 1; }
	$(SIDECAR_GO) mod download

## make sidecar: build sidecar/bin/{clawgate-tsnet,clawgate-testnet,tailscaled,tailscale}.
sidecar: $(SIDECAR_BINS)

$(SIDECAR_BIN)/clawgate-tsnet $(SIDECAR_BIN)/clawgate-testnet: $(SIDECAR_SRCS)
	$(SIDECAR_GO) build -o bin/ ./cmd/$(notdir $@)

# tailscaled and the CLI come from the tailscale.com version pinned in sidecar/go.mod (tool lines).
$(SIDECAR_BIN)/tailscaled $(SIDECAR_BIN)/tailscale: $(SIDECAR_DIR)/go.mod $(SIDECAR_DIR)/go.sum
	$(SIDECAR_GO) build -o bin/ tailscale.com/cmd/$(notdir $@)

## make test-sidecar: go vet + go test (tests use an in-process offline tailnet; the real
## tailscaled test uses sidecar/bin/tailscaled).
test-sidecar: sidecar
	$(SIDECAR_GO) vet ./...
	$(SIDECAR_GO) test -count=1 -timeout $(SIDECAR_TEST_TIMEOUT) ./...
