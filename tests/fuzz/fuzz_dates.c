/*
 * Fuzzes the timestamp parsers used for LastModified, Expiration and Last-Modified.
 *
 * Input: raw bytes, copied and NUL-terminated, given to date_parse_iso8601 and date_parse_http.
 *
 * Checks: an accepted ISO 8601 time has nanoseconds below 10^9; an accepted time of either form
 * lies in the years the parsers allow (1970 to 9999, so 0 <= sec < 253402300800 plus a leap
 * second); an accepted HTTP date is exactly 29 bytes long.
 */

#include "tests/fuzz/fuzz.h"
#include "s3/date.h"

/* 10000-01-01T00:00:00Z, one past the last second the parsers accept. */
#define END_OF_9999 INT64_C(253402300800)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	int64_t sec = 0;
	uint32_t nsec = 0;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (date_parse_iso8601(s, &sec, &nsec)) {
		check(nsec < 1000000000u, "nanoseconds out of range");
		check(sec >= 0 && sec <= END_OF_9999, "ISO 8601 time out of range");
	}
	/* A NULL nsec is allowed. */
	(void)date_parse_iso8601(s, &sec, NULL);
	if (date_parse_http(s, &sec)) {
		check(strlen(s) == 29, "an HTTP date of the wrong length");
		check(sec >= 0 && sec <= END_OF_9999, "HTTP date out of range");
	}
	free(s);
	return 0;
}
