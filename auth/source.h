/*
 * A credential source: one place credentials can come from (environment keys, web identity
 * through STS, container credentials, IMDS). The chain (chain.c) picks the first configured
 * source; the refresher (refresher.c) calls its fetch again whenever the credentials need
 * renewing.
 *
 * Each source module offers one constructor,
 *     enum s3_status auth_<name>_create(const struct auth_context *ctx,
 *                                       struct auth_source **out, struct s3_error *err);
 * which returns S3_NO_CREDENTIALS (err->message saying why, for the debug log) when the
 * environment does not configure it, S3_INVALID_ARGUMENT when it is configured wrongly (a
 * malformed role ARN, say: the mount must fail), or S3_OK.
 */
#ifndef IRSAFS_AUTH_SOURCE_H
#define IRSAFS_AUTH_SOURCE_H

#include <stdbool.h>

#include "s3/credentials.h"
#include "s3/http.h"
#include "s3/status.h"

/* What sources share; borrowed, outlives every source. */
struct auth_context {
	struct http_transport *http; /* for STS, container and IMDS requests */
	const char *region;          /* for the regional STS endpoint */
};

struct auth_source {
	const char *name; /* "environment", "web-identity", "container", "imds" */
	/* False for sources whose credentials never change (environment keys). */
	bool refreshable;
	/* Fetches fresh credentials; may block on network I/O. Returns S3_OK with *out (one
	 * reference for the caller), or a failure with err filled: a retryable status
	 * (s3_status_retryable) for transient trouble, anything else for a permanent refusal.
	 * Called from one thread at a time. */
	enum s3_status (*fetch)(struct auth_source *self, struct s3_credentials **out,
				struct s3_error *err);
	/* Frees the source. */
	void (*destroy)(struct auth_source *self);
};

/* The constructors, in the order the chain tries them. */
enum s3_status auth_env_create(const struct auth_context *ctx, struct auth_source **out,
			       struct s3_error *err);
enum s3_status auth_web_identity_create(const struct auth_context *ctx, struct auth_source **out,
					struct s3_error *err);
enum s3_status auth_container_create(const struct auth_context *ctx, struct auth_source **out,
				     struct s3_error *err);
enum s3_status auth_imds_create(const struct auth_context *ctx, struct auth_source **out,
				struct s3_error *err);

/* Helpers shared by the sources. */

/* Reads a small secret file (a token) afresh: whole content, surrounding white space trimmed.
 * Returns a string to release with auth_secret_free, or NULL with err set (S3_INVALID_ARGUMENT
 * naming the file and the reason: missing, unreadable, empty, larger than max_len). */
char *auth_read_secret_file(const char *path, size_t max_len, const char *what,
			    struct s3_error *err);

/* Wipes and frees a secret string. Accepts NULL. */
void auth_secret_free(char *secret);

/* The value of an environment variable, or NULL when unset or empty. */
const char *auth_getenv(const char *name);

/* Parses the JSON credential document of the container and IMDS endpoints:
 * {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} (and, for IMDS, "Code": "Success").
 * Returns S3_OK with *out, or S3_PROTOCOL with a message naming what is missing. */
enum s3_status auth_parse_json_credentials(const char *body, size_t len, const char *source,
					   struct s3_credentials **out, struct s3_error *err);

/* Parses an STS AssumeRoleWithWebIdentity response: the Credentials element, wherever it is,
 * with AccessKeyId, SecretAccessKey, SessionToken and Expiration. Returns S3_OK with *out, or
 * S3_PROTOCOL. The document's copies of the secrets are wiped. */
enum s3_status auth_sts_parse_credentials(const char *body, size_t len,
					  struct s3_credentials **out, struct s3_error *err);

#endif
