/*
 * Directory listings, cached per directory prefix for the metadata TTL.
 *
 * A listing (dirlist.h) is fetched once and then serves every lookup, getattr and readdir of
 * that directory until it is older than the TTL (never, with the TTL "indefinite"). Concurrent
 * requests for a missing or stale listing share one fetch. The cache outlives the kernel's
 * inodes, so a directory whose inode was forgotten is not listed again within the TTL; it is
 * bounded by the total number of entries it holds, least recently used listings going first.
 * When a refresh fails with a transient error, the previous listing keeps being served.
 *
 * Thread-safe. Its lock is never held during a fetch and never taken while the tree's lock is
 * held (tree.c calls in only after releasing its own).
 */
#ifndef IRSAFS_FS_DIRCACHE_H
#define IRSAFS_FS_DIRCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "dirlist.h"

struct fs_dircache;

/* ttl_ms < 0 means forever. max_entries bounds the entries of all cached listings together
 * (a listing in use may exceed it alone). backend is copied (its ctx borrowed). */
struct fs_dircache *fs_dircache_create(const struct fs_backend *backend, int64_t ttl_ms,
				       size_t max_entries);

void fs_dircache_destroy(struct fs_dircache *dc);

/* A reference to the listing of prefix ("" or ending in '/'), fetched if missing or stale.
 * Returns 0 or a negative errno (the failed fetch's). */
int fs_dircache_get(struct fs_dircache *dc, const char *prefix, size_t len,
		    struct fs_dirlist **out);

/* Makes the next get of prefix fetch again (the bucket is known to have changed). */
void fs_dircache_invalidate(struct fs_dircache *dc, const char *prefix, size_t len);

struct fs_dircache_stats {
	uint64_t fetches;       /* listings fetched */
	uint64_t list_requests; /* LIST pages requested for them */
	size_t listings;        /* cached now */
	size_t entries;         /* in cached listings now */
};

void fs_dircache_get_stats(struct fs_dircache *dc, struct fs_dircache_stats *out);

#endif
