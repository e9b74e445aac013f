# clawgate — top-level build. Each subsystem owns a fragment in mk/*.mk that appends
# to DEPS_TARGETS / TEST_TARGETS / BENCH_TARGETS, so parallel work never edits this file.
CARGO      ?= cargo
CACHE_DIR  ?= $(HOME)/.cache/clawgate
export CACHE_DIR
# Cargo's output dir: honours CARGO_TARGET_DIR like cargo itself.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
BIN_DIR    := $(TARGET_DIR)/release

DEPS_TARGETS  :=
TEST_TARGETS  := test-rust
BENCH_TARGETS :=

-include mk/*.mk

.PHONY: all build run test deps test-rust lint bench fmt
all: build

build:
	$(CARGO) build --release --bins

## make run: build and start the gateway with embedded defaults (loopback, generated token).
run: build
	$(BIN_DIR)/clawgate run

## make test: install what the suite needs, then run every suite.
test: deps
	$(MAKE) --no-print-directory $(TEST_TARGETS)

deps: $(DEPS_TARGETS)

test-rust:
	CLAWGATE_REQUIRE_INTEROP=1 CLAWGATE_REQUIRE_TESTNET=1 CLAWGATE_REQUIRE_NETNS=1 OPENCLAW_PEER_DIR=$(CACHE_DIR)/oc $(CARGO) test --release --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

bench: build $(BENCH_TARGETS)
