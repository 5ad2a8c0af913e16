# relayd: plain Makefile. `make` builds ./relayd, `make check` runs every test.
# SANITIZE=1 builds with ASan + UBSan (and LeakSanitizer) for the whole suite.
# LIBSSH2=patched links a libssh2 of our own instead of the distribution's
# (see below); every target takes it, `make check` and `make deb` included.

PKGS     := libevent libevent_pthreads libcap openssl libssh2 inih libsystemd libseccomp
VERSION  := 0.1.0
PREFIX   ?= /usr/local

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
            -Wformat=2 -Wpointer-arith -Wcast-qual -Wwrite-strings -Wvla \
            -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -DRELAYD_VERSION='"$(VERSION)"' -I. \
            $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDLIBS   += $(shell $(PKG_CONFIG) --libs $(PKGS))

ifeq ($(SANITIZE),1)
CFLAGS   += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(WERROR),1)
WARN     += -Werror
endif

# The tunnel flavour: Debian 13's libssh2 1.11.1 with our patches
# (third_party/libssh2/*.patch: one cipher call per run of blocks, under
# half the tunnel's CPU per GB), fetched and built static by
# third_party/libssh2/build.sh into its build/prefix, which pkg-config is
# pointed at. The default links the distribution's libssh2.
LIBSSH2  ?= system
PKG_CONFIG := pkg-config
ifeq ($(LIBSSH2),patched)
LIBSSH2_DIR := third_party/libssh2
LIBSSH2_LIB := $(LIBSSH2_DIR)/build/prefix/lib/libssh2.a
PKG_CONFIG := PKG_CONFIG_PATH=$(CURDIR)/$(LIBSSH2_DIR)/build/prefix/lib/pkgconfig \
              pkg-config
else ifneq ($(LIBSSH2),system)
$(error LIBSSH2 is system (the default) or patched, not $(LIBSSH2))
endif

# Objects of different flavours (with sanitizers or not, either libssh2)
# must not mix: every object depends on .build-flavour, which is rewritten
# only when the flavour asked for differs from the last one.
FLAVOUR  := sanitize=$(SANITIZE) libssh2=$(LIBSSH2)
ifneq ($(shell cat .build-flavour 2>/dev/null),$(FLAVOUR))
$(shell echo '$(FLAVOUR)' > .build-flavour)
endif
# Written above while the Makefile is read, which make's view of the
# directory may not show yet: this rule keeps a fresh tree from falling
# back to make's built-in rules (no warnings, no fuzz targets).
.build-flavour: ;

# Everything but daemon/main.c also links into the unit tests.
LIB_SRCS := $(wildcard relay/*.c caps/*.c tunnel/*.c acme/*.c daemon/*.c)
LIB_SRCS := $(filter-out daemon/main.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:.c=.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:.c=)

PYTHON   ?= /usr/bin/python3

# Fuzzing (tests/fuzz/fuzz.h): every tests/fuzz/fuzz_NAME.c is a libFuzzer
# target, found by name; a new one needs only its file and a
# tests/fuzz/corpus/NAME/ directory. clang builds the fuzzers in
# tests/fuzz/build/; $(CC) builds replay_NAME, which `make check` runs.
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := tests/fuzz/build
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
REPLAY_BINS  := $(FUZZ_TARGETS:%=tests/fuzz/replay_%)

all: relayd

relayd: daemon/main.o $(LIB_OBJS) $(LIBSSH2_LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

%.o: %.c .build-flavour | $(LIBSSH2_LIB)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

ifdef LIBSSH2_LIB
$(LIBSSH2_LIB): $(LIBSSH2_DIR)/build.sh $(wildcard $(LIBSSH2_DIR)/*.patch)
	$(LIBSSH2_DIR)/build.sh
endif

tests/unit/test_%: tests/unit/test_%.c $(LIB_OBJS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(FUZZ_BUILD)/%.o: %.c .build-flavour | $(LIBSSH2_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) $(WARN) \
	    -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) $(WARN) \
	    -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(LIB_OBJS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< \
	    tests/fuzz/replay.c $(LIB_OBJS) $(LDLIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; ./$$t; done

# Twice: TCP <-> TCP spliced (the default), then everything copied.
E2E := RELAYD=$(CURDIR)/relayd RELAYD_SANITIZE=$(SANITIZE) \
    $(PYTHON) -m pytest -q tests/e2e
# The suite runs again with splicing off, but for the fault suite's longest
# parts: sshd restarts and partitions (tunnel only, never spliced) and the
# 100,000 connections (descriptor hygiene, which the spliced run covers).
e2e: relayd
	$(E2E)
	RELAYD_EXTRA_ARGS=--no-splice $(E2E) \
	    --ignore=tests/e2e/test_faults_tunnel.py \
	    -k 'not test_100k_short_connections'

# Every committed corpus and crash reproducer through every target, once:
# no fuzzing, so it is fast, and a bug that comes back fails the check.
fuzz-replay: $(REPLAY_BINS)
	@set -e; for t in $(REPLAY_BINS); do \
	    ./$$t tests/fuzz/corpus $$(ls -d tests/fuzz/crashes 2>/dev/null); done

# Runs each fuzzer for FUZZ_SECONDS from the committed corpus. What it
# finds goes to tests/fuzz/build/corpus/NAME (not committed: see
# fuzz-merge); crash reproducers to tests/fuzz/crashes/NAME/. Fails at
# the end if any target crashed.
fuzz: $(FUZZ_BINS)
	@failed=""; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t tests/fuzz/crashes/$$t; \
	    dict=tests/fuzz/$$t.dict; \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS)s"; \
	    $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -print_final_stats=1 -artifact_prefix=tests/fuzz/crashes/$$t/ \
	        $$([ -f $$dict ] && echo -dict=$$dict) \
	        $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
	        2> $(FUZZ_BUILD)/fuzz_$$t.log || failed="$$failed $$t"; \
	    grep -E '^(stat::|#[0-9]+[[:space:]]+DONE)' $(FUZZ_BUILD)/fuzz_$$t.log; \
	    rmdir tests/fuzz/crashes/$$t tests/fuzz/crashes 2>/dev/null; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed" \
	    "(reproducers in tests/fuzz/crashes/, logs in $(FUZZ_BUILD)/)"; \
	    exit 1; fi

# Adds to the committed corpus only the inputs from `make fuzz` runs that
# reach new coverage (libFuzzer's -merge=1 keeps the smallest set).
fuzz-merge: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    $(FUZZ_BUILD)/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t \
	        $(FUZZ_BUILD)/corpus/$$t 2> $(FUZZ_BUILD)/merge_$$t.log; \
	    echo "$$t: $$(grep -Eo '[0-9]+ new files' $(FUZZ_BUILD)/merge_$$t.log)"; \
	done

# The one test command: installs what is missing, builds, runs every suite.
check:
	scripts/install-deps
	$(MAKE) WERROR=1 relayd $(UNIT_BINS) $(REPLAY_BINS)
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) e2e

# Installs what building needs first: on a fresh machine nothing is there.
run:
	scripts/install-deps build
	$(MAKE) relayd
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

# A Debian package for this machine's release (12 or 13), built by Debian's
# own tools from debian/, then checked by lintian. The build runs no test
# (`make check` does) and cleans the tree (`make clean`) before and after.
# dpkg-buildpackage writes beside the tree; its results move here:
# relayd_VERSION_ARCH.deb, its -dbgsym, .buildinfo and .changes.
# LIBSSH2=patched links our libssh2 statically, by design: lintian's
# embedded-library error would only say so.
LINTIAN_FLAGS := $(if $(filter patched,$(LIBSSH2)),--suppress-tags embedded-library)
deb:
	scripts/install-deps deb
	LIBSSH2=$(LIBSSH2) dpkg-buildpackage -b -tc --no-sign
	v=$$(dpkg-parsechangelog -SVersion) a=$$(dpkg-architecture -qDEB_HOST_ARCH); \
	    mv ../relayd_$${v}_$$a.deb ../relayd-dbgsym_$${v}_$$a.deb \
	        ../relayd_$${v}_$$a.buildinfo ../relayd_$${v}_$$a.changes . && \
	    lintian $(LINTIAN_FLAGS) relayd_$${v}_$$a.changes

clean:
	rm -f relayd $(UNIT_BINS) $(REPLAY_BINS) .build-flavour
	rm -f relayd_*.deb relayd-dbgsym_*.deb relayd_*.buildinfo relayd_*.changes
	rm -rf $(FUZZ_BUILD)
	find . -type f \( -name '*.o' -o -name '*.d' \) -delete

# `make clean` keeps the patched libssh2 (a download and a build): this
# removes it.
clean-libssh2:
	rm -rf third_party/libssh2/build

.PHONY: all unit e2e fuzz fuzz-replay fuzz-merge check run install uninstall deb clean clean-libssh2
-include $(shell find . -type f -name '*.d' 2>/dev/null)
