# Route-restore benchmark (issue 5 target: Serve route back ≤ 5 s after a tailscaled/sidecar restart).
BENCH_TARGETS += bench-route-restore

.PHONY: bench-route-restore

## bench-route-restore: SIGKILL tailscaled / the sidecar repeatedly, time until the route is back.
bench-route-restore:
	$(CARGO) build --release --bin clawgate --example bench_route_restore
	CLAWGATE_BIN=target/release/clawgate target/release/examples/bench_route_restore
