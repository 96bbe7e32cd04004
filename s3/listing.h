/*
 * ListObjectsV2 responses: one page of a listing, parsed from a buffer. Pure: no I/O.
 *
 * Elements are matched by local name (servers differ in namespace). Keys and prefixes are
 * URL-decoded only when the response itself says <EncodingType>url</EncodingType>; S3 encodes a
 * space as '+' there, so '+' decodes to a space. Decoded keys may contain any byte, NUL
 * included, so they carry an explicit length.
 */
#ifndef IRSAFS_S3_LISTING_H
#define IRSAFS_S3_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Longest key or prefix accepted from a listing, in bytes (S3's own limit is 1024). */
#define S3_MAX_KEY_LENGTH 4096

struct s3_object {
	char *key; /* decoded, NUL-terminated, may contain NUL bytes: use key_len */
	size_t key_len;
	uint64_t size;
	int64_t mtime; /* seconds since the epoch, 0 if the server sent none */
	uint32_t mtime_nsec;
	char *etag;             /* as sent, quotes included; NULL if the server sent none */
	char storage_class[32]; /* "" if the server sent none */
};

struct s3_prefix {
	char *prefix; /* decoded, NUL-terminated, may contain NUL bytes: use len */
	size_t len;
};

struct s3_listing {
	struct s3_object *objects;
	size_t nobjects;
	struct s3_prefix *prefixes;
	size_t nprefixes;
	bool truncated;
	char *next_token; /* the continuation token for the next page; NULL unless truncated */
};

/* Parses one ListBucketResult page into *out (which the caller owns; release it with
 * s3_listing_fini, also after a failure). Returns S3_OK, S3_PROTOCOL with err->message saying
 * what is wrong (not XML, wrong root, a Contents without Key or Size, a bad number or date, a
 * malformed escape, a key over S3_MAX_KEY_LENGTH, truncated without a token), or S3_NO_MEMORY. */
enum s3_status s3_listing_parse(const char *data, size_t len, struct s3_listing *out,
				struct s3_error *err);

/* Frees everything in the listing and zeroes it. Accepts a zeroed listing. */
void s3_listing_fini(struct s3_listing *listing);

#endif
