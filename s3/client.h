/*
 * The S3 client: ListObjectsV2, GetObject (one range) and HeadObject against one bucket.
 *
 * It resolves the endpoint and the addressing style once, then for each request: takes a
 * reference to the current credentials from the provider, signs with SigV4 (sigv4.h) using S3's
 * rules (no path normalisation, each key byte encoded once, the session token signed), sends it
 * through the HTTP transport (http.h) and classifies the answer (status.h).
 *
 * Retries: statuses that s3_status_retryable() accepts (5xx, SlowDown, RequestTimeout, resets,
 * refused connections, short bodies, stalls) are retried with exponential backoff and full
 * jitter, up to max_attempts and while the next try starts within max_retry_ms of the first; a
 * ranged GET resumes after the bytes it already has. 403, 404, 412 and 416 are final. When S3
 * answers ExpiredToken/InvalidToken, the provider is told (rejected) and the request is signed
 * again with fresh credentials, once; when S3 names another region for the bucket, the client
 * switches to it for good and sends the request again, once. Neither counts as an attempt.
 *
 * Thread-safety: every function may be called from many threads at once on one client.
 */
#ifndef IRSAFS_S3_CLIENT_H
#define IRSAFS_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "credentials.h"
#include "listing.h"
#include "status.h"

#define S3_DEFAULT_MAX_ATTEMPTS 6
#define S3_DEFAULT_MAX_RETRY_MS 30000

struct s3_client_config {
	const char *bucket;       /* required */
	const char *region;       /* required, e.g. "us-east-1" */
	const char *endpoint_url; /* NULL: https://s3.<region>.amazonaws.com */
	bool force_path_style;    /* otherwise virtual-hosted wherever it can work */
	const char *ca_bundle;    /* NULL: system default; ignored for http:// */
	unsigned max_connections; /* 0: 16 */
	unsigned max_attempts;    /* per request, retries included; 0: S3_DEFAULT_MAX_ATTEMPTS */
	/* No retry starts later than this after the first attempt; 0: S3_DEFAULT_MAX_RETRY_MS */
	int64_t max_retry_ms;
	/* A transfer that moves no byte for this long has stalled (and is retried); 0: 10 */
	long stall_timeout_s;
	/* Borrowed; must outlive the client. NULL sends unsigned (anonymous) requests. */
	const struct s3_credentials_provider *credentials;
};

struct s3_client;

/* Checks the bucket name, region and endpoint URL without creating anything. Returns S3_OK, or
 * S3_INVALID_ARGUMENT with a message naming the bad value (or S3_NO_MEMORY). */
enum s3_status s3_client_config_check(const struct s3_client_config *config,
				      struct s3_error *err);

/* Validates the configuration (as s3_client_config_check) and creates a client; nothing
 * is sent. Returns NULL with err set (S3_INVALID_ARGUMENT with a message naming the bad value,
 * or S3_NO_MEMORY). */
struct s3_client *s3_client_create(const struct s3_client_config *config, struct s3_error *err);

/* Frees the client. No request may be in flight. Accepts NULL. */
void s3_client_destroy(struct s3_client *client);

/* "http://127.0.0.1:9000 (path-style)", for messages, and the region requests are signed for.
 * Owned by the client; valid until the client switches region (call before threads run). */
const char *s3_client_endpoint(const struct s3_client *client);
const char *s3_client_region(const struct s3_client *client);

struct s3_list_params {
	const char *prefix; /* may contain any byte; prefix_len gives its length */
	size_t prefix_len;
	const char *delimiter;          /* NULL for none */
	const char *continuation_token; /* NULL for the first page */
	unsigned max_keys;              /* 0: the server's default (1000) */
};

/* Fetches one ListObjectsV2 page (encoding-type=url requested). *out is owned by the caller
 * (s3_listing_fini, also after a failure). */
enum s3_status s3_list_objects(struct s3_client *client, const struct s3_list_params *params,
			       struct s3_listing *out, struct s3_error *err);

struct s3_object_info {
	uint64_t size;
	int64_t mtime; /* 0 if unknown */
	char etag[256];
	char storage_class[32];
};

struct s3_get_params {
	const char *key; /* any bytes; key_len gives the length */
	size_t key_len;
	const char *if_match; /* ETag to require (If-Match), NULL for none */
	uint64_t offset;
	/* Called, if not NULL, each time bytes are stored, with the count stored so far, so a
	 * caller can use the first bytes while the rest arrive. */
	void (*progress)(void *ctx, size_t got);
	void *progress_ctx;
};

/* Reads bytes from offset into iov, in order, as one ranged GET of the total length of iov
 * (> 0). *got is the number of bytes stored: less than the total only at the end of the
 * object. A retried request resumes after the bytes already stored. A range that starts at or
 * past the end gives S3_INVALID_RANGE; a changed object S3_PRECONDITION_FAILED; a response
 * whose Content-Range disagrees with the request S3_PROTOCOL. info, if not NULL, receives the
 * object's size and ETag from the response. */
enum s3_status s3_get_object(struct s3_client *client, const struct s3_get_params *params,
			     const struct iovec *iov, int iovcnt, size_t *got,
			     struct s3_object_info *info, struct s3_error *err);

/* HeadObject: fills *info. */
enum s3_status s3_head_object(struct s3_client *client, const char *key, size_t key_len,
			      struct s3_object_info *info, struct s3_error *err);

#endif
