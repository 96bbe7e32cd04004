/*
 * The read path. See reader.h.
 *
 * A read of [off, end) needs blocks first..last. It claims them without waiting for room
 * (fs_cache_claim), hands the ones it created to the fetch workers as urgent runs, starts
 * prefetch for the window ahead, then waits for its blocks and replies with an iovec pointing
 * into them (no copy). If the cache has no room for all of its blocks at once, it falls back
 * to taking them one at a time, copying each into a reply buffer, so a reader never waits for
 * room while holding pins (which could deadlock readers against each other).
 *
 * Stream state (next_off, seq_bytes, window, prefetched_to) is per open file under its lock.
 * Reads of one stream arrive slightly out of order (the kernel's readahead is served by
 * several threads), so "sequential" means "near where the stream was".
 */
#include "reader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "s3/log.h"

#define DEFAULT_BLOCK (64 * 1024)
#define PART_BYTES (8u * 1024 * 1024)
#define INITIAL_WINDOW (1024 * 1024)
#define MAX_READ_BLOCKS 160

struct fs_reader {
	struct fs_tree *tree;
	struct fs_cache *cache;
	struct fs_fetcher *fetcher;
	size_t block_size;
	size_t part_blocks; /* blocks per prefetch GET */
	size_t max_window;
	pthread_mutex_t files_lock;
	struct fs_file *files; /* files_lock: open files, freed at destroy if never released */
};

struct fs_file {
	struct fs_reader *r;
	struct fs_file_meta meta; /* immutable while open */
	struct fs_cache_object *obj;
	pthread_mutex_t lock;
	uint64_t next_off;      /* lock: where the stream is */
	uint64_t seq_bytes;     /* lock: bytes read sequentially so far */
	size_t window;          /* lock: prefetch window, 0 when random */
	uint64_t prefetched_to; /* lock: blocks below this index were claimed for prefetch */
	bool started;           /* lock: a read happened */
	struct fs_file *prev, *next; /* r->files_lock */
};

/* What one read will do, decided under the stream lock. */
struct plan {
	uint64_t fetch_last; /* last block to claim as a reader (beyond `last` for small objects) */
	uint64_t pf_from;    /* prefetch blocks [pf_from, pf_to) */
	uint64_t pf_to;
};

struct fs_reader *fs_reader_create(struct fs_tree *tree, const struct fs_backend *backend,
				   const struct fs_reader_config *config)
{
	struct fs_reader *r = calloc(1, sizeof(*r));
	unsigned workers = config->max_connections ? config->max_connections : 16;

	if (!r)
		return NULL;
	r->tree = tree;
	pthread_mutex_init(&r->files_lock, NULL);
	r->block_size = config->block_size ? config->block_size : DEFAULT_BLOCK;
	r->cache = fs_cache_create(config->cache_size, r->block_size);
	if (!r->cache) {
		pthread_mutex_destroy(&r->files_lock);
		free(r);
		return NULL;
	}
	r->part_blocks = PART_BYTES / r->block_size;
	if (r->part_blocks > FS_FETCH_MAX_BLOCKS)
		r->part_blocks = FS_FETCH_MAX_BLOCKS;
	if (r->part_blocks == 0)
		r->part_blocks = 1;
	/* Enough to keep every connection busy with a part, within half the cache. */
	r->max_window = (size_t)workers * PART_BYTES;
	if (r->max_window > fs_cache_capacity(r->cache) / 2)
		r->max_window = fs_cache_capacity(r->cache) / 2;
	/* Small caches get smaller parts, so that the window still spans several of them. */
	while (r->part_blocks > 1 && r->part_blocks * r->block_size * 4 > r->max_window)
		r->part_blocks /= 2;
	r->fetcher = fs_fetcher_create(r->cache, backend, workers);
	if (!r->fetcher) {
		fs_cache_destroy(r->cache);
		pthread_mutex_destroy(&r->files_lock);
		free(r);
		return NULL;
	}
	return r;
}

int fs_reader_start(struct fs_reader *r)
{
	return fs_fetcher_start(r->fetcher);
}

static void file_free(struct fs_file *f)
{
	fs_cache_object_put(f->r->cache, f->obj);
	fs_file_meta_fini(&f->meta);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void fs_reader_destroy(struct fs_reader *r)
{
	if (!r)
		return;
	fs_fetcher_destroy(r->fetcher);
	/* A session that ends with files open (unmounted under a reader) gets no RELEASE. */
	while (r->files) {
		struct fs_file *f = r->files;

		r->files = f->next;
		file_free(f);
	}
	fs_cache_destroy(r->cache);
	pthread_mutex_destroy(&r->files_lock);
	free(r);
}

int fs_file_open(struct fs_reader *r, uint64_t ino, struct fs_file **out, bool *keep_cache)
{
	struct fs_file *f = calloc(1, sizeof(*f));
	int rc;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	rc = fs_tree_file_meta(r->tree, ino, &f->meta, keep_cache);
	if (rc) {
		free(f);
		return rc;
	}
	f->obj = fs_cache_object_get(r->cache, f->meta.key, f->meta.key_len, f->meta.etag,
				     f->meta.size);
	if (!f->obj) {
		fs_file_meta_fini(&f->meta);
		free(f);
		return -ENOMEM;
	}
	f->r = r;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_lock(&r->files_lock);
	f->next = r->files;
	if (r->files)
		r->files->prev = f;
	r->files = f;
	pthread_mutex_unlock(&r->files_lock);
	*out = f;
	return 0;
}

uint64_t fs_file_size(const struct fs_file *f)
{
	return f->meta.size;
}

void fs_file_release(struct fs_file *f)
{
	struct fs_reader *r;

	if (!f)
		return;
	r = f->r;
	pthread_mutex_lock(&r->files_lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		r->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&r->files_lock);
	file_free(f);
}

/* Updates the stream with a read of [off, end) and plans fetching and prefetch. */
static struct plan plan_read(struct fs_file *f, uint64_t off, uint64_t end, uint64_t last)
{
	struct fs_reader *r = f->r;
	uint64_t size = f->meta.size, nblocks = (size + r->block_size - 1) / r->block_size;
	uint64_t slack, limit;
	struct plan p = {last, 0, 0};

	pthread_mutex_lock(&f->lock);
	slack = 2 * r->block_size + f->window;
	if (!f->started && off == 0 && size <= r->part_blocks * r->block_size) {
		/* A small object read from its start: all of it in one GET. */
		p.fetch_last = nblocks - 1;
	}
	if (!f->started || (off + slack >= f->next_off && off <= f->next_off + slack)) {
		f->seq_bytes += end - off;
		if (end > f->next_off)
			f->next_off = end;
		if (f->started && f->seq_bytes >= 2 * r->block_size)
			f->window = f->window ? f->window * 2 : INITIAL_WINDOW;
		if (f->window > r->max_window)
			f->window = r->max_window;
	} else {
		log_debug("fs", "'%s': read at %llu is not near %llu: random, prefetch off",
			  f->meta.key, (unsigned long long)off, (unsigned long long)f->next_off);
		f->seq_bytes = end - off;
		f->next_off = end;
		f->window = 0;
		f->prefetched_to = 0;
	}
	f->started = true;
	if (f->window) {
		uint64_t from, to, batch = f->window / r->block_size / 2;

		limit = f->next_off + f->window < size ? f->next_off + f->window : size;
		from = f->prefetched_to > p.fetch_last + 1 ? f->prefetched_to : p.fetch_last + 1;
		to = (limit + r->block_size - 1) / r->block_size;
		/* Prefetch in whole parts (or half windows, while the window is small), not a
		 * block per read: one GET per part is what reaches full throughput. */
		if (batch > r->part_blocks)
			batch = r->part_blocks;
		if (to > from && (to - from >= batch || to == nblocks)) {
			p.pf_from = from;
			p.pf_to = to;
			f->prefetched_to = to;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return p;
}

/* Claims blocks [from, to) for prefetch and queues them in runs of up to part_blocks; stops at
 * the first block there is no room for. */
static void prefetch(struct fs_file *f, uint64_t from, uint64_t to)
{
	struct fs_reader *r = f->r;
	struct fs_cache_block *run[FS_FETCH_MAX_BLOCKS], *b;
	size_t n = 0;

	for (uint64_t i = from; i < to; i++) {
		enum fs_cache_claim st = fs_cache_claim(r->cache, f->obj, i, false, true, &b);

		if (st == FS_CACHE_MINE) {
			run[n++] = b;
			if (n == r->part_blocks) {
				fs_fetcher_submit(r->fetcher, f->obj, run, n, false);
				n = 0;
			}
			continue;
		}
		/* Already cached or loading: the run ends here. */
		if (n)
			fs_fetcher_submit(r->fetcher, f->obj, run, n, false);
		n = 0;
		if (st == FS_CACHE_FULL)
			return;
		fs_cache_release(r->cache, b);
	}
	if (n)
		fs_fetcher_submit(r->fetcher, f->obj, run, n, false);
}

/* Queues the blocks among held[0..n) that this read created, as urgent runs. Those in the read
 * itself (index <= last) get a second pin: the fetcher drops one when done, the reader the
 * other after replying; the others (the rest of a small object) belong to the fetcher alone
 * and are removed from held. Returns the new count of held blocks. */
static size_t submit_mine(struct fs_reader *r, struct fs_cache_object *o,
			  struct fs_cache_block **held, const enum fs_cache_claim *claims, size_t n,
			  uint64_t last)
{
	struct fs_cache_block *run[FS_FETCH_MAX_BLOCKS];
	size_t nrun = 0, kept = 0;

	for (size_t i = 0; i <= n; i++) {
		bool mine = i < n && claims[i] == FS_CACHE_MINE;

		if (mine) {
			run[nrun++] = held[i];
			if (fs_cache_block_index(held[i]) <= last)
				fs_cache_pin(r->cache, held[i]);
		}
		if ((!mine || nrun == FS_FETCH_MAX_BLOCKS) && nrun) {
			fs_fetcher_submit(r->fetcher, o, run, nrun, true);
			nrun = 0;
		}
		if (i < n && fs_cache_block_index(held[i]) > last) {
			if (!mine)
				fs_cache_release(r->cache, held[i]);
			continue;
		}
		if (i < n)
			held[kept++] = held[i];
	}
	return kept;
}

/* Copies [off, end) of the object into buf, one block at a time, waiting for room if needed:
 * the slow path when the cache cannot hold all of a read's blocks at once. */
static int read_one_by_one(struct fs_file *f, uint64_t off, uint64_t end, char *buf)
{
	struct fs_reader *r = f->r;
	size_t bs = r->block_size;

	for (uint64_t pos = off; pos < end;) {
		uint64_t index = pos / bs, bend = (index + 1) * bs < end ? (index + 1) * bs : end;
		struct fs_cache_block *b;
		enum fs_cache_claim st = fs_cache_claim(r->cache, f->obj, index, true, false, &b);
		int rc;

		if (st == FS_CACHE_FULL)
			return -ENOMEM;
		if (st == FS_CACHE_MINE) {
			fs_cache_pin(r->cache, b);
			fs_fetcher_submit(r->fetcher, f->obj, &b, 1, true);
		}
		rc = fs_cache_wait(r->cache, b);
		if (rc == 0)
			memcpy(buf + (pos - off), fs_cache_block_data(b) + (pos - index * bs),
			       (size_t)(bend - pos));
		fs_cache_release(r->cache, b);
		if (rc)
			return rc;
		pos = bend;
	}
	return 0;
}

/* After a read failed with ESTALE: forget the old version everywhere. */
static void object_changed(struct fs_file *f)
{
	fs_cache_forget_key(f->r->cache, f->meta.key, f->meta.key_len);
	fs_tree_object_changed(f->r->tree, f->meta.key, f->meta.key_len);
}

ssize_t fs_file_read(struct fs_file *f, size_t size, uint64_t off, fs_reply_fn reply, void *ctx)
{
	struct fs_reader *r = f->r;
	size_t bs = r->block_size, n = 0, nheld;
	struct fs_cache_block *held[MAX_READ_BLOCKS];
	enum fs_cache_claim claims[MAX_READ_BLOCKS];
	struct iovec iov[MAX_READ_BLOCKS];
	uint64_t end, first, last;
	struct plan p;
	int rc = 0;
	bool full = false;

	if (off >= f->meta.size || size == 0)
		return reply(ctx, NULL, 0) == 0 ? 0 : -EIO;
	end = f->meta.size - off < size ? f->meta.size : off + size;
	first = off / bs;
	last = (end - 1) / bs;
	if (last - first >= MAX_READ_BLOCKS)
		return -EINVAL;
	p = plan_read(f, off, end, last);
	log_trace("fs", "read %llu+%zu: blocks %llu-%llu, fetch to %llu, prefetch %llu-%llu",
		  (unsigned long long)off, size, (unsigned long long)first,
		  (unsigned long long)last, (unsigned long long)p.fetch_last,
		  (unsigned long long)p.pf_from, (unsigned long long)p.pf_to);
	if (p.fetch_last - first >= MAX_READ_BLOCKS)
		p.fetch_last = first + MAX_READ_BLOCKS - 1;

	for (uint64_t i = first; i <= p.fetch_last; i++) {
		enum fs_cache_claim st = fs_cache_claim(r->cache, f->obj, i, false, i > last, &held[n]);

		if (st == FS_CACHE_FULL) {
			full = i <= last;
			break;
		}
		claims[n++] = st;
	}
	nheld = submit_mine(r, f->obj, held, claims, n, last);
	if (p.pf_to > p.pf_from)
		prefetch(f, p.pf_from, p.pf_to);

	for (size_t i = 0; i < nheld && rc == 0; i++) {
		uint64_t bstart = fs_cache_block_index(held[i]) * bs;
		uint64_t from = off > bstart ? off : bstart;
		uint64_t to = end < bstart + bs ? end : bstart + bs;

		rc = fs_cache_wait(r->cache, held[i]);
		iov[i].iov_base = fs_cache_block_data(held[i]) + (from - bstart);
		iov[i].iov_len = (size_t)(to - from);
	}
	if (rc == 0 && !full) {
		rc = reply(ctx, iov, (int)nheld);
	} else if (rc == 0) {
		/* No room for the whole read at once: copy what we hold, then the rest block by
		 * block. */
		char *buf = malloc(end - off);
		size_t copied = 0;

		if (!buf)
			rc = -ENOMEM;
		for (size_t i = 0; buf && i < nheld; i++) {
			memcpy(buf + copied, iov[i].iov_base, iov[i].iov_len);
			copied += iov[i].iov_len;
		}
		for (size_t i = 0; i < nheld; i++)
			fs_cache_release(r->cache, held[i]);
		nheld = 0;
		if (buf)
			rc = read_one_by_one(f, off + copied, end, buf + copied);
		if (rc == 0) {
			struct iovec one = {buf, end - off};

			rc = reply(ctx, &one, 1);
		}
		free(buf);
	}
	for (size_t i = 0; i < nheld; i++)
		fs_cache_release(r->cache, held[i]);
	if (rc == -ESTALE)
		object_changed(f);
	return rc ? rc : (ssize_t)(end - off);
}

void fs_reader_get_stats(struct fs_reader *r, struct fs_reader_stats *out)
{
	struct fs_fetcher_stats fs;

	fs_cache_get_stats(r->cache, &out->cache);
	fs_fetcher_get_stats(r->fetcher, &fs);
	out->get_requests = fs.requests;
	out->bytes_fetched = fs.bytes;
	out->fetch_failures = fs.failures;
}
