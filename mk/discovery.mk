# Discovery (mDNS beacon, wide-area DNS-SD): peers for the interop tests (spec/peers.md §3–§6)
# and the discovery benchmark. The netns tests need root.
ZC_VERSION     := 0.154.0
ZC_VENV        := $(CACHE_DIR)/zc
DISCOVERY_APT  := avahi-daemon avahi-utils dbus iproute2 bind9-dnsutils bind9-utils python3-venv

DEPS_TARGETS  += deps-discovery
BENCH_TARGETS += bench-discovery

.PHONY: deps-discovery test-discovery bench-discovery

## deps-discovery: apt peers (apt-get update only when something is missing) + pinned python-zeroconf venv.
deps-discovery:
	@missing=""; for p in $(DISCOVERY_APT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@if ! $(ZC_VENV)/bin/python -c 'import zeroconf,sys; sys.exit(zeroconf.__version__ != "$(ZC_VERSION)")' 2>/dev/null; then \
	  python3 -m venv $(ZC_VENV) && $(ZC_VENV)/bin/pip install -q zeroconf==$(ZC_VERSION); \
	fi
	@$(ZC_VENV)/bin/python -c 'import zeroconf; print("python-zeroconf", zeroconf.__version__)'
	@avahi-daemon --version; dig -v 2>&1 | head -1

## test-discovery: only the discovery suites (unit + netns interop); `make test` runs them too.
test-discovery: deps-discovery deps-openclaw
	$(CARGO) test --release --lib -- discovery:: net_class::
	$(CARGO) test --release --test discovery_lan --test discovery_faults --test discovery_widearea --test discovery_avahi

## bench-discovery: first-announcement latency and fault-injection crash count (target/bench/discovery.json).
bench-discovery: deps-discovery
	$(CARGO) test --release --test discovery_bench -- --ignored --nocapture
