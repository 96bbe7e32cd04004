/*
 * The fetch worker pool. See fetcher.h.
 *
 * `lock` guards the queue (a doubly ended list of runs), `stopping` and the statistics;
 * workers sleep on `work`. No lock is held during a GET.
 */
#include "fetcher.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "errno_map.h"
#include "s3/log.h"

struct run {
	struct fs_cache_object *obj;
	struct fs_cache_block *blocks[FS_FETCH_MAX_BLOCKS];
	size_t n;
	size_t completed; /* blocks already completed by progress() */
	struct fs_fetcher *f;
	struct run *next;
};

struct fs_fetcher {
	struct fs_cache *cache;
	const struct fs_backend *backend;
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct run *head, *tail; /* protected by lock */
	bool stopping;           /* protected by lock */
	struct fs_fetcher_stats stats; /* protected by lock */
	unsigned wanted;   /* workers to start */
	unsigned nthreads; /* workers started */
	pthread_t *threads;
};

/* Completes every block whose bytes have all arrived. Runs in the worker, during the GET. */
static void progress(void *ctx, size_t got)
{
	struct run *r = ctx;
	size_t bs = fs_cache_block_size(r->f->cache);
	uint64_t run_start = fs_cache_block_index(r->blocks[0]) * bs;
	uint64_t size = fs_cache_object_size(r->obj);

	while (r->completed < r->n) {
		uint64_t block_end = run_start + (r->completed + 1) * bs;

		if (block_end > size)
			block_end = size;
		if (run_start + got < block_end)
			break;
		fs_cache_complete(r->f->cache, r->blocks[r->completed++], 0);
	}
}

static void fetch_run(struct fs_fetcher *f, struct run *r)
{
	size_t bs = fs_cache_block_size(f->cache), key_len, got = 0, want = 0;
	const char *key = fs_cache_object_key(r->obj, &key_len);
	uint64_t size = fs_cache_object_size(r->obj), start = fs_cache_block_index(r->blocks[0]) * bs;
	struct iovec iov[FS_FETCH_MAX_BLOCKS];
	struct s3_error err;
	enum s3_status status;
	int e = 0;
	char what[640], range[48];

	for (size_t i = 0; i < r->n; i++) {
		uint64_t off = start + i * bs;

		iov[i].iov_base = fs_cache_block_data(r->blocks[i]);
		iov[i].iov_len = size - off < bs ? (size_t)(size - off) : bs;
		want += iov[i].iov_len;
	}
	s3_error_clear(&err);
	status = f->backend->read(f->backend->ctx, key, key_len, fs_cache_object_etag(r->obj), start,
				  iov, (int)r->n, &got, progress, r, &err);
	if (status == S3_OK && got < want)
		status = s3_error_set(&err, S3_PROTOCOL,
				      "the object ended after %zu of %zu bytes: it is shorter than "
				      "its listing said",
				      got, want);
	if (status != S3_OK) {
		e = fs_errno_from_status(status);
		snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)start,
			 (unsigned long long)(start + want - 1));
		s3_error_describe(&err, what, sizeof(what));
		if (status == S3_PRECONDITION_FAILED)
			LOG_EVENT(LOG_LEVEL_WARN, "fs", "object changed since it was opened; reopen it",
				  {"key", key});
		else if (status == S3_ARCHIVED)
			LOG_EVENT(LOG_LEVEL_ERROR, "fs",
				  "object in an archived storage class; restore it first",
				  {"key", key}, {"error", what});
		else
			LOG_EVENT(LOG_LEVEL_WARN, "fs", "read failed", {"key", key},
				  {"range", range}, {"error", what});
	}
	for (size_t i = r->completed; i < r->n; i++)
		fs_cache_complete(f->cache, r->blocks[i], e ? e : EIO);
	for (size_t i = 0; i < r->n; i++)
		fs_cache_release(f->cache, r->blocks[i]);
	pthread_mutex_lock(&f->lock);
	f->stats.requests++;
	f->stats.bytes += got;
	if (e)
		f->stats.failures++;
	pthread_mutex_unlock(&f->lock);
}

static void *worker(void *arg)
{
	struct fs_fetcher *f = arg;
	sigset_t all;

	/* Signals are for the FUSE threads (see fs/main.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	pthread_mutex_lock(&f->lock);
	for (;;) {
		struct run *r;

		while (!f->head && !f->stopping)
			pthread_cond_wait(&f->work, &f->lock);
		if (f->stopping)
			break;
		r = f->head;
		f->head = r->next;
		if (!f->head)
			f->tail = NULL;
		pthread_mutex_unlock(&f->lock);
		fetch_run(f, r);
		free(r);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct fs_fetcher *fs_fetcher_create(struct fs_cache *cache, const struct fs_backend *backend,
				     unsigned threads)
{
	struct fs_fetcher *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->cache = cache;
	f->backend = backend;
	f->wanted = threads ? threads : 1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->work, NULL);
	f->threads = calloc(f->wanted, sizeof(*f->threads));
	if (!f->threads) {
		fs_fetcher_destroy(f);
		return NULL;
	}
	return f;
}

int fs_fetcher_start(struct fs_fetcher *f)
{
	int rc;

	for (; f->nthreads < f->wanted; f->nthreads++) {
		rc = pthread_create(&f->threads[f->nthreads], NULL, worker, f);
		if (rc)
			return rc;
	}
	return 0;
}

/* Completes and releases the blocks of a run that will not be fetched. */
static void abandon(struct fs_cache *cache, struct fs_cache_block *const *blocks, size_t n,
		    int err)
{
	for (size_t i = 0; i < n; i++) {
		fs_cache_complete(cache, blocks[i], err);
		fs_cache_release(cache, blocks[i]);
	}
}

void fs_fetcher_destroy(struct fs_fetcher *f)
{
	struct run *r, *next;

	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_broadcast(&f->work);
	pthread_mutex_unlock(&f->lock);
	for (unsigned i = 0; i < f->nthreads; i++)
		pthread_join(f->threads[i], NULL);
	for (r = f->head; r; r = next) {
		next = r->next;
		abandon(f->cache, r->blocks, r->n, ECANCELED);
		free(r);
	}
	pthread_cond_destroy(&f->work);
	pthread_mutex_destroy(&f->lock);
	free(f->threads);
	free(f);
}

void fs_fetcher_submit(struct fs_fetcher *f, struct fs_cache_object *o,
		       struct fs_cache_block *const *blocks, size_t n, bool urgent)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r || n == 0 || n > FS_FETCH_MAX_BLOCKS) {
		free(r);
		abandon(f->cache, blocks, n, ENOMEM);
		return;
	}
	r->obj = o;
	r->f = f;
	r->n = n;
	memcpy(r->blocks, blocks, n * sizeof(*blocks));
	pthread_mutex_lock(&f->lock);
	if (f->stopping) {
		pthread_mutex_unlock(&f->lock);
		abandon(f->cache, blocks, n, ECANCELED);
		free(r);
		return;
	}
	if (urgent) {
		r->next = f->head;
		f->head = r;
		if (!f->tail)
			f->tail = r;
	} else {
		if (f->tail)
			f->tail->next = r;
		else
			f->head = r;
		f->tail = r;
	}
	pthread_cond_signal(&f->work);
	pthread_mutex_unlock(&f->lock);
}

void fs_fetcher_get_stats(struct fs_fetcher *f, struct fs_fetcher_stats *out)
{
	pthread_mutex_lock(&f->lock);
	*out = f->stats;
	pthread_mutex_unlock(&f->lock);
}
