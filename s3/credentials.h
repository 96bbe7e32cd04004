/*
 * Credentials as S3 sees them: an immutable, reference-counted snapshot, and the small provider
 * interface through which the S3 client obtains them.
 *
 * s3/ never knows where credentials come from; auth/ implements providers (environment, web
 * identity, ...) and the program's entry point hands one to the client. A request takes a
 * reference for as long as it signs, so a refresh can swap in new credentials at any moment
 * without disturbing requests in flight. The last reference wipes the secret and the token.
 */
#ifndef IRSAFS_S3_CREDENTIALS_H
#define IRSAFS_S3_CREDENTIALS_H

#include <time.h>

#include "status.h"

struct s3_credentials;

/* Creates a snapshot with one reference. Strings are copied; session_token may be NULL;
 * expiration is a UTC time, or 0 for credentials that do not expire; source names where they
 * came from ("environment", "web-identity", ...) for logs. Returns NULL when out of memory or
 * when a key is empty. */
struct s3_credentials *s3_credentials_create(const char *access_key_id,
					     const char *secret_access_key,
					     const char *session_token, time_t expiration,
					     const char *source);

/* Takes another reference. Thread-safe. Returns creds. */
struct s3_credentials *s3_credentials_ref(struct s3_credentials *creds);

/* Drops a reference; the last one wipes and frees. Thread-safe. Accepts NULL. */
void s3_credentials_unref(struct s3_credentials *creds);

/* Accessors; the strings live as long as the caller's reference. */
const char *s3_credentials_access_key_id(const struct s3_credentials *creds);
const char *s3_credentials_secret_access_key(const struct s3_credentials *creds);
const char *s3_credentials_session_token(const struct s3_credentials *creds); /* NULL if none */
time_t s3_credentials_expiration(const struct s3_credentials *creds);         /* 0 if never */
const char *s3_credentials_source(const struct s3_credentials *creds);

/*
 * A credential provider, implemented in auth/. The S3 client borrows it; it must outlive the
 * client.
 */
struct s3_credentials_provider {
	/* Returns a new reference to credentials to sign with now, or NULL with err filled
	 * (S3_NO_CREDENTIALS, S3_ACCESS_DENIED, ...). Thread-safe. While the current credentials
	 * are valid it returns them at once, without waiting for any network I/O. */
	struct s3_credentials *(*get)(void *ctx, struct s3_error *err);
	/* S3 rejected `rejected` as expired or invalid. The provider replaces them (at once, if
	 * they are still its current ones) so that the next get() returns fresh credentials. May
	 * block on network I/O. Thread-safe. May be NULL for providers that cannot refresh. */
	void (*rejected)(void *ctx, const struct s3_credentials *rejected);
	void *ctx;
};

#endif
