# relayd: plain Makefile. `make` builds ./relayd, `make check` runs every test.
# SANITIZE=1 builds with ASan + UBSan (and LeakSanitizer) for the whole suite.

PKGS     := libevent libcap openssl libssh2 inih libsystemd
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

install: relayd
	install -D -m 0755 relayd $(DESTDIR)$(PREFIX)/sbin/relayd

clean:
	rm -f relayd $(UNIT_BINS) .build-flavour
	find . -name '*.o' -delete -o -name '*.d' -delete

.PHONY: all unit e2e check run install clean clean-objs-if-flavour-changed
-include $(shell find . -name '*.d' 2>/dev/null)
