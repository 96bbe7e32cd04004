/*
 * Where keys become files: one directory's listing, turned into an immutable, sorted snapshot of
 * names.
 *
 * fs_dirlist_fetch lists every page of a directory prefix through the backend and applies the
 * naming rules (names.h) and Mountpoint's semantics:
 *   - a common prefix "dir/sub/" is the directory "sub" (implicit directories);
 *   - a key "dir/sub/" (a zero-byte marker) is the directory "sub", never a file; the marker of
 *     the listed directory itself is skipped;
 *   - a directory shadows a file of the same name (the file is hidden and counted);
 *   - a key or prefix with a component that cannot be a name is hidden and counted;
 *   - everything else is a file with the listing's size, mtime and ETag.
 * Snapshots are reference-counted and never change, so readers use them without locks.
 */
#ifndef IRSAFS_FS_DIRLIST_H
#define IRSAFS_FS_DIRLIST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct fs_dirent {
	char *name; /* a valid name: NUL-terminated, no '/' or NUL inside */
	bool is_dir;
	uint64_t size; /* files only */
	int64_t mtime; /* files only; 0 if unknown */
	uint32_t mtime_nsec;
	char *etag; /* files only; NULL if the server sent none */
};

struct fs_dirlist {
	atomic_uint refs;
	size_t n;
	struct fs_dirent *entries; /* sorted by name (strcmp order) */
	size_t hidden;   /* keys hidden because a component cannot be a name */
	size_t shadowed; /* files hidden by a directory of the same name */
	size_t pages;    /* LIST requests it took */
};

/* Lists the directory whose keys start with prefix (prefix_len bytes: "" for the bucket root,
 * else ending in '/') and builds its snapshot (one reference for the caller). Fails with the
 * backend's status, or S3_PROTOCOL when the server repeats a continuation token, sends more
 * than 100 empty pages in a row, or more than 10 million entries. */
enum s3_status fs_dirlist_fetch(const struct fs_backend *backend, const char *prefix,
				size_t prefix_len, struct fs_dirlist **out, struct s3_error *err);

/* The entry called name, or NULL. */
const struct fs_dirent *fs_dirlist_find(const struct fs_dirlist *list, const char *name);

struct fs_dirlist *fs_dirlist_ref(struct fs_dirlist *list);

/* Drops a reference; the last frees the snapshot. Accepts NULL. */
void fs_dirlist_unref(struct fs_dirlist *list);

#endif
