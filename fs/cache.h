/*
 * Where a block is cached: object data in fixed-size blocks, under a hard byte cap.
 *
 * A block is one block_size slice of one version of one object: blocks belong to a cache
 * object, which is a (key, ETag, size) triple, so bytes of two versions never mix and blocks
 * of an unchanged object survive closing and reopening it. Every byte of object data irsafs
 * holds (blocks being read, blocks being prefetched, blocks kept for later) is in a block, and
 * the blocks' total never exceeds the capacity.
 *
 * A block's life:
 *
 *      claim (absent)         complete(ok)            evict (LRU, unpinned)
 *   ------------------> LOADING ----------> READY ------------------------> gone
 *                          |   complete(err)
 *                          +--------------> FAILED --(next claim, unpinned)--> LOADING
 *
 * The thread whose claim creates a block (FS_CACHE_MINE) must fetch it and complete it; any
 * other thread claiming it meanwhile gets FS_CACHE_LOADING and waits: concurrent readers of a
 * block cause one fetch. Every claim pins the block (it cannot be evicted) until released.
 * Buffers come from a pool that only grows to the capacity, so memory in use is stable.
 *
 * Thread-safe; one mutex guards everything, never held during I/O.
 */
#ifndef IRSAFS_FS_CACHE_H
#define IRSAFS_FS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs_cache;
struct fs_cache_object;
struct fs_cache_block;

/* Creates a cache holding at most capacity bytes in blocks of block_size (a power of two, at
 * least 4 KiB). capacity is rounded down to whole blocks and must hold at least 4 of them.
 * NULL on bad sizes or no memory. */
struct fs_cache *fs_cache_create(size_t capacity, size_t block_size);

/* Frees everything. No block may be pinned and no object held. Accepts NULL. */
void fs_cache_destroy(struct fs_cache *c);

size_t fs_cache_block_size(const struct fs_cache *c);
size_t fs_cache_capacity(const struct fs_cache *c);

/* The cache object of (key, etag, size), created if needed; a reference for the caller.
 * etag may be NULL (then blocks are shared only with other opens without an ETag). NULL when
 * out of memory. */
struct fs_cache_object *fs_cache_object_get(struct fs_cache *c, const char *key,
					    size_t key_len, const char *etag, uint64_t size);

/* Drops a reference. Blocks stay cached after the last one. Accepts NULL. */
void fs_cache_object_put(struct fs_cache *c, struct fs_cache_object *o);

const char *fs_cache_object_key(const struct fs_cache_object *o, size_t *len);
const char *fs_cache_object_etag(const struct fs_cache_object *o); /* NULL if none */
uint64_t fs_cache_object_size(const struct fs_cache_object *o);

enum fs_cache_claim {
	FS_CACHE_READY,   /* pinned; finished (fs_cache_wait returns at once) */
	FS_CACHE_LOADING, /* pinned; another thread fetches it: fs_cache_wait */
	FS_CACHE_MINE,    /* pinned and reserved: the caller fetches it, then fs_cache_complete */
	FS_CACHE_FULL,    /* nothing pinned: no room without waiting (only with wait == false) */
};

/* Claims block index of o (index * block_size < size). With wait, a claim that needs room
 * while every block is pinned or loading waits for one to be released; without, it answers
 * FS_CACHE_FULL. prefetch marks a new block as fetched ahead of any reader, for the
 * prefetched-but-never-read statistic. *out is set for every answer but FS_CACHE_FULL. */
enum fs_cache_claim fs_cache_claim(struct fs_cache *c, struct fs_cache_object *o,
				   uint64_t index, bool wait, bool prefetch,
				   struct fs_cache_block **out);

/* Finishes a block claimed FS_CACHE_MINE: err 0 makes it READY (its length is what the object
 * has at that offset), else FAILED with that errno. Wakes waiters. The claim's pin remains. */
void fs_cache_complete(struct fs_cache *c, struct fs_cache_block *b, int err);

/* Waits until b is no longer LOADING. Returns 0 when READY, or the negative errno it failed
 * with. */
int fs_cache_wait(struct fs_cache *c, struct fs_cache_block *b);

/* Takes another pin on a block the caller has pinned. */
void fs_cache_pin(struct fs_cache *c, struct fs_cache_block *b);

/* Drops a pin. */
void fs_cache_release(struct fs_cache *c, struct fs_cache_block *b);

/* The block's buffer (block_size bytes of room) and the object bytes it covers. */
char *fs_cache_block_data(const struct fs_cache_block *b);
size_t fs_cache_block_len(const struct fs_cache_block *b);
uint64_t fs_cache_block_index(const struct fs_cache_block *b);

/* Drops every unpinned block of objects with this key (any ETag): used when S3 says the
 * object changed. */
void fs_cache_forget_key(struct fs_cache *c, const char *key, size_t key_len);

struct fs_cache_stats {
	uint64_t hits;            /* readers' claims that found the block READY or LOADING */
	uint64_t misses;          /* readers' claims that had to fetch */
	uint64_t evictions;
	uint64_t prefetched_unused_bytes; /* evicted without ever being read */
	size_t bytes_held;        /* in blocks now */
	size_t capacity;
};

void fs_cache_get_stats(struct fs_cache *c, struct fs_cache_stats *out);

#endif
