# The managed SSH transport (src/client/ssh.rs, src/client/tunnel.rs): tests/client_ssh.rs runs
# Debian's OpenSSH server in network namespaces and the system ssh client (threats.md SSH-1/SSH-2).

DEPS_TARGETS += deps-ssh

.PHONY: deps-ssh

## deps-ssh: openssh-server + openssh-client (the real sshd and ssh the tunnel tests drive).
deps-ssh:
	@test -x /usr/sbin/sshd && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client; }
