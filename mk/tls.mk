# Gateway TLS (issue 15): tests/tls_*.rs run in make test; the direct-TLS benchmark runs in make bench.
BENCH_TARGETS += bench-tls

.PHONY: bench-tls

## bench-tls: TLS floor vs clawgate with gateway.tls over wss:// (target/bench/tls-<stamp>/).
bench-tls: build
	bash scripts/bench-tls.sh
