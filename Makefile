# irsafs: one non-recursive Makefile. Objects go under build/; headers are tracked with -MMD.
#
#   make            build build/irsafs
#   make check      install what is missing, build, run unit and integration tests
#   make demo       install what is missing, build, mount a local sample bucket and show it
#   make demo-stop  unmount the demo and stop its server
#   make install    irsafs, the mount.irsafs helper and irsafs(8) (PREFIX, DESTDIR)
#   make unit       unit tests only;  make integration  mount tests only
#   make asan       unit + integration under ASan/UBSan;  make tsan  concurrency under TSan
#   make fuzz       every libFuzzer harness for FUZZ_SECONDS (tests/fuzz/fuzz.mk)
#   make clean

VERSION := 0.1.0
BUILD   ?= build
CC      ?= gcc
PYTHON  ?= /usr/bin/python3
PKGS    := fuse3 libcurl openssl libxml-2.0 json-c libmicrohttpd

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARNINGS := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifneq ($(CI),)
WARNINGS += -Werror
endif
OPT      ?= -O2 -g
SANITIZE ?=
CFLAGS   += -std=c17 -D_GNU_SOURCE -DFUSE_USE_VERSION=312 $(OPT) $(WARNINGS) $(SANITIZE) -pthread -MMD -MP \
            -DIRSAFS_VERSION=\"$(VERSION)\" -I. $(PKG_CFLAGS)
LDFLAGS  += $(SANITIZE) -pthread
LDLIBS   += $(PKG_LIBS)

# Per-folder sources. s3/ knows HTTP and S3; auth/ makes credentials; fs/ is the filesystem.
S3_SRCS   := s3/log.c s3/buf.c s3/status.c s3/xml.c s3/uri.c s3/date.c s3/sigv4.c \
             s3/credentials.c s3/listing.c s3/http.c s3/endpoint.c s3/metrics.c \
             s3/client.c
AUTH_SRCS := auth/util.c auth/env.c auth/web_identity.c auth/container.c auth/imds.c \
             auth/refresher.c auth/chain.c
FS_SRCS   := fs/names.c fs/errno_map.c fs/backend_s3.c fs/dirlist.c fs/dircache.c fs/tree.c \
             fs/cache.c fs/fetcher.c fs/reader.c fs/metrics.c fs/metrics_server.c fs/ops.c \
             fs/options.c fs/readahead.c
MAIN_SRCS := fs/main.c

LIB_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(S3_SRCS) $(AUTH_SRCS) $(FS_SRCS))
MAIN_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(MAIN_SRCS))
LIB       := $(BUILD)/libirsafs.a
BIN       := $(BUILD)/irsafs

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps test-deps check unit integration asan asan-integration tsan tsan-integration \
        demo demo-stop install uninstall clean
all: $(BIN)

$(BIN): $(MAIN_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/harness.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

deps:
	@packaging/install-deps.sh

test-deps:
	@packaging/install-deps.sh --test

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

# PYTEST_ARGS narrows a run, e.g. PYTEST_ARGS='-k faults' or PYTEST_ARGS='-m "not slow"'.
PYTEST_ARGS ?=
integration: $(BIN)
	IRSAFS_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

# Sanitized builds get their own build directories. Integration runs write sanitizer reports
# to files (the daemon's stderr is not the test's); any report fails the run.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TSAN_FLAGS := -fsanitize=thread
SAN_LOGS    = $(abspath $(BUILD))/logs
CHECK_LOGS  = if ls $(SAN_LOGS)/* >/dev/null 2>&1; then cat $(SAN_LOGS)/*; \
              echo "sanitizer reports above ($(SAN_LOGS))"; exit 1; fi

# Unit and integration tests under AddressSanitizer + UBSan. The tests of the test servers
# themselves never start irsafs, so a sanitized run leaves them out.
ASAN_PYTEST_ARGS := --ignore tests/integration/test_s3server.py \
                    --ignore tests/integration/test_credserver.py
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE="$(ASAN_FLAGS)" OPT="-O1 -g" \
		all unit asan-integration

asan-integration:
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	ASAN_OPTIONS=log_path=$(SAN_LOGS)/asan:detect_leaks=1 \
	UBSAN_OPTIONS=log_path=$(SAN_LOGS)/ubsan:print_stacktrace=1 \
	IRSAFS_SANITIZED=1 IRSAFS_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/integration \
		$(ASAN_PYTEST_ARGS) $(PYTEST_ARGS)
	@$(CHECK_LOGS)

# The concurrent parts under ThreadSanitizer: threaded unit tests, the stress test, the
# data-path tests and the metrics (counted by every thread, read by the metrics server's).
tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan CC=clang SANITIZE="$(TSAN_FLAGS)" \
		OPT="-O1 -g" all $(BUILD_TSAN_UNITS) tsan-integration

BUILD_TSAN_UNITS = build/tsan/tests/test_reader build/tsan/tests/test_tree \
                   build/tsan/tests/test_auth

tsan-integration:
	@set -e; for t in $(BUILD_TSAN_UNITS); do echo "== $$t"; $$t; done
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	TSAN_OPTIONS=log_path=$(SAN_LOGS)/tsan IRSAFS_SANITIZED=1 IRSAFS_BIN=$(abspath $(BIN)) \
		$(PYTHON) -m pytest -q tests/integration/test_stress.py \
		tests/integration/test_data_path.py tests/integration/test_observability.py
	@$(CHECK_LOGS)

# The two commands of the README. Dependencies are installed first, in a separate make, because
# pkg-config above is read when this Makefile is parsed.
# The slow credential-lifetime tests (pytest -m slow) run once, in the sanitized run, so that
# check stays well under 20 minutes on two CPUs; every other test runs plain and sanitized.
check: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration PYTEST_ARGS='-m "not slow"'
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory -j2 fuzz-smoke

demo: test-deps
	@$(MAKE) --no-print-directory all
	@$(PYTHON) tests/demo.py start $(abspath $(BIN))

demo-stop:
	@$(PYTHON) tests/demo.py stop

# Installation: the binary, the mount(8) helper (for `mount -t fuse.irsafs` and fstab) and
# the man page. DESTDIR for staging, PREFIX for the layout.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= /sbin
MANDIR  ?= $(PREFIX)/share/man

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/irsafs
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/mount.irsafs > $(DESTDIR)$(SBINDIR)/mount.irsafs
	chmod 0755 $(DESTDIR)$(SBINDIR)/mount.irsafs
	ln -sf mount.irsafs $(DESTDIR)$(SBINDIR)/mount.fuse.irsafs
	install -m 0644 packaging/irsafs.8 $(DESTDIR)$(MANDIR)/man8/irsafs.8

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/irsafs $(DESTDIR)$(SBINDIR)/mount.irsafs \
		$(DESTDIR)$(SBINDIR)/mount.fuse.irsafs $(DESTDIR)$(MANDIR)/man8/irsafs.8

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJS:.o=.d)

# Fuzzing (libFuzzer, clang): targets live in tests/fuzz/fuzz.mk.
-include tests/fuzz/fuzz.mk

# Benchmark against s3fs, rclone and the machine's limits (not part of check): tests/bench/bench.mk.
-include tests/bench/bench.mk
