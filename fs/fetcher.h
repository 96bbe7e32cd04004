/*
 * Fetching blocks: a bounded pool of worker threads that turn a run of consecutive cache
 * blocks into one ranged GET.
 *
 * A run is blocks index..index+n-1 of one cache object, all claimed FS_CACHE_MINE by the
 * submitter. A worker reads the run's byte range into the blocks' buffers with one request and
 * completes each block as soon as its bytes have arrived, so a reader waiting for the first
 * block of a long run is served before the run ends. The worker then releases the claims.
 * Readers' runs go to the front of the queue, prefetch runs to the back; the pool's size bounds
 * the number of GETs in flight.
 */
#ifndef IRSAFS_FS_FETCHER_H
#define IRSAFS_FS_FETCHER_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "cache.h"

/* Longest run, in blocks. */
#define FS_FETCH_MAX_BLOCKS 128

struct fs_fetcher;

/* Creates a pool of `threads` workers fetching into cache through backend (both borrowed);
 * they start with fs_fetcher_start. NULL when out of memory. */
struct fs_fetcher *fs_fetcher_create(struct fs_cache *cache, const struct fs_backend *backend,
				     unsigned threads);

/* Starts the workers (after daemonizing: threads do not survive fork). Returns 0 or an
 * errno. Runs submitted before are served once the workers run. */
int fs_fetcher_start(struct fs_fetcher *f);

/* Stops the workers after their current GET; queued runs fail with ECANCELED. Accepts NULL. */
void fs_fetcher_destroy(struct fs_fetcher *f);

/* Queues a run (blocks[0..n), consecutive, claimed FS_CACHE_MINE; n <= FS_FETCH_MAX_BLOCKS)
 * of object o. The fetcher owns the claims from now on. urgent puts it at the front. If it
 * cannot be queued, the blocks are completed with ENOMEM at once. */
void fs_fetcher_submit(struct fs_fetcher *f, struct fs_cache_object *o,
		       struct fs_cache_block *const *blocks, size_t n, bool urgent);

struct fs_fetcher_stats {
	uint64_t requests;   /* GETs sent */
	uint64_t bytes;      /* bytes fetched */
	uint64_t failures;
};

void fs_fetcher_get_stats(struct fs_fetcher *f, struct fs_fetcher_stats *out);

#endif
