/*
 * The listing cache. See dircache.h.
 *
 * One `struct dir` per cached prefix, in a hash table and on an LRU list, all guarded by
 * `lock`. A fetch runs with the lock dropped: the fetching thread marks the dir `loading`;
 * others wait on `loaded` for the end of that fetch (`gen` changes) and use its result
 * whatever the TTL says, so a TTL of 0 cannot make them queue up fetches of their own.
 */
#include "dircache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errno_map.h"
#include "s3/log.h"

#define BUCKETS 4093

struct dir {
	char *prefix;
	size_t len;
	size_t hash;
	struct fs_dirlist *listing; /* NULL until a fetch succeeds */
	struct timespec fetched;    /* CLOCK_MONOTONIC */
	bool stale;                 /* invalidated: fetch on the next get */
	bool loading;
	uint64_t gen;  /* bumped when a fetch ends */
	unsigned waiters; /* threads waiting for this fetch: the dir must not be trimmed */
	int last_errno; /* of the last fetch, 0 if it succeeded or an old listing is served */
	struct dir *hnext;
	struct dir *prev, *next; /* LRU, most recent first */
};

struct fs_dircache {
	struct fs_backend backend;
	int64_t ttl_ms;
	size_t max_entries;
	pthread_mutex_t lock;
	pthread_cond_t loaded;
	struct dir *table[BUCKETS]; /* protected by lock */
	struct dir lru;             /* protected by lock */
	size_t entries;             /* protected by lock */
	struct fs_dircache_stats stats; /* protected by lock */
};

static size_t hash_prefix(const char *s, size_t len)
{
	size_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct fs_dircache *fs_dircache_create(const struct fs_backend *backend, int64_t ttl_ms,
				       size_t max_entries)
{
	struct fs_dircache *dc = calloc(1, sizeof(*dc));

	if (!dc)
		return NULL;
	dc->backend = *backend;
	dc->ttl_ms = ttl_ms;
	dc->max_entries = max_entries;
	dc->lru.next = dc->lru.prev = &dc->lru;
	pthread_mutex_init(&dc->lock, NULL);
	pthread_cond_init(&dc->loaded, NULL);
	return dc;
}

static void unlink_dir(struct fs_dircache *dc, struct dir *d)
{
	struct dir **pp = &dc->table[d->hash % BUCKETS];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	}
	d->prev->next = d->next;
	d->next->prev = d->prev;
	if (d->listing)
		dc->entries -= d->listing->n;
	fs_dirlist_unref(d->listing);
	free(d->prefix);
	free(d);
}

void fs_dircache_destroy(struct fs_dircache *dc)
{
	if (!dc)
		return;
	while (dc->lru.next != &dc->lru)
		unlink_dir(dc, dc->lru.next);
	pthread_cond_destroy(&dc->loaded);
	pthread_mutex_destroy(&dc->lock);
	free(dc);
}

static struct dir *find(struct fs_dircache *dc, const char *prefix, size_t len, size_t h)
{
	for (struct dir *d = dc->table[h % BUCKETS]; d; d = d->hnext) {
		if (d->hash == h && d->len == len && memcmp(d->prefix, prefix, len) == 0)
			return d;
	}
	return NULL;
}

static void touch(struct fs_dircache *dc, struct dir *d)
{
	d->prev->next = d->next;
	d->next->prev = d->prev;
	d->next = dc->lru.next;
	d->prev = &dc->lru;
	dc->lru.next->prev = d;
	dc->lru.next = d;
}

/* Drops least recently used listings until the entries fit, sparing `keep` and any dir
 * being fetched. Lock held. */
static void trim(struct fs_dircache *dc, struct dir *keep)
{
	for (struct dir *d = dc->lru.prev, *prev; d != &dc->lru && dc->entries > dc->max_entries;
	     d = prev) {
		prev = d->prev;
		if (d != keep && !d->loading && !d->waiters)
			unlink_dir(dc, d);
	}
}

static bool fresh(const struct fs_dircache *dc, const struct dir *d)
{
	struct timespec now;

	if (!d->listing || d->stale)
		return false;
	if (dc->ttl_ms < 0)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - d->fetched.tv_sec) * 1000 +
		       (now.tv_nsec - d->fetched.tv_nsec) / 1000000 <
	       dc->ttl_ms;
}

int fs_dircache_get(struct fs_dircache *dc, const char *prefix, size_t len,
		    struct fs_dirlist **out)
{
	size_t h = hash_prefix(prefix, len);
	struct fs_dirlist *list = NULL;
	struct s3_error err;
	enum s3_status status;
	struct dir *d;
	char what[640];
	int rc;

	*out = NULL;
	pthread_mutex_lock(&dc->lock);
	d = find(dc, prefix, len, h);
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (d)
			d->prefix = malloc(len + 1);
		if (!d || !d->prefix) {
			free(d);
			pthread_mutex_unlock(&dc->lock);
			return -ENOMEM;
		}
		memcpy(d->prefix, prefix, len);
		d->prefix[len] = '\0';
		d->len = len;
		d->hash = h;
		d->hnext = dc->table[h % BUCKETS];
		dc->table[h % BUCKETS] = d;
		d->next = d->prev = d;
	}
	touch(dc, d);
	if (fresh(dc, d)) {
		*out = fs_dirlist_ref(d->listing);
		pthread_mutex_unlock(&dc->lock);
		return 0;
	}
	if (d->loading) {
		uint64_t gen = d->gen;

		d->waiters++;
		while (d->loading && d->gen == gen)
			pthread_cond_wait(&dc->loaded, &dc->lock);
		d->waiters--;
		rc = d->last_errno && !d->listing ? -d->last_errno : 0;
		if (rc == 0 && d->listing)
			*out = fs_dirlist_ref(d->listing);
		pthread_mutex_unlock(&dc->lock);
		return rc ? rc : (*out ? 0 : -EIO);
	}
	d->loading = true;
	pthread_mutex_unlock(&dc->lock);

	s3_error_clear(&err);
	status = fs_dirlist_fetch(&dc->backend, prefix, len, &list, &err);

	pthread_mutex_lock(&dc->lock);
	d->loading = false;
	d->gen++;
	dc->stats.fetches++;
	dc->stats.list_requests += list ? list->pages : 1;
	d->last_errno = fs_errno_from_status(status);
	if (status == S3_OK) {
		if (d->listing)
			dc->entries -= d->listing->n;
		fs_dirlist_unref(d->listing);
		d->listing = list;
		dc->entries += list->n;
		d->stale = false;
		clock_gettime(CLOCK_MONOTONIC, &d->fetched);
	} else {
		LOG_EVENT(LOG_LEVEL_WARN, "fs", "listing failed", {"prefix", d->prefix},
			  {"error", s3_error_describe(&err, what, sizeof(what))});
		if (d->listing && s3_status_retryable(status)) {
			/* Better a listing a little old than an error while S3 recovers. */
			LOG_EVENT(LOG_LEVEL_INFO, "fs", "serving the previous listing",
				  {"prefix", d->prefix});
			d->last_errno = 0;
		} else if (d->listing) {
			dc->entries -= d->listing->n;
			fs_dirlist_unref(d->listing);
			d->listing = NULL;
		}
	}
	rc = d->last_errno ? -d->last_errno : 0;
	if (rc == 0)
		*out = fs_dirlist_ref(d->listing);
	pthread_cond_broadcast(&dc->loaded);
	trim(dc, d);
	pthread_mutex_unlock(&dc->lock);
	return rc;
}

void fs_dircache_invalidate(struct fs_dircache *dc, const char *prefix, size_t len)
{
	struct dir *d;

	pthread_mutex_lock(&dc->lock);
	d = find(dc, prefix, len, hash_prefix(prefix, len));
	if (d)
		d->stale = true;
	pthread_mutex_unlock(&dc->lock);
}

void fs_dircache_get_stats(struct fs_dircache *dc, struct fs_dircache_stats *out)
{
	pthread_mutex_lock(&dc->lock);
	*out = dc->stats;
	out->entries = dc->entries;
	out->listings = 0;
	for (struct dir *d = dc->lru.next; d != &dc->lru; d = d->next)
		out->listings++;
	pthread_mutex_unlock(&dc->lock);
}
