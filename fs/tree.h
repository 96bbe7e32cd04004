/*
 * The inode model: the tree of directories and files the kernel sees, with inode numbers,
 * kernel lookup counts and cached directory listings. FUSE-independent (ops.c adapts it), so
 * the unit tests drive it against an in-memory backend.
 *
 * An inode stands for one key: a file's full key, or a directory's prefix ending in '/' (the
 * root is the mount prefix, "" for a whole bucket). The same key keeps the same inode number
 * while the kernel holds a reference to it (lookup count > 0); numbers are never reused.
 *
 * Lookups and readdir are served from directory listings (dircache.h), so listing a directory
 * of N keys costs ceil(N/1000) LIST requests and stat-ing its entries costs none.
 *
 * All functions are thread-safe. Results are 0 or a negative errno.
 */
#ifndef IRSAFS_FS_TREE_H
#define IRSAFS_FS_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "backend.h"
#include "dircache.h"
#include "dirlist.h"

#define FS_ROOT_INO 1

struct fs_tree_config {
	const char *prefix; /* "" or a prefix ending in '/'; copied */
	uid_t uid;
	gid_t gid;
	mode_t file_mode; /* permission bits only */
	mode_t dir_mode;
	/* How long a listing is trusted, in milliseconds; negative: forever. */
	int64_t metadata_ttl_ms;
	/* Bound on the entries of all cached listings; 0: 262144. */
	size_t max_cached_entries;
};

struct fs_tree;

/* Creates the tree with its root inode. backend is copied (its ctx borrowed). NULL when out of
 * memory. */
struct fs_tree *fs_tree_create(const struct fs_tree_config *config,
			       const struct fs_backend *backend);

/* Frees every inode and listing. Accepts NULL. */
void fs_tree_destroy(struct fs_tree *tree);

/* Looks up name in directory parent. On success fills *st (st_ino is the child's inode) and
 * takes one kernel reference on the child. -ENOENT when there is no such entry, -ENOTDIR when
 * parent is a file, or the errno of a failed listing. */
int fs_tree_lookup(struct fs_tree *tree, uint64_t parent, const char *name, struct stat *st);

/* Drops n kernel references; an inode with none left is freed (never the root). */
void fs_tree_forget(struct fs_tree *tree, uint64_t ino, uint64_t n);

/* Attributes of an inode the kernel knows. -ENOENT for an unknown inode. */
int fs_tree_getattr(struct fs_tree *tree, uint64_t ino, struct stat *st);

/* Returns the listing of directory ino (a reference for the caller: fs_dirlist_unref), fetching
 * it if the cached one is missing or stale. -ENOTDIR for a file. */
int fs_tree_opendir(struct fs_tree *tree, uint64_t ino, struct fs_dirlist **out);

/* For readdirplus: takes a kernel reference on entry e of directory dir (as a lookup would)
 * and fills *st. */
int fs_tree_lookup_entry(struct fs_tree *tree, uint64_t dir, const struct fs_dirent *e,
			 struct stat *st);

/* For readdir: the mode bits of entry e (no reference taken, st_ino left 0). */
void fs_tree_entry_stat(const struct fs_tree *tree, const struct fs_dirent *e, struct stat *st);

/* What a reader needs of a file, copied at open time so it stays fixed while the file is open
 * (the ETag is pinned). Free with fs_file_meta_fini. */
struct fs_file_meta {
	char *key;
	size_t key_len;
	char *etag; /* NULL if unknown */
	uint64_t size;
};

/* Fills *meta for file ino, and *keep_cache with whether the kernel may keep the pages it has
 * from the previous open (the same ETag was opened before). -EISDIR for a directory, -ENOENT
 * for an unknown inode. */
int fs_tree_file_meta(struct fs_tree *tree, uint64_t ino, struct fs_file_meta *meta,
		      bool *keep_cache);

/* S3 says the object at key changed (412): its directory is listed again on next use and its
 * pages are not kept. */
void fs_tree_object_changed(struct fs_tree *tree, const char *key, size_t key_len);

void fs_file_meta_fini(struct fs_file_meta *meta);

/* The metadata TTL in seconds, for kernel entry and attribute timeouts. */
double fs_tree_ttl_seconds(const struct fs_tree *tree);

/* Statistics of the listing cache. */
void fs_tree_get_dircache_stats(struct fs_tree *tree, struct fs_dircache_stats *out);

/* Number of inodes alive (the root included); for tests and statistics. */
size_t fs_tree_inode_count(struct fs_tree *tree);

#endif
