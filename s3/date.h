/*
 * Parsing the timestamps S3 and STS send. Pure functions, no locale, no time zone database.
 */
#ifndef IRSAFS_S3_DATE_H
#define IRSAFS_S3_DATE_H

#include <stdbool.h>
#include <stdint.h>

/* Parses ISO 8601 UTC as AWS writes it: "2026-11-29T07:35:24Z" or with fractional seconds
 * "2026-11-29T07:35:24.123Z" (also "+00:00" instead of "Z"). Returns false for anything else. */
bool date_parse_iso8601(const char *s, int64_t *sec, uint32_t *nsec);

/* Parses an RFC 7231 HTTP date, "Sun, 29 Nov 2026 07:35:24 GMT". Returns false otherwise. */
bool date_parse_http(const char *s, int64_t *sec);

#endif
