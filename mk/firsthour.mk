# mk/firsthour.mk — install and generated docs (issue 17; ADR 0104).

# make install: ~/.local (bin on PATH for most login shells) or /usr/local as root.
PREFIX     ?= $(if $(filter 0,$(shell id -u)),/usr/local,$(HOME)/.local)
BINDIR     ?= $(PREFIX)/bin

.PHONY: install uninstall docs

## make install [PREFIX=~/.local]: clawgate (and the clawgate-tsnet sidecar when built) into $(BINDIR).
# The install test (tests/first_hour.rs) runs inside cargo's build lock: it passes INSTALL_DEPS=.
INSTALL_DEPS ?= build
install: $(INSTALL_DEPS)
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BIN_DIR)/clawgate $(DESTDIR)$(BINDIR)/clawgate
	if [ -x sidecar/bin/clawgate-tsnet ]; then install -m 0755 sidecar/bin/clawgate-tsnet $(DESTDIR)$(BINDIR)/clawgate-tsnet; fi
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; *) echo "note: $(BINDIR) is not on PATH; add it: export PATH=\"$(BINDIR):\$$PATH\"";; esac

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/clawgate $(DESTDIR)$(BINDIR)/clawgate-tsnet

## make docs: regenerate docs/configuration.md from the config types (a test checks it is current).
docs:
	CLAWGATE_WRITE_DOCS=1 $(CARGO) test --release --lib config::docs
