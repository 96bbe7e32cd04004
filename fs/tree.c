/*
 * The inode model. See tree.h for the contract.
 *
 * Locking: one mutex, `tree->lock`, guards the inode tables and every mutable inode field; it
 * is never held across network I/O. Listings come from the listing cache (dircache.h), which
 * is called only with `tree->lock` released; the directory's inode is pinned meanwhile.
 *
 * Lifetime: an inode lives while the kernel holds references (nlookup) or an operation has it
 * pinned (pins) across an unlocked fetch. The root lives as long as the tree.
 */
#include "tree.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errno_map.h"
#include "names.h"
#include "s3/log.h"

struct inode {
	uint64_t ino;      /* immutable */
	bool is_dir;       /* immutable */
	char *key;         /* immutable: full key, or prefix ending in '/' for directories */
	size_t key_len;    /* immutable */
	uint64_t nlookup;  /* protected by tree->lock */
	unsigned pins;     /* protected by tree->lock */
	/* File attributes, refreshed from each listing that names the file; tree->lock. */
	uint64_t size;
	int64_t mtime;
	uint32_t mtime_nsec;
	char *etag;
	char *opened_etag; /* tree->lock: ETag at the last open, for the kernel's page cache */
	struct inode *next_by_ino;
	struct inode *next_by_key;
};

struct fs_tree {
	struct fs_dircache *dirs;
	char *prefix;
	size_t prefix_len;
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
	mode_t dir_mode;
	int64_t ttl_ms;
	struct timespec mount_time; /* CLOCK_REALTIME, the time shown for directories */
	pthread_mutex_t lock;
	struct inode **by_ino; /* protected by lock */
	struct inode **by_key; /* protected by lock */
	size_t nbuckets;       /* protected by lock */
	size_t ninodes;        /* protected by lock */
	uint64_t next_ino;     /* protected by lock */
	struct inode *root;
};

static size_t hash_key(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

static size_t hash_ino(uint64_t ino)
{
	return (size_t)(ino * 11400714819323198485ull >> 16);
}

static struct inode *find_ino(struct fs_tree *t, uint64_t ino)
{
	for (struct inode *i = t->by_ino[hash_ino(ino) % t->nbuckets]; i; i = i->next_by_ino) {
		if (i->ino == ino)
			return i;
	}
	return NULL;
}

static struct inode *find_key(struct fs_tree *t, const char *key, size_t len)
{
	for (struct inode *i = t->by_key[hash_key(key, len) % t->nbuckets]; i; i = i->next_by_key) {
		if (i->key_len == len && memcmp(i->key, key, len) == 0)
			return i;
	}
	return NULL;
}

static void link_inode(struct fs_tree *t, struct inode *i)
{
	size_t a = hash_ino(i->ino) % t->nbuckets, b = hash_key(i->key, i->key_len) % t->nbuckets;

	i->next_by_ino = t->by_ino[a];
	t->by_ino[a] = i;
	i->next_by_key = t->by_key[b];
	t->by_key[b] = i;
	t->ninodes++;
}

/* Doubles the tables when they get crowded; on allocation failure keeps the old ones. */
static void maybe_grow(struct fs_tree *t)
{
	size_t n = t->nbuckets * 2;
	struct inode **by_ino, **by_key;

	if (t->ninodes < t->nbuckets)
		return;
	by_ino = calloc(n, sizeof(*by_ino));
	by_key = calloc(n, sizeof(*by_key));
	if (!by_ino || !by_key) {
		free(by_ino);
		free(by_key);
		return;
	}
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct inode *i = t->by_ino[b], *next;

		for (; i; i = next) {
			size_t x = hash_ino(i->ino) % n, y = hash_key(i->key, i->key_len) % n;

			next = i->next_by_ino;
			i->next_by_ino = by_ino[x];
			by_ino[x] = i;
			i->next_by_key = by_key[y];
			by_key[y] = i;
		}
	}
	free(t->by_ino);
	free(t->by_key);
	t->by_ino = by_ino;
	t->by_key = by_key;
	t->nbuckets = n;
}

static void unlink_inode(struct fs_tree *t, struct inode *target)
{
	struct inode **pp;

	for (pp = &t->by_ino[hash_ino(target->ino) % t->nbuckets]; *pp; pp = &(*pp)->next_by_ino) {
		if (*pp == target) {
			*pp = target->next_by_ino;
			break;
		}
	}
	for (pp = &t->by_key[hash_key(target->key, target->key_len) % t->nbuckets]; *pp;
	     pp = &(*pp)->next_by_key) {
		if (*pp == target) {
			*pp = target->next_by_key;
			break;
		}
	}
	t->ninodes--;
}

static void free_inode(struct inode *i)
{
	free(i->key);
	free(i->etag);
	free(i->opened_etag);
	free(i);
}

/* Frees i if nothing refers to it any more. Called with the lock held. */
static void release_if_unused(struct fs_tree *t, struct inode *i)
{
	if (i == t->root || i->nlookup > 0 || i->pins > 0)
		return;
	unlink_inode(t, i);
	free_inode(i);
}

static struct inode *new_inode(struct fs_tree *t, const char *key, size_t len, bool is_dir)
{
	struct inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->key = malloc(len + 1);
	if (!i->key) {
		free(i);
		return NULL;
	}
	memcpy(i->key, key, len);
	i->key[len] = '\0';
	i->key_len = len;
	i->is_dir = is_dir;
	i->ino = t->next_ino++;
	maybe_grow(t);
	link_inode(t, i);
	return i;
}

struct fs_tree *fs_tree_create(const struct fs_tree_config *config,
			       const struct fs_backend *backend)
{
	struct fs_tree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->dirs = fs_dircache_create(backend, config->metadata_ttl_ms,
				     config->max_cached_entries ? config->max_cached_entries
								: 256 * 1024);
	t->prefix = strdup(config->prefix ? config->prefix : "");
	t->nbuckets = 1024;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	if (!t->dirs || !t->prefix || !t->by_ino || !t->by_key) {
		fs_tree_destroy(t);
		return NULL;
	}
	t->prefix_len = strlen(t->prefix);
	t->uid = config->uid;
	t->gid = config->gid;
	t->file_mode = config->file_mode & 07777;
	t->dir_mode = config->dir_mode & 07777;
	t->ttl_ms = config->metadata_ttl_ms;
	clock_gettime(CLOCK_REALTIME, &t->mount_time);
	pthread_mutex_init(&t->lock, NULL);
	t->next_ino = FS_ROOT_INO;
	t->root = new_inode(t, t->prefix, t->prefix_len, true);
	if (!t->root) {
		fs_tree_destroy(t);
		return NULL;
	}
	t->root->nlookup = 1;
	return t;
}

void fs_tree_destroy(struct fs_tree *t)
{
	if (!t)
		return;
	for (size_t b = 0; t->by_ino && b < t->nbuckets; b++) {
		struct inode *i = t->by_ino[b], *next;

		for (; i; i = next) {
			next = i->next_by_ino;
			free_inode(i);
		}
	}
	if (t->root)
		pthread_mutex_destroy(&t->lock);
	fs_dircache_destroy(t->dirs);
	free(t->by_ino);
	free(t->by_key);
	free(t->prefix);
	free(t);
}

static void fill_stat(const struct fs_tree *t, const struct inode *i, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = i->ino;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_blksize = 128 * 1024;
	if (i->is_dir) {
		st->st_mode = S_IFDIR | t->dir_mode;
		st->st_nlink = 2;
		st->st_mtim = t->mount_time;
	} else {
		st->st_mode = S_IFREG | t->file_mode;
		st->st_nlink = 1;
		st->st_size = (off_t)i->size;
		st->st_blocks = (blkcnt_t)((i->size + 511) / 512);
		st->st_mtim.tv_sec = i->mtime;
		st->st_mtim.tv_nsec = i->mtime_nsec;
	}
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

void fs_tree_entry_stat(const struct fs_tree *t, const struct fs_dirent *e, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = e->is_dir ? S_IFDIR | t->dir_mode : S_IFREG | t->file_mode;
}

/* Gets a reference to dir's listing, from the listing cache. Called and returns with the lock
 * held, which it drops meanwhile; dir must be pinned by the caller. */
static int dir_listing(struct fs_tree *t, struct inode *dir, struct fs_dirlist **out)
{
	int rc;

	pthread_mutex_unlock(&t->lock);
	rc = fs_dircache_get(t->dirs, dir->key, dir->key_len, out);
	pthread_mutex_lock(&t->lock);
	return rc;
}

/* Finds or creates the inode of entry e in dir and takes a kernel reference. Lock held. */
static int reference_entry(struct fs_tree *t, struct inode *dir, const struct fs_dirent *e,
			   struct stat *st)
{
	size_t name_len = strlen(e->name), len = dir->key_len + name_len + (e->is_dir ? 1 : 0);
	struct inode *child;
	char *key = malloc(len + 1);

	if (!key)
		return -ENOMEM;
	memcpy(key, dir->key, dir->key_len);
	memcpy(key + dir->key_len, e->name, name_len);
	if (e->is_dir)
		key[len - 1] = '/';
	key[len] = '\0';
	child = find_key(t, key, len);
	if (!child)
		child = new_inode(t, key, len, e->is_dir);
	free(key);
	if (!child)
		return -ENOMEM;
	if (!child->is_dir) {
		child->size = e->size;
		child->mtime = e->mtime;
		child->mtime_nsec = e->mtime_nsec;
		if (!child->etag || !e->etag || strcmp(child->etag, e->etag) != 0) {
			char *etag = e->etag ? strdup(e->etag) : NULL;

			if (e->etag && !etag) {
				release_if_unused(t, child);
				return -ENOMEM;
			}
			free(child->etag);
			child->etag = etag;
		}
	}
	child->nlookup++;
	fill_stat(t, child, st);
	return 0;
}

/* Resolves directory ino and pins it, or returns an errno. Lock held. */
static int pin_dir(struct fs_tree *t, uint64_t ino, struct inode **out)
{
	struct inode *dir = find_ino(t, ino);

	if (!dir)
		return -ENOENT;
	if (!dir->is_dir)
		return -ENOTDIR;
	dir->pins++;
	*out = dir;
	return 0;
}

static void unpin(struct fs_tree *t, struct inode *i)
{
	i->pins--;
	release_if_unused(t, i);
}

int fs_tree_lookup(struct fs_tree *t, uint64_t parent, const char *name, struct stat *st)
{
	struct fs_dirlist *list = NULL;
	const struct fs_dirent *e;
	struct inode *dir;
	int rc;

	if (strlen(name) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&t->lock);
	rc = pin_dir(t, parent, &dir);
	if (rc == 0) {
		rc = dir_listing(t, dir, &list);
		if (rc == 0) {
			e = fs_dirlist_find(list, name);
			rc = e ? reference_entry(t, dir, e, st) : -ENOENT;
		}
		unpin(t, dir);
	}
	pthread_mutex_unlock(&t->lock);
	fs_dirlist_unref(list);
	return rc;
}

void fs_tree_forget(struct fs_tree *t, uint64_t ino, uint64_t n)
{
	struct inode *i;

	pthread_mutex_lock(&t->lock);
	i = find_ino(t, ino);
	if (i && i != t->root) {
		i->nlookup = i->nlookup > n ? i->nlookup - n : 0;
		release_if_unused(t, i);
	}
	pthread_mutex_unlock(&t->lock);
}

int fs_tree_getattr(struct fs_tree *t, uint64_t ino, struct stat *st)
{
	struct inode *i;
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	i = find_ino(t, ino);
	if (i) {
		fill_stat(t, i, st);
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int fs_tree_opendir(struct fs_tree *t, uint64_t ino, struct fs_dirlist **out)
{
	struct inode *dir;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&t->lock);
	rc = pin_dir(t, ino, &dir);
	if (rc == 0) {
		rc = dir_listing(t, dir, out);
		unpin(t, dir);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int fs_tree_lookup_entry(struct fs_tree *t, uint64_t ino, const struct fs_dirent *e,
			 struct stat *st)
{
	struct inode *dir;
	int rc;

	pthread_mutex_lock(&t->lock);
	rc = pin_dir(t, ino, &dir);
	if (rc == 0) {
		rc = reference_entry(t, dir, e, st);
		unpin(t, dir);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int fs_tree_file_meta(struct fs_tree *t, uint64_t ino, struct fs_file_meta *meta,
		      bool *keep_cache)
{
	struct inode *i;
	int rc = 0;

	memset(meta, 0, sizeof(*meta));
	*keep_cache = false;
	pthread_mutex_lock(&t->lock);
	i = find_ino(t, ino);
	if (!i) {
		rc = -ENOENT;
	} else if (i->is_dir) {
		rc = -EISDIR;
	} else {
		meta->key = malloc(i->key_len + 1);
		meta->etag = i->etag ? strdup(i->etag) : NULL;
		if (!meta->key || (i->etag && !meta->etag)) {
			rc = -ENOMEM;
		} else {
			memcpy(meta->key, i->key, i->key_len + 1);
			meta->key_len = i->key_len;
			meta->size = i->size;
			/* The kernel may keep pages from the last open only if they came from
			 * this very version. */
			*keep_cache = i->etag && i->opened_etag && strcmp(i->etag, i->opened_etag) == 0;
			if (!*keep_cache && i->etag) {
				char *copy = strdup(i->etag);

				if (copy) {
					free(i->opened_etag);
					i->opened_etag = copy;
				}
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (rc)
		fs_file_meta_fini(meta);
	return rc;
}

void fs_tree_object_changed(struct fs_tree *t, const char *key, size_t key_len)
{
	const char *slash = NULL;
	struct inode *i;
	size_t dir_len;

	for (size_t k = key_len; k > 0; k--) {
		if (key[k - 1] == '/') {
			slash = key + k - 1;
			break;
		}
	}
	dir_len = slash ? (size_t)(slash - key) + 1 : 0;
	pthread_mutex_lock(&t->lock);
	i = find_key(t, key, key_len);
	if (i) {
		free(i->opened_etag);
		i->opened_etag = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	fs_dircache_invalidate(t->dirs, key, dir_len);
}

void fs_file_meta_fini(struct fs_file_meta *meta)
{
	free(meta->key);
	free(meta->etag);
	memset(meta, 0, sizeof(*meta));
}

double fs_tree_ttl_seconds(const struct fs_tree *t)
{
	/* "Forever" for the kernel: a year is as good as infinity and fits every timer. */
	return t->ttl_ms < 0 ? 365.0 * 86400 : (double)t->ttl_ms / 1000.0;
}

void fs_tree_get_dircache_stats(struct fs_tree *t, struct fs_dircache_stats *out)
{
	fs_dircache_get_stats(t->dirs, out);
}

size_t fs_tree_inode_count(struct fs_tree *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->ninodes;
	pthread_mutex_unlock(&t->lock);
	return n;
}
