/*
 * The read path: open files, sequential detection and prefetch, over the block cache
 * (cache.h) and the fetch workers (fetcher.h).
 *
 * An open file pins the object's key, size and ETag as they were at open time; every GET
 * carries If-Match on that ETag and blocks are cached per (key, ETag), so bytes of two
 * versions of an object are never mixed. A changed object fails the read with ESTALE, drops
 * its cached blocks and makes the directory listing be fetched again.
 *
 * Each open file watches its reads. A stream that proves sequential gets a prefetch window
 * that doubles with every read, from 1 MiB up to one 8 MiB part per connection (at most half
 * the cache), fetched ahead in parts by parallel workers. A read that jumps away
 * resets the window to nothing: random readers fetch only the blocks they touch. An object no
 * bigger than one part, read from its start, is fetched with one GET.
 */
#ifndef IRSAFS_FS_READER_H
#define IRSAFS_FS_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "backend.h"
#include "cache.h"
#include "tree.h"

struct fs_reader_config {
	size_t cache_size;        /* bytes of object data held at most (prefetch included) */
	size_t block_size;        /* 0: 64 KiB */
	unsigned max_connections; /* concurrent GETs for prefetch and reads */
};

struct fs_reader;
struct fs_file;

/* Creates the read machinery (cache and fetch workers). tree and backend are borrowed. NULL
 * when the sizes are unusable or on failure. */
struct fs_reader *fs_reader_create(struct fs_tree *tree, const struct fs_backend *backend,
				   const struct fs_reader_config *config);

/* Starts the fetch workers; call after daemonizing. Returns 0 or an errno. */
int fs_reader_start(struct fs_reader *r);

/* Stops the workers, closes files still open (a session may end without RELEASE) and frees
 * the cache. No operation may be running. Accepts NULL. */
void fs_reader_destroy(struct fs_reader *r);

/* Opens file ino. *keep_cache says whether the kernel may keep its page cache from a previous
 * open (the object is unchanged since). Returns 0 or a negative errno. */
int fs_file_open(struct fs_reader *r, uint64_t ino, struct fs_file **out, bool *keep_cache);

/* Hands read data to the kernel: iov points into cache blocks and is valid only during the
 * call. Returns 0 or a negative errno. */
typedef int (*fs_reply_fn)(void *ctx, const struct iovec *iov, int count);

/* Reads up to size bytes at off. On success calls reply exactly once with the data (no data
 * at or past the end) and returns the byte count; on failure returns a negative errno without
 * calling reply, except when reply itself fails: then its error is returned. Thread-safe:
 * reads of one file may run concurrently. */
ssize_t fs_file_read(struct fs_file *file, size_t size, uint64_t off, fs_reply_fn reply,
		     void *ctx);

/* Size pinned at open. */
uint64_t fs_file_size(const struct fs_file *file);

/* Closes the file. Accepts NULL. */
void fs_file_release(struct fs_file *file);

struct fs_reader_stats {
	struct fs_cache_stats cache;
	uint64_t get_requests;
	uint64_t bytes_fetched;
	uint64_t fetch_failures;
};

void fs_reader_get_stats(struct fs_reader *r, struct fs_reader_stats *out);

#endif
