# seatcast - real-time seat availability over WebSocket
#
#   make            build build/seatcast
#   make check      install missing packages, build, run unit + integration
#   make demo       install missing packages, build, run a demo database+server
#   make install    PREFIX=/usr/local DESTDIR=
#   make deps       install missing Debian packages (apt-get), print them
#   make mutants    plant each bug of tests/mutants/ and check its test fails
#   make clean
#
# Sanitizer build: make SANITIZE=address,undefined BUILD=build/asan check

VERSION   = 0.1.0
BUILD    ?= build
PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
DATADIR  ?= $(PREFIX)/share/seatcast
SYSCONFDIR ?= /etc

PKGS      = libevent_core libcrypto libcjson libpq
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wcast-qual \
            -Wwrite-strings -Wformat=2 -Wvla
CFLAGS   ?= -O2 -g
SC_CFLAGS = -std=c11 -D_GNU_SOURCE -Iinclude -Ishm $(WARN) \
            -DSC_VERSION='"$(VERSION)"' \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

ifdef SANITIZE
SC_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

SHM_SRC   = $(wildcard shm/*.c)
LIB_SRC   = $(filter-out src/main.c,$(wildcard src/*.c))
SHM_OBJ   = $(SHM_SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ  = $(BUILD)/obj/src/main.o
UNIT_SRC  = $(wildcard tests/unit/check_*.c)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HEADERS   = $(wildcard include/*.h shm/*.h)

# Debian packages: to build, to test, to run the demo.
DEB_BUILD = gcc make pkg-config libevent-dev libssl-dev libcjson-dev \
            libpq-dev check
DEB_TEST  = postgresql-15 python3 python3-pytest python3-websockets \
            nginx-light mandoc clang libclang-rt-14-dev valgrind chromium \
            prometheus \
            procps
DEB_ALL   = $(DEB_BUILD) $(DEB_TEST)

.PHONY: all check unit integration install clean deps demo check-headers \
        node-deps fuzz fuzz-run fuzz-long unit unit-bins integration-asan \
        mutants integration-logical

all: $(BUILD)/seatcast

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SC_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libscshm.a: $(SHM_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libseatcast.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/seatcast: $(MAIN_OBJ) $(BUILD)/libseatcast.a $(BUILD)/libscshm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/check_%: tests/unit/check_%.c $(BUILD)/libseatcast.a \
                        $(BUILD)/libscshm.a
	@mkdir -p $(dir $@)
	$(CC) $(SC_CFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -MMD -MP \
	    $(LDFLAGS) -o $@ $< $(BUILD)/libseatcast.a $(BUILD)/libscshm.a \
	    $(LIBS) $(CHECK_LIBS)

# make check: the README's test command.  Units, then the integration
# suite against real PostgreSQL, nginx and third-party clients.
check: deps
	$(MAKE) all unit-bins check-headers
	$(MAKE) unit
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=address,undefined unit
	$(MAKE) fuzz-run
	$(MAKE) integration
	$(MAKE) integration-logical
	$(MAKE) integration-asan
	$(MAKE) mutants
	$(MAKE) bench-smoke
	$(MAKE) bench-onsale-smoke

unit-bins: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
	    echo "== $$t"; CK_FORK=yes $$t || fail=1; done; \
	test $$fail = 0

# npm packages of the integration clients and of clients/js (its tests)
node-deps:
	@for d in tests/integration/node clients/js; do \
	    ( cd $$d && \
	    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; \
	    then npm ci --no-audit --no-fund --loglevel=error; fi ) || exit 1; \
	done

integration: $(BUILD)/seatcast node-deps
	SEATCAST_BIN=$(abspath $(BUILD)/seatcast) \
	    /usr/bin/python3 -m pytest -v -p no:cacheprovider tests/integration

# The live-seat and fault suites again with --source logical on a
# wal_level=logical cluster (conftest.py, server.py): both sources must
# behave the same; NOTIFY-only tests skip themselves.
integration-logical: $(BUILD)/seatcast node-deps
	SEATCAST_BIN=$(abspath $(BUILD)/seatcast) SEATCAST_TEST_SOURCE=logical \
	    /usr/bin/python3 -m pytest -v -p no:cacheprovider \
	    tests/integration/test_live_seats.py tests/integration/test_faults.py

# The integration suite again, against the AddressSanitizer and
# UndefinedBehaviorSanitizer build: a report in a server log fails the test.
integration-asan: node-deps
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=address,undefined all
	SEATCAST_BIN=$(abspath $(BUILD)/asan/seatcast) SEATCAST_SANITIZED=1 \
	    ASAN_OPTIONS=detect_leaks=1 \
	    /usr/bin/python3 -m pytest -v -p no:cacheprovider tests/integration

# Each tests/mutants/*.patch is a planted bug with the tests that must
# catch it; the run fails if one survives (tests/mutants/run.sh).
# MUTANTS="a.patch b.patch" runs only those.
mutants: $(BUILD)/seatcast unit-bins node-deps
	@tests/mutants/run.sh $(BUILD) $(MUTANTS)

check-headers:
	@for h in $(HEADERS); do \
	    echo "#include \"$$(basename $$h)\"" | \
	    $(CC) $(SC_CFLAGS) -x c -fsyntax-only - || exit 1; done

deps:
	@missing=""; for p in $(DEB_ALL); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
	        grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing Debian packages:$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi

# UNITDIR (systemd units) and DOCDIR may be given on the command line;
# the unit's paths follow SBINDIR and SYSCONFDIR.  An existing
# $(SYSCONFDIR)/seatcast/seatcast.conf is kept; the new one goes next to
# it as seatcast.conf.dist.
install: $(BUILD)/seatcast
	@unitdir='$(or $(UNITDIR),$(PREFIX)/lib/systemd/system)'; \
	docdir='$(or $(DOCDIR),$(PREFIX)/share/doc/seatcast)'; \
	set -ex; \
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR)/sql \
	    $(DESTDIR)$(SYSCONFDIR)/seatcast "$(DESTDIR)$$unitdir" \
	    "$(DESTDIR)$$docdir/examples/nginx"; \
	install -m 755 $(BUILD)/seatcast $(DESTDIR)$(SBINDIR)/seatcast; \
	install -m 644 man/seatcast.8 $(DESTDIR)$(MANDIR)/man8/seatcast.8; \
	install -m 644 man/seatcast.conf.5 $(DESTDIR)$(MANDIR)/man5/seatcast.conf.5; \
	install -m 644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/; \
	conf=$(DESTDIR)$(SYSCONFDIR)/seatcast/seatcast.conf; \
	if [ -e "$$conf" ] && ! cmp -s etc/seatcast.conf "$$conf"; then \
	    conf="$$conf.dist"; fi; \
	install -m 644 etc/seatcast.conf "$$conf"; \
	sed -e 's|/usr/sbin/seatcast|$(SBINDIR)/seatcast|g' \
	    -e 's|/etc/seatcast/|$(SYSCONFDIR)/seatcast/|g' \
	    -e 's|/etc/default/seatcast|$(SYSCONFDIR)/default/seatcast|g' \
	    etc/systemd/seatcast.service > "$(DESTDIR)$$unitdir/seatcast.service"; \
	chmod 644 "$(DESTDIR)$$unitdir/seatcast.service"; \
	install -m 644 etc/nginx/seatcast.conf \
	    "$(DESTDIR)$$docdir/examples/nginx/seatcast.conf"; \
	install -m 644 etc/seatcast.conf "$(DESTDIR)$$docdir/examples/seatcast.conf"

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, seeds in tests/fuzz/corpus/<name>/
PURE_MODS = http_req ws_handshake ws_frame utf8 jwt proto notify_msg base64 \
            text pgoutput
PURE_SRC  = $(wildcard $(PURE_MODS:%=src/%.c))
FUZZ_SRC  = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_TIME ?= 30
FUZZ_CC   = clang
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -Iinclude -Ishm -g -O1 \
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(PURE_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(PURE_SRC) $(LIBS)

fuzz: $(FUZZ_BIN)

# Runs every target for FUZZ_TIME seconds on a scratch copy of its corpus;
# a crash fails the run and leaves the input under $(BUILD)/fuzz/.
fuzz-run: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	    n=$${f##*/fuzz_}; work=$(BUILD)/fuzz/work-$$n; \
	    rm -rf $$work; mkdir -p $$work; \
	    echo "== fuzz $$n for $(FUZZ_TIME)s"; \
	    $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=0 \
	        -artifact_prefix=$(BUILD)/fuzz/crash-$$n- $$work \
	        tests/fuzz/corpus/$$n 2>$(BUILD)/fuzz/$$n.log || \
	        { tail -40 $(BUILD)/fuzz/$$n.log; exit 1; }; \
	    tail -1 $(BUILD)/fuzz/$$n.log; \
	done

fuzz-long:
	$(MAKE) fuzz-run FUZZ_TIME=600

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)

# make demo: a throwaway database under run/ and the server on :3000
demo: deps
	$(MAKE) all node-deps
	@etc/demo/demo.sh

# make bench: the load generator and its driver (tests/bench/bench.mk)
-include tests/bench/bench.mk
