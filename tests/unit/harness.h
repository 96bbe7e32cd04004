/*
 * A tiny table-test harness: CHECK records a pass or a failure (with file, line and a message)
 * and carries on; harness_report prints "N passed, N failed" and gives the exit status.
 * Single-threaded use only.
 */
#ifndef IRSAFS_TESTS_HARNESS_H
#define IRSAFS_TESTS_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_passed;
static int harness_failed;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (cond) {                                                                \
			harness_passed++;                                                  \
		} else {                                                                   \
			harness_failed++;                                                  \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

#define CHECK_STR(got, want, ...)                                                          \
	do {                                                                               \
		const char *got_ = (got), *want_ = (want);                                 \
		CHECK(got_ && want_ && strcmp(got_, want_) == 0, __VA_ARGS__);             \
		if (!(got_ && want_ && strcmp(got_, want_) == 0))                          \
			fprintf(stderr, "  got:  [%s]\n  want: [%s]\n", got_ ? got_ : "(null)", \
				want_ ? want_ : "(null)");                                 \
	} while (0)

static inline int harness_report(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, harness_passed, harness_failed);
	return harness_failed ? 1 : 0;
}

#endif
