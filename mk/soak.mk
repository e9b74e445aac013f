# Soak benchmark (issue 12 item 10, threats.md RL-1): 10,000 connections with churn plus paced RPC
# load for SOAK_SECS (default 600) seconds; p99 < 10 ms, RSS drift < 5 %, zero fd leaks. Part of
# make bench, never of make test.
BENCH_TARGETS += bench-soak

.PHONY: bench-soak

## bench-soak: scripts/bench-soak.sh (SOAK_SECS, SOAK_CONNS, SOAK_CHURN, SOAK_ARGS).
bench-soak: build
	bash scripts/bench-soak.sh
