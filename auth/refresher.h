/*
 * Keeps one source's credentials fresh for as long as the mount lives.
 *
 * The refresher holds the current credentials (an immutable snapshot) and hands out references
 * without waiting while they are valid. A background thread renews them ahead of expiry: at
 * the latest 5 minutes before it, or halfway through their lifetime when that is shorter (so
 * credentials living a minute or less are renewed in time), minus a little jitter. A failed
 * renewal keeps the current credentials and is retried with jittered exponential backoff.
 * When S3 rejects credentials anyway, rejected() renews at once and waits for the result, so
 * the request can be retried with the new ones.
 */
#ifndef IRSAFS_AUTH_REFRESHER_H
#define IRSAFS_AUTH_REFRESHER_H

#include <stdint.h>

#include "source.h"

struct auth_refresher;

/* Creates a refresher over source (handed over) starting from initial (handed over). NULL when
 * out of memory (both are then released). */
struct auth_refresher *auth_refresher_create(struct auth_source *source,
					     struct s3_credentials *initial);

/* Starts the background thread, if the credentials expire. Call after daemonizing (threads do
 * not survive fork). Returns 0 or an errno. */
int auth_refresher_start(struct auth_refresher *r);

/* Stops the thread and frees everything. Accepts NULL. */
void auth_refresher_destroy(struct auth_refresher *r);

/* A reference to credentials valid now. Only when they have expired does it wait (at most ten
 * seconds) for a renewal; if that fails, NULL with err set (S3_EXPIRED_CREDENTIALS and the
 * renewal's error). Thread-safe. */
struct s3_credentials *auth_refresher_get(struct auth_refresher *r, struct s3_error *err);

/* S3 refused `rejected`: renew now, unless they were already replaced, and wait (at most ten
 * seconds) for the renewal. Thread-safe. */
void auth_refresher_rejected(struct auth_refresher *r, const struct s3_credentials *rejected);

/* Counters for logs and tests. */
struct auth_refresher_stats {
	uint64_t renewals;
	uint64_t failures;
	int64_t expires_in_s; /* seconds until the current credentials expire; -1 for never */
};

void auth_refresher_get_stats(struct auth_refresher *r, struct auth_refresher_stats *out);

#endif
