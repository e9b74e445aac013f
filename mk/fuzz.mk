# Fuzzing (tests/fuzz/: cargo-fuzz crate, bodies shared with tests/fuzz_smoke.rs).
# `make fuzz` runs every target for FUZZ_SECONDS on the nightly toolchain (coverage-guided
# libFuzzer); `make fuzz-ci` is the short pass .ci/run runs. New crashes land in
# tests/fuzz/artifacts/<target>/; copy a fixed one into tests/fuzz/seeds/<target>/ so
# tests/fuzz_smoke.rs keeps it as a regression test on stable.

FUZZ_SECONDS  ?= 60
FUZZ_TARGETS  := frame_parser frame_guard connect_params signature_payload setup_code proxy_v2 ipn_bus txt_zone config_json5
FUZZ_DIR      := tests/fuzz
# No sanitizer: clawgate forbids unsafe code, so ASan buys little and doubles the build; debug
# assertions (overflow checks) stay on.
FUZZ_FLAGS    ?= --sanitizer none --debug-assertions

.PHONY: fuzz fuzz-ci deps-fuzz

## deps-fuzz: cargo-fuzz (crates.io) and a nightly toolchain.
deps-fuzz:
	@rustup toolchain list | grep -q '^nightly' || { echo "make fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

## fuzz: every target for FUZZ_SECONDS (default 60 s), corpus seeded from tests/fuzz/seeds.
fuzz: deps-fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(CACHE_DIR)/fuzz-corpus/$$t; log=$(CACHE_DIR)/fuzz-$$t.log; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s, log $$log)"; \
	  if ! $(CARGO) +nightly fuzz run --fuzz-dir $(FUZZ_DIR) $(FUZZ_FLAGS) $$t \
	      $(CACHE_DIR)/fuzz-corpus/$$t $(FUZZ_DIR)/seeds/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 >$$log 2>&1; then \
	    tail -n 60 $$log; echo "fuzz target $$t failed: reproduce with the artifact named above" >&2; exit 1; \
	  fi; \
	  grep -E '^stat::number_of_executed_units' $$log || true; \
	done

## fuzz-ci: the short pass CI runs (5 s per target).
fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5
