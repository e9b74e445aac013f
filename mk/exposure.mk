# Tailscale-first exposure (src/exposure/, tests/exposure_*.rs, examples/bench_{tailscale,route_restore}.rs).
# The offline-tailnet tests use sidecar/bin/{clawgate-testnet,clawgate-tsnet,tailscaled} (built by
# deps-sidecar, or CLAWGATE_*_BIN) and skip without them unless CLAWGATE_REQUIRE_TESTNET=1; the
# bind=tailnet test needs root, iproute2 (ip, ss) and network namespaces.

DEPS_TARGETS  += deps-exposure
BENCH_TARGETS += bench-tailscale bench-route-restore

.PHONY: deps-exposure test-exposure bench-tailscale bench-route-restore

## deps-exposure: iproute2 for the network-namespace test.
deps-exposure:
	@command -v ip >/dev/null 2>&1 && command -v ss >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iproute2; }

## test-exposure: only the exposure suites, with the testnet required.
test-exposure: deps-exposure
	CLAWGATE_REQUIRE_TESTNET=1 $(CARGO) test --release --test exposure_tailnet --test exposure_reach --test exposure_doctor --test exposure_bind --test exposure_restart
	$(CARGO) test --release --lib exposure::

## bench-tailscale: wss connect→hello-ok per second through Serve on the offline tailnet
## (BENCH_SECS, BENCH_ROUNDS, BENCH_CONCURRENCY, BENCH_CPUPROFILE: see examples/bench_tailscale.rs).
bench-tailscale: sidecar
	$(CARGO) build --release --bin clawgate --example bench_tailscale
	CLAWGATE_BIN=$(BIN_DIR)/clawgate $(BIN_DIR)/examples/bench_tailscale

## bench-route-restore: SIGKILL tailscaled / the sidecar repeatedly (BENCH_ROUNDS), time until the
## Serve route is back (target ≤ 5 s).
bench-route-restore: sidecar
	$(CARGO) build --release --bin clawgate --example bench_route_restore
	CLAWGATE_BIN=$(BIN_DIR)/clawgate $(BIN_DIR)/examples/bench_route_restore
