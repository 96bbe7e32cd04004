/*
 * HTTP transport on libcurl, shared by the S3 client and the credential providers.
 *
 * A transport owns a bounded pool of curl easy handles. A request borrows one handle for its
 * duration (waiting if all `max_connections` are busy) and returns it afterwards, so each handle
 * keeps its connection alive for the next request (keep-alive). DNS and TLS session caches are
 * shared between handles. No lock is held while a transfer runs.
 *
 * The transport knows nothing of S3: it sends the method, URL, headers and body it is given and
 * reports what came back. A response with any HTTP status is S3_OK here; only transport
 * failures (connect, TLS, timeout, reset, short body) are errors.
 *
 * curl_global_init must have run (main does it) before the first transport is created.
 * Verbose tracing (log level trace) goes through a debug callback that blanks Authorization,
 * security-token and metadata-token headers and never logs bodies.
 */
#ifndef IRSAFS_S3_HTTP_H
#define IRSAFS_S3_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

struct http_config {
	const char *ca_bundle;      /* CA file for https, NULL for the system default; copied */
	long connect_timeout_ms;    /* 0: 5000 */
	long low_speed_time_s;      /* a transfer moving no byte this long has stalled; 0: 10 */
	unsigned max_connections;   /* pool size; 0: 16 */
	const char *user_agent;     /* copied; NULL: "irsafs" */
};

/* Receives a 2xx response body as it arrives. Returns S3_OK to go on, or the status to abort
 * the transfer with (http_perform then returns it, with err->message naming the cause as
 * written by the sink into the err it is given). */
typedef enum s3_status (*http_sink_fn)(void *ctx, const char *data, size_t len,
				       struct s3_error *err);

struct http_request {
	const char *method;         /* "GET", "HEAD", "POST", "PUT" */
	const char *url;            /* already encoded; sent as is (no path squashing) */
	const char *const *headers; /* "Name: value" lines, borrowed */
	size_t nheaders;
	const char *body; /* request body, borrowed; NULL for none */
	size_t body_len;
	http_sink_fn sink; /* NULL: a 2xx body is collected into response->body */
	void *sink_ctx;
	size_t max_body; /* cap on a collected 2xx body; 0: 1 MiB. Error bodies: 64 KiB. */
	long timeout_ms; /* whole-transfer cap; 0: none beyond the low-speed limit */
};

struct http_response {
	long status;       /* HTTP status of the final response */
	struct buf body;   /* collected body (error bodies, and 2xx bodies without a sink) */
	int64_t content_length; /* -1 if absent */
	char etag[256];
	char content_range[128];
	char last_modified[64];
	char bucket_region[64]; /* x-amz-bucket-region */
	char storage_class[32]; /* x-amz-storage-class */
	char request_id[128];   /* x-amz-request-id */
};

struct http_transport;

/* Creates a transport. Returns NULL with err set (S3_NO_MEMORY). A CA bundle that cannot be
 * read makes https requests fail with S3_NETWORK ("TLS failed: ..."). */
struct http_transport *http_transport_create(const struct http_config *config,
					     struct s3_error *err);

/* Closes every connection and frees the transport. No request may be in flight. Accepts NULL. */
void http_transport_destroy(struct http_transport *t);

void http_response_init(struct http_response *resp);
void http_response_fini(struct http_response *resp);

/* Ends every transfer in progress at once, and makes every later http_perform fail at once,
 * with S3_CANCELLED: the process is shutting down and nothing may keep it waiting.
 * Async-signal-safe (it stores one lock-free atomic flag). */
void http_cancel_all(void);

/* True once http_cancel_all has been called. */
bool http_cancelled(void);

/* Sleeps for ms milliseconds, or less if http_cancel_all is called meanwhile. Returns false
 * when cancelled. For retry backoffs. */
bool http_sleep_ms(int64_t ms);

/* Records one raw response header line ("Name: value\r\n", or a status line, which starts a
 * new response) into resp: the headers the struct has fields for, trimmed and truncated to
 * fit; Content-Length only when it is a valid number (else -1). Pure; safe on any bytes. */
void http_response_parse_header(struct http_response *resp, const char *line, size_t len);

/* Parses a Content-Range value "bytes FIRST-LAST/TOTAL" with FIRST <= LAST < TOTAL. Pure. */
bool http_parse_content_range(const char *value, uint64_t *first, uint64_t *last,
			      uint64_t *total);

/* Performs one request. On S3_OK, resp holds the final response (resp must have been
 * initialised; it is reset first). Otherwise err says what failed: S3_TIMEOUT, S3_NETWORK
 * (refused, reset, DNS, TLS, a body shorter than its Content-Length), S3_PROTOCOL, S3_NO_MEMORY
 * or S3_INVALID_ARGUMENT. Thread-safe; blocks while the pool is exhausted. */
enum s3_status http_perform(struct http_transport *t, const struct http_request *req,
			    struct http_response *resp, struct s3_error *err);

#endif
