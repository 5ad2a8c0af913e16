# relayd: plain Makefile. `make` builds ./relayd, `make check` runs every test.
# SANITIZE=1 builds with ASan + UBSan (and LeakSanitizer) for the whole suite.

PKGS     := libevent libevent_pthreads libcap openssl libssh2 inih libsystemd libseccomp
VERSION  := 0.1.0
PREFIX   ?= /usr/local

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
            -Wformat=2 -Wpointer-arith -Wcast-qual -Wwrite-strings -Wvla \
            -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -DRELAYD_VERSION='"$(VERSION)"' -I. \
            $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS))

ifeq ($(SANITIZE),1)
CFLAGS   += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(WERROR),1)
WARN     += -Werror
endif

# Everything but main.c also links into the unit tests.
LIB_SRCS := $(wildcard relay/*.c caps/*.c tunnel/*.c)
LIB_SRCS := $(filter-out relay/main.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:.c=.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:.c=)

PYTHON   ?= /usr/bin/python3

all: relayd

relayd: relay/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

%.o: %.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

tests/unit/test_%: tests/unit/test_%.c $(LIB_OBJS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; ./$$t; done

e2e: relayd
	RELAYD=$(CURDIR)/relayd RELAYD_SANITIZE=$(SANITIZE) \
	    $(PYTHON) -m pytest -q tests/e2e

# The one test command: installs what is missing, builds, runs every suite.
check:
	scripts/install-deps
	$(MAKE) clean-objs-if-flavour-changed
	$(MAKE) WERROR=1 relayd $(UNIT_BINS)
	$(MAKE) unit
	$(MAKE) e2e

# Objects built with and without sanitizers must not mix.
FLAVOUR := sanitize=$(SANITIZE)
clean-objs-if-flavour-changed:
	@if [ "$$(cat .build-flavour 2>/dev/null)" != "$(FLAVOUR)" ]; then \
	    rm -f relayd $(UNIT_BINS) relay/*.o caps/*.o tunnel/*.o; \
	    echo "$(FLAVOUR)" > .build-flavour; fi

run: relayd
	scripts/install-deps
	./relayd --listen $(or $(LISTEN),80) --to $(or $(TO),127.0.0.1:10080) $(ARGS)

# Where `make install` puts things. /etc is not under PREFIX: the config
# and init script paths are fixed. systemd looks for units in
# /usr/local/lib/systemd/system and, for PREFIX=/usr, /lib/systemd/system.
SBINDIR  := $(PREFIX)/sbin
MANDIR   := $(PREFIX)/share/man
UNITDIR  := $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
# The units and the init script say /usr/local/sbin/relayd; installed, they
# name the binary where this PREFIX puts it.
SET_SBIN := sed 's|/usr/local/sbin/relayd|$(SBINDIR)/relayd|g'

# The config is installed only if there is none: it is the admin's (0640:
# chgrp it to the user relayd runs as, which must read it to reload).
install: relayd
	install -D -m 0755 relayd $(DESTDIR)$(SBINDIR)/relayd
	install -D -m 0644 doc/relayd.8 $(DESTDIR)$(MANDIR)/man8/relayd.8
	install -D -m 0644 doc/relayd.conf.5 $(DESTDIR)$(MANDIR)/man5/relayd.conf.5
	install -d -m 0755 $(DESTDIR)/etc/relayd $(DESTDIR)/etc/init.d \
	    $(DESTDIR)$(UNITDIR)
	test -e $(DESTDIR)/etc/relayd/relayd.conf || \
	    install -m 0640 etc/relayd.conf $(DESTDIR)/etc/relayd/relayd.conf
	$(SET_SBIN) etc/systemd/relayd.service > $(DESTDIR)$(UNITDIR)/relayd.service
	$(SET_SBIN) etc/systemd/relayd.socket > $(DESTDIR)$(UNITDIR)/relayd.socket
	$(SET_SBIN) etc/init.d/relayd > $(DESTDIR)/etc/init.d/relayd
	chmod 0644 $(DESTDIR)$(UNITDIR)/relayd.service $(DESTDIR)$(UNITDIR)/relayd.socket
	chmod 0755 $(DESTDIR)/etc/init.d/relayd

# Leaves /etc/relayd/relayd.conf unless it is still the example as shipped.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relayd $(DESTDIR)$(MANDIR)/man8/relayd.8 \
	    $(DESTDIR)$(MANDIR)/man5/relayd.conf.5 \
	    $(DESTDIR)$(UNITDIR)/relayd.service $(DESTDIR)$(UNITDIR)/relayd.socket \
	    $(DESTDIR)/etc/init.d/relayd
	if cmp -s etc/relayd.conf $(DESTDIR)/etc/relayd/relayd.conf; then \
	    rm -f $(DESTDIR)/etc/relayd/relayd.conf; \
	    rmdir $(DESTDIR)/etc/relayd 2>/dev/null || true; fi

clean:
	rm -f relayd $(UNIT_BINS) .build-flavour
	find . -type f \( -name '*.o' -o -name '*.d' \) -delete

.PHONY: all unit e2e check run install uninstall clean clean-objs-if-flavour-changed
-include $(shell find . -type f -name '*.d' 2>/dev/null)
