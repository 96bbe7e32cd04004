# libFuzzer harnesses, included by the top-level Makefile. See tests/fuzz/README.md.
#
#   make fuzz            build every harness and run each for FUZZ_SECONDS (default 60)
#   make fuzz-smoke      the same for FUZZ_SMOKE_SECONDS (default 5) each, for CI
#   make fuzz-build      build only: $(BUILD)/fuzz/fuzz_<name>
#   make fuzz-run-<name> run one harness for FUZZ_SECONDS (its summary: see the log)
# Runs are independent targets: `make -j2 fuzz-smoke` runs two harnesses at a time.
#
# Everything is built with clang into $(BUILD)/fuzz: the project's sources with coverage and
# ASan/UBSan (fuzzer-no-link) into their own library, each harness linked against it with
# libFuzzer. Seeds are copied to $(BUILD)/fuzz/corpus/<name>, where new inputs accumulate; crashes
# land in $(BUILD)/fuzz/artifacts and each run's output in $(BUILD)/fuzz/logs/<name>.log.

FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 5
# Extra libFuzzer options for every run, e.g. FUZZ_ARGS="-max_len=65536 -only_ascii=1".
FUZZ_ARGS          ?=
FUZZ_DIR           := $(BUILD)/fuzz

# UBSan findings abort, so libFuzzer keeps them as crashes like ASan's.
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   := -std=c17 -D_GNU_SOURCE -DFUSE_USE_VERSION=312 -DIRSAFS_VERSION=\"$(VERSION)\" \
                 -I. $(PKG_CFLAGS) -O1 -g -fno-omit-frame-pointer $(WARNINGS) -pthread -MMD -MP
FUZZ_NAMES    := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS     := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(S3_SRCS) $(AUTH_SRCS) $(FS_SRCS))
FUZZ_OBJS     := $(patsubst %,$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_NAMES))
FUZZ_LIB      := $(FUZZ_DIR)/libirsafs-fuzz.a

.PHONY: fuzz fuzz-smoke fuzz-build
# Harness objects are only reached through the pattern below; keep them between builds.
.SECONDARY: $(FUZZ_OBJS)
fuzz-build: $(FUZZ_BINS)

# Harnesses: instrumented and linked with libFuzzer's main.
$(FUZZ_DIR)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -c -o $@ $<

# The project's sources: coverage and sanitizers, no libFuzzer main.
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) -pthread

# One run per harness: $(BUILD)/fuzz/logs/<name>.log and <name>.status ("ok" or "FAILED"). A run
# never fails make itself, so every harness runs; the summary below decides. Independent, so
# `make -j2 fuzz-smoke` runs two at a time.
FUZZ_TIME ?= $(FUZZ_SECONDS)
FUZZ_RUNS := $(patsubst %,fuzz-run-%,$(FUZZ_NAMES))
.PHONY: $(FUZZ_RUNS)
$(FUZZ_RUNS): fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@set -u; corpus=$(FUZZ_DIR)/corpus/$*; log=$(FUZZ_DIR)/logs/$*.log; \
	status=$(FUZZ_DIR)/logs/$*.status; \
	rm -f $$status; mkdir -p $$corpus $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs; \
	if [ -d tests/fuzz/corpus/$* ]; then cp -R tests/fuzz/corpus/$*/. $$corpus/; fi; \
	if $< -max_total_time=$(FUZZ_TIME) -print_final_stats=1 -timeout=10 \
		-artifact_prefix=$(FUZZ_DIR)/artifacts/$*- $(FUZZ_ARGS) $$corpus >$$log 2>&1; \
	then echo ok >$$status; else echo FAILED >$$status; fi

# Prints the executions of each harness (libFuzzer's final stats) and, for a failed one, the
# sanitizer's or the harness's verdict; fails if any harness crashed, leaked or broke an
# invariant.
define fuzz_summary
	@set -u; failed=""; \
	for n in $(FUZZ_NAMES); do \
		log=$(FUZZ_DIR)/logs/$$n.log; \
		result=$$(cat $(FUZZ_DIR)/logs/$$n.status 2>/dev/null || echo FAILED); \
		execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
		printf 'fuzz %-17s %-6s %10s executions in %ss\n' $$n $$result "$${execs:-?}" \
			$(FUZZ_TIME); \
		if [ "$$result" != ok ]; then \
			failed="$$failed $$n"; \
			grep -E 'ERROR: |SUMMARY: |invariant broken|Test unit written' $$log | \
				sed 's/^/    /'; \
			echo "    full output: $$log"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "fuzz: failures in:$$failed (inputs in $(FUZZ_DIR)/artifacts)"; exit 1; \
	fi
endef

fuzz: FUZZ_TIME = $(FUZZ_SECONDS)
fuzz: $(FUZZ_RUNS)
	$(fuzz_summary)

fuzz-smoke: FUZZ_TIME = $(FUZZ_SMOKE_SECONDS)
fuzz-smoke: $(FUZZ_RUNS)
	$(fuzz_summary)

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d)
