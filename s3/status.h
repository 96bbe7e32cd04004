/*
 * Outcomes of S3 and credential operations.
 *
 * Every operation in s3/ and auth/ returns an `enum s3_status` and, where the caller passes one,
 * fills a `struct s3_error` with what the server said (its HTTP status, error code, message and,
 * for wrong-region errors, the region it named). fs/ turns a status into an errno in exactly one
 * place (fs/errno_map.c); the startup code turns an s3_error into a one-line message.
 */
#ifndef IRSAFS_S3_STATUS_H
#define IRSAFS_S3_STATUS_H

#include <stdbool.h>
#include <stddef.h>

enum s3_status {
	S3_OK = 0,
	S3_NOT_FOUND,           /* NoSuchKey, or 404 without a body */
	S3_NO_SUCH_BUCKET,      /* NoSuchBucket */
	S3_ACCESS_DENIED,       /* AccessDenied and other 403s */
	S3_BAD_CREDENTIALS,     /* InvalidAccessKeyId, SignatureDoesNotMatch */
	S3_EXPIRED_CREDENTIALS, /* ExpiredToken, InvalidToken: refresh and retry */
	S3_NO_CREDENTIALS,      /* no credential source could provide credentials */
	S3_WRONG_REGION,        /* PermanentRedirect, AuthorizationHeaderMalformed with a region */
	S3_THROTTLED,           /* SlowDown, 503, Throttling */
	S3_PRECONDITION_FAILED, /* 412: the object changed (If-Match) */
	S3_INVALID_RANGE,       /* 416 */
	S3_ARCHIVED,            /* InvalidObjectState: archived storage class */
	S3_CLIENT_ERROR,        /* any other 4xx */
	S3_SERVER_ERROR,        /* 5xx other than throttling */
	S3_TIMEOUT,             /* connect, low-speed or RequestTimeout */
	S3_NETWORK,             /* refused, reset, DNS, a failed TLS handshake */
	S3_TLS,                 /* the server's certificate failed verification */
	S3_PROTOCOL,            /* a response we cannot make sense of */
	S3_NO_MEMORY,
	S3_INVALID_ARGUMENT, /* a bad value from our own caller or configuration */
	S3_CANCELLED,        /* the process is shutting down (http_cancel_all) */
};

struct s3_error {
	enum s3_status status;
	long http_status;     /* 0 when no response arrived */
	char code[64];        /* the server's error code, "" if none */
	char message[512];    /* the server's message, or what failed locally */
	char region[64];      /* a region the server named (wrong-region errors), "" if none */
	char request_id[128]; /* x-amz-request-id or <RequestId>, "" if none */
};

/* Resets to S3_OK with empty strings. */
void s3_error_clear(struct s3_error *err);

/* Sets status and a local message (printf format). Clears code, region and request id.
 * Returns status, for `return s3_error_set(err, S3_PROTOCOL, "...")`. `err` may be NULL. */
enum s3_status s3_error_set(struct s3_error *err, enum s3_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Maps an HTTP status and the server's error code (may be NULL or "") to a status. Pure. */
enum s3_status s3_status_classify(long http_status, const char *code);

/* A stable lower-case name such as "not-found" for logs. */
const char *s3_status_name(enum s3_status status);

/* True for statuses worth retrying with backoff: throttling, 5xx, timeouts, network, and
 * responses that made no sense (a Content-Range for other bytes, say). */
bool s3_status_retryable(enum s3_status status);

/* Parses an S3 `<Error>` or STS `<ErrorResponse><Error>` body into err->code, message, region
 * and request id (fields absent from the body are left as they are). Returns false when the body
 * is not such a document. Safe against hostile input. */
bool s3_error_parse_body(struct s3_error *err, const char *body, size_t len);

/* Writes "Code: message (HTTP n)" or the local message into out. Returns out. */
const char *s3_error_describe(const struct s3_error *err, char *out, size_t size);

#endif
