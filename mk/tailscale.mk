# Tailscale plumbing (src/tailscale/, tests/tailscale_*.rs).
# The offline-tailnet tests (tests/tailscale_testnet.rs) use sidecar/bin/{clawgate-testnet,
# clawgate-tsnet,tailscaled} (built by the sidecar's make fragment, or CLAWGATE_*_BIN) and the
# openssl CLI to verify certificate chains. They skip when the binaries are absent unless
# CLAWGATE_REQUIRE_TESTNET=1.

DEPS_TARGETS += deps-tailscale

.PHONY: deps-tailscale test-tailscale

## deps-tailscale: the openssl CLI used by the certificate-chain test.
deps-tailscale:
	@command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl; }

## test-tailscale: only the Tailscale suites, with the testnet required.
test-tailscale:
	CLAWGATE_REQUIRE_TESTNET=1 $(CARGO) test --release --test tailscale_parse --test tailscale_client \
		--test tailscale_fake --test tailscale_sidecar --test tailscale_testnet
	$(CARGO) test --release --lib tailscale::
