/*
 * Open files and the read path: an open file pins the object's key, size and ETag as they were
 * at open time; every read fetches exactly the requested bytes (clipped to the pinned size)
 * with If-Match on that ETag, so bytes of two versions of an object are never mixed.
 */
#ifndef IRSAFS_FS_READER_H
#define IRSAFS_FS_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "tree.h"

struct fs_file;

/* Opens file ino for reading. backend is borrowed and must outlive the file. Returns 0 or a
 * negative errno (-EISDIR, -ENOENT, -ENOMEM). */
int fs_file_open(struct fs_tree *tree, const struct fs_backend *backend, uint64_t ino,
		 struct fs_file **out);

/* Reads up to size bytes at off into buf. Returns the byte count (0 at or past the end) or a
 * negative errno (see errno_map.h). Thread-safe: reads of one file may run concurrently. */
ssize_t fs_file_read(struct fs_file *file, char *buf, size_t size, uint64_t off);

/* Size pinned at open. */
uint64_t fs_file_size(const struct fs_file *file);

/* Closes the file. Accepts NULL. */
void fs_file_release(struct fs_file *file);

#endif
