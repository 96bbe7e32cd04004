# The irsafs benchmark (tests/bench/README.md). Included by the top-level Makefile, or used as
#   make -f Makefile -f tests/bench/bench.mk bench-quick
#
#   make bench        install what is missing (as root), build irsafs and memfs, run everything
#                     (3 runs, 1 GiB object, raw and shaped server); publishes table.md and
#                     chart.png to tests/bench/results/
#   make bench-quick  the same with 1 run and smaller sizes, to try it out (not published)
#
# Settings pass through the environment: BENCH_RUNS, BENCH_BIG_MB, BENCH_SMALL_FILES,
# BENCH_DIR_KEYS, BENCH_FIO_SECONDS, BENCH_MODES, BENCH_SYSTEMS, BENCH_IRSAFS_ARGS... (see
# tests/bench/bench.py). Results go to $(BUILD)/bench/.

ifndef IRSAFS_BENCH_MK
IRSAFS_BENCH_MK := $(lastword $(MAKEFILE_LIST))

BUILD     ?= build
PYTHON    ?= /usr/bin/python3
BENCH_OUT := $(BUILD)/bench
MEMFS     := $(BENCH_OUT)/memfs
BENCH_PKGS := s3fs rclone fio gnuplot-nox curl fuse3 python3-botocore

# A sub-make reads both makefiles whether or not the top-level Makefile includes this one.
BENCH_MAKE = $(MAKE) --no-print-directory -f Makefile -f $(IRSAFS_BENCH_MK)

.PHONY: bench bench-quick bench-deps bench-build

bench-deps:
	@packaging/install-deps.sh
	@missing=""; \
	for p in $(BENCH_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "bench: installing:$$missing"; \
		apt-get update -qq || true; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null; \
	else \
		echo "bench: not installed:$$missing (columns that need them are skipped)" >&2; \
	fi

# pkg-config is read when a makefile is parsed: build in a sub-make, after bench-deps.
bench-build: bench-deps
	@$(BENCH_MAKE) all $(MEMFS)

$(MEMFS): tests/bench/memfs.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE -DFUSE_USE_VERSION=312 -O2 -g -Wall -Wextra \
		$(shell pkg-config --cflags fuse3) -pthread -o $@ $< $(shell pkg-config --libs fuse3)

bench: bench-build
	IRSAFS_BIN=$(abspath $(BUILD)/irsafs) MEMFS_BIN=$(abspath $(MEMFS)) \
		BENCH_OUT=$(abspath $(BENCH_OUT)) $(PYTHON) tests/bench/bench.py --publish

bench-quick: bench-build
	IRSAFS_BIN=$(abspath $(BUILD)/irsafs) MEMFS_BIN=$(abspath $(MEMFS)) \
		BENCH_OUT=$(abspath $(BENCH_OUT)) $(PYTHON) tests/bench/bench.py --quick

endif
