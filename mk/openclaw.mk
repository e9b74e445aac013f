# The real OpenClaw CLI as an interop peer (spec/peers.md §2).
DEPS_TARGETS += deps-openclaw

.PHONY: deps-openclaw interop
deps-openclaw:
	bash scripts/install-openclaw.sh

## make interop: the real OpenClaw CLI, node host and reference gateway against clawgate (the serve,
## setup-code and Funnel ones run on vienna: root, a network namespace, sidecar/bin/tailscaled).
interop: deps-openclaw sidecar
	CLAWGATE_REQUIRE_INTEROP=1 CLAWGATE_REQUIRE_TESTNET=1 OPENCLAW_PEER_DIR=$(CACHE_DIR)/oc $(CARGO) test --release --test interop_openclaw --test interop_node --test interop_diff --test interop_serve --test interop_setup_code --test interop_funnel -- --test-threads=2
