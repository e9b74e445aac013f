# Reverse proxy in front of the gateway (src/auth/proxy.rs, tests/trusted_proxy.rs): the
# trusted-proxy tests run Debian's nginx in network namespaces (threats.md PX-1…PX-8).

DEPS_TARGETS += deps-proxy

.PHONY: deps-proxy

## deps-proxy: nginx (the real reverse proxy the trusted-proxy tests put in front of the gateway).
deps-proxy:
	@command -v nginx >/dev/null 2>&1 || command -v /usr/sbin/nginx >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light; }
