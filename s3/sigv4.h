/*
 * AWS Signature Version 4, as pure functions.
 *
 * The signer takes a description of a request, the credentials and the signing time as strings
 * and returns strings: it does no I/O and reads no clock, so it can be checked against AWS's
 * published test vectors (tests/unit/test_sigv4.c runs both suites).
 *
 * What the caller decides, because it differs by service:
 *   - the canonical URI. S3 uses the path exactly as sent, each key byte encoded once
 *     (sigv4_canonical_path with normalize=false); other services remove dot segments and
 *     duplicate slashes first (normalize=true).
 *   - which headers are signed: every header passed in is signed. S3 requests pass host,
 *     x-amz-content-sha256, x-amz-date and, with temporary credentials, x-amz-security-token.
 *
 * Query parameters are passed decoded; the signer encodes them (uri.h), sorts them by encoded
 * name then value, and returns the canonical query string so the caller can send exactly that.
 *
 * Secret material (the secret key and derived signing keys) lives only on the stack of
 * sigv4_sign/sigv4_presign and is wiped before they return.
 */
#ifndef IRSAFS_S3_SIGV4_H
#define IRSAFS_S3_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "status.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* SHA-256 of the empty string: the payload hash of every GET and HEAD. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* A header to sign. Names are case-insensitive; a name may repeat (values are joined with ','
 * in the order given). Values are trimmed and runs of white space folded, as SigV4 requires. */
struct sigv4_header {
	const char *name;
	const char *value;
};

/* A decoded query parameter; either part may contain any byte. */
struct sigv4_param {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct sigv4_request {
	const char *method;        /* "GET", "POST", ... */
	const char *canonical_uri; /* see sigv4_canonical_path */
	const struct sigv4_param *params;
	size_t nparams;
	const struct sigv4_header *headers;
	size_t nheaders;
	const char *payload_hash; /* hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD */
};

/* Who signs, where and when. All strings borrowed. */
struct sigv4_context {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* presigning only: added as X-Amz-Security-Token; may be NULL */
	const char *region;
	const char *service;
	const char *amz_date; /* "YYYYMMDDTHHMMSSZ" */
	long expires;         /* presigning only: X-Amz-Expires in seconds */
};

/* Everything the signer produced; strings are owned by the result (sigv4_result_fini). */
struct sigv4_result {
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers;  /* "host;x-amz-date" */
	char *canonical_query; /* the query string to send (presigned: includes X-Amz-Signature) */
	char *authorization;   /* header signing only: the Authorization header value */
	char signature[65];    /* lower-case hex */
};

/* Signs with the Authorization header method. Returns S3_OK, S3_INVALID_ARGUMENT (malformed
 * amz_date or missing fields) or S3_NO_MEMORY; on failure *out holds nothing to free. */
enum s3_status sigv4_sign(const struct sigv4_request *req, const struct sigv4_context *ctx,
			  struct sigv4_result *out);

/* Signs with the query-string (presigned URL) method: adds the X-Amz-* parameters and returns
 * the final query in out->canonical_query. Same results as sigv4_sign. */
enum s3_status sigv4_presign(const struct sigv4_request *req, const struct sigv4_context *ctx,
			     struct sigv4_result *out);

/* Frees what a successful sign/presign allocated. Accepts a zeroed result. */
void sigv4_result_fini(struct sigv4_result *res);

/* Appends the canonical URI for path (raw bytes, not yet encoded) to out: optionally normalised
 * (dot segments and empty segments removed, a trailing slash kept), then each byte outside the
 * unreserved set and '/' percent-encoded. An empty path becomes "/". */
bool sigv4_canonical_path(struct buf *out, const char *path, size_t len, bool normalize);

/* Appends the canonical query string of params (encoded, sorted by name then value, joined
 * with '&') to out: what sigv4_sign signs and what an unsigned request sends. */
bool sigv4_canonical_query(const struct sigv4_param *params, size_t n, struct buf *out);

/* Lower-case hex SHA-256 of len bytes. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* Formats a UTC time as "YYYYMMDDTHHMMSSZ". Returns false if t cannot be represented. */
bool sigv4_format_time(time_t t, char out[17]);

#endif
