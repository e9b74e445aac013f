# Benchmarks (BENCHMARKS.md): clawgate-bench against the floor and clawgate (make bench), plus the
# reference OpenClaw gateway side by side (make bench-peer, writes BENCHMARKS.md). Never part of make test.
BENCH_TARGETS += bench-run

.PHONY: bench-run bench-peer bench-capture-reference

## make bench: floor + clawgate, results and table under target/bench/<stamp>/.
bench-run: build
	bash scripts/bench.sh

## make bench-peer: floor + clawgate + reference OpenClaw in one run; writes BENCHMARKS.md.
bench-peer: build deps-openclaw
	bash scripts/bench.sh --peer

## make bench-capture-reference: re-capture tests/fixtures/reference/ from the reference gateway.
bench-capture-reference: deps-openclaw
	CAPTURE_IDLE_MS=31000 bash scripts/bench-capture-reference.sh
