/*
 * The block cache. See cache.h for the contract and the block life cycle.
 *
 * Layout: blocks are found through a hash table on (object, index) and kept on one LRU list
 * (most recently claimed first). Objects are interned in their own hash table on (key, ETag)
 * and live while referenced by an open file or holding blocks. Buffers are mmap'ed once, reused
 * from a free pool, and unmapped only when the cache is destroyed, so the cache's footprint is
 * at most its capacity and stays put.
 *
 * Locking: `lock` guards every field of the cache, its objects and its blocks except a block's
 * data bytes, which belong to the thread that claimed it FS_CACHE_MINE until it completes it,
 * and are read-only afterwards. A completed block wakes the threads waiting for it (on its
 * stripe of `loaded`); a released pin or a completion wakes those waiting for room (`room`).
 */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Waiters for a block sleep on one of these, chosen by the block's address, so that finishing
 * a block wakes only threads that may wait for it. */
#define LOAD_STRIPES 64

enum block_state {
	BLOCK_LOADING,
	BLOCK_READY,
	BLOCK_FAILED,
};

struct fs_cache_block {
	struct fs_cache_object *obj;
	uint64_t index;
	enum block_state state;
	int err; /* errno when FAILED */
	char *data;
	size_t len;
	unsigned pins;
	unsigned waiters; /* threads in fs_cache_wait on this block */
	bool prefetched; /* fetched ahead of any reader */
	bool used;       /* some reader claimed it */
	struct fs_cache_block *hnext;
	struct fs_cache_block *prev, *next; /* LRU */
};

struct fs_cache_object {
	char *key;
	size_t key_len;
	char *etag; /* NULL if none */
	uint64_t size;
	size_t hash;
	unsigned refs;
	size_t nblocks;
	struct fs_cache_object *hnext;
};

struct fs_cache {
	pthread_mutex_t lock;
	pthread_cond_t room;                /* a block was released or finished */
	pthread_cond_t loaded[LOAD_STRIPES]; /* a block of this stripe finished loading */
	size_t block_size;
	size_t max_blocks;
	size_t nblocks;       /* blocks in the table, any state */
	size_t nbuckets;
	struct fs_cache_block **table;
	size_t obj_buckets;
	struct fs_cache_object **objects;
	struct fs_cache_block lru; /* sentinel: lru.next is the most recent */
	char **pool;               /* free buffers */
	size_t npool;
	size_t mapped;             /* buffers mapped in all */
	unsigned room_waiters; /* threads waiting for room */
	struct fs_cache_stats stats;
};

static size_t hash_bytes(const char *s, size_t len, size_t h)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static pthread_cond_t *stripe(struct fs_cache *c, const struct fs_cache_block *b)
{
	return &c->loaded[((uintptr_t)b >> 6) % LOAD_STRIPES];
}

static size_t block_bucket(const struct fs_cache *c, const struct fs_cache_object *o,
			   uint64_t index)
{
	return (o->hash ^ (size_t)(index * 11400714819323198485ull)) % c->nbuckets;
}

struct fs_cache *fs_cache_create(size_t capacity, size_t block_size)
{
	struct fs_cache *c;

	if (block_size < 4096 || (block_size & (block_size - 1)) || capacity / block_size < 4)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->block_size = block_size;
	c->max_blocks = capacity / block_size;
	c->nbuckets = c->max_blocks * 2 + 1;
	c->obj_buckets = 1021;
	c->table = calloc(c->nbuckets, sizeof(*c->table));
	c->objects = calloc(c->obj_buckets, sizeof(*c->objects));
	c->pool = calloc(c->max_blocks, sizeof(*c->pool));
	if (!c->table || !c->objects || !c->pool) {
		free(c->table);
		free(c->objects);
		free(c->pool);
		free(c);
		return NULL;
	}
	c->lru.next = c->lru.prev = &c->lru;
	c->stats.capacity = c->max_blocks * block_size;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->room, NULL);
	for (int i = 0; i < LOAD_STRIPES; i++)
		pthread_cond_init(&c->loaded[i], NULL);
	return c;
}

static void free_object(struct fs_cache *c, struct fs_cache_object *o)
{
	struct fs_cache_object **pp = &c->objects[o->hash % c->obj_buckets];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == o) {
			*pp = o->hnext;
			break;
		}
	}
	free(o->key);
	free(o->etag);
	free(o);
}

void fs_cache_destroy(struct fs_cache *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < c->nbuckets; b++) {
		struct fs_cache_block *blk = c->table[b], *next;

		for (; blk; blk = next) {
			next = blk->hnext;
			munmap(blk->data, c->block_size);
			free(blk);
		}
	}
	for (size_t b = 0; b < c->obj_buckets; b++) {
		struct fs_cache_object *o = c->objects[b], *next;

		for (; o; o = next) {
			next = o->hnext;
			free(o->key);
			free(o->etag);
			free(o);
		}
	}
	for (size_t i = 0; i < c->npool; i++)
		munmap(c->pool[i], c->block_size);
	pthread_cond_destroy(&c->room);
	for (int i = 0; i < LOAD_STRIPES; i++)
		pthread_cond_destroy(&c->loaded[i]);
	pthread_mutex_destroy(&c->lock);
	free(c->table);
	free(c->objects);
	free(c->pool);
	free(c);
}

size_t fs_cache_block_size(const struct fs_cache *c)
{
	return c->block_size;
}

size_t fs_cache_capacity(const struct fs_cache *c)
{
	return c->max_blocks * c->block_size;
}

static bool same_etag(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

struct fs_cache_object *fs_cache_object_get(struct fs_cache *c, const char *key,
					    size_t key_len, const char *etag, uint64_t size)
{
	size_t h = hash_bytes(key, key_len, 1469598103934665603ull);
	struct fs_cache_object *o;

	h = etag ? hash_bytes(etag, strlen(etag), h) : h;
	pthread_mutex_lock(&c->lock);
	for (o = c->objects[h % c->obj_buckets]; o; o = o->hnext) {
		if (o->hash == h && o->key_len == key_len && memcmp(o->key, key, key_len) == 0 &&
		    same_etag(o->etag, etag) && o->size == size)
			break;
	}
	if (!o) {
		o = calloc(1, sizeof(*o));
		if (o) {
			o->key = malloc(key_len + 1);
			o->etag = etag ? strdup(etag) : NULL;
		}
		if (!o || !o->key || (etag && !o->etag)) {
			if (o) {
				free(o->key);
				free(o->etag);
				free(o);
			}
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		memcpy(o->key, key, key_len);
		o->key[key_len] = '\0';
		o->key_len = key_len;
		o->size = size;
		o->hash = h;
		o->hnext = c->objects[h % c->obj_buckets];
		c->objects[h % c->obj_buckets] = o;
	}
	o->refs++;
	pthread_mutex_unlock(&c->lock);
	return o;
}

void fs_cache_object_put(struct fs_cache *c, struct fs_cache_object *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&c->lock);
	if (--o->refs == 0 && o->nblocks == 0)
		free_object(c, o);
	pthread_mutex_unlock(&c->lock);
}

const char *fs_cache_object_key(const struct fs_cache_object *o, size_t *len)
{
	*len = o->key_len;
	return o->key;
}

const char *fs_cache_object_etag(const struct fs_cache_object *o)
{
	return o->etag;
}

uint64_t fs_cache_object_size(const struct fs_cache_object *o)
{
	return o->size;
}

static void lru_unlink(struct fs_cache_block *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
}

static void lru_push_front(struct fs_cache *c, struct fs_cache_block *b)
{
	b->next = c->lru.next;
	b->prev = &c->lru;
	c->lru.next->prev = b;
	c->lru.next = b;
}

static struct fs_cache_block *find_block(struct fs_cache *c, const struct fs_cache_object *o,
					 uint64_t index)
{
	for (struct fs_cache_block *b = c->table[block_bucket(c, o, index)]; b; b = b->hnext) {
		if (b->obj == o && b->index == index)
			return b;
	}
	return NULL;
}

/* Removes an unpinned, finished block and returns its buffer. Lock held. */
static char *evict(struct fs_cache *c, struct fs_cache_block *b)
{
	struct fs_cache_block **pp = &c->table[block_bucket(c, b->obj, b->index)];
	char *data = b->data;

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == b) {
			*pp = b->hnext;
			break;
		}
	}
	lru_unlink(b);
	c->nblocks--;
	c->stats.evictions++;
	if (b->prefetched && !b->used && b->state == BLOCK_READY)
		c->stats.prefetched_unused_bytes += b->len;
	if (--b->obj->nblocks == 0 && b->obj->refs == 0)
		free_object(c, b->obj);
	free(b);
	return data;
}

/* A buffer for a new block: a fresh one while under the cap, else the least recently used
 * evictable block's. NULL if every block is pinned or loading. Lock held. */
static char *find_room(struct fs_cache *c)
{
	char *data;

	if (c->npool)
		return c->pool[--c->npool];
	if (c->mapped < c->max_blocks) {
		data = mmap(NULL, c->block_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
		if (data != MAP_FAILED) {
			c->mapped++;
			return data;
		}
	}
	for (struct fs_cache_block *b = c->lru.prev; b != &c->lru; b = b->prev) {
		if (b->pins == 0 && b->state != BLOCK_LOADING)
			return evict(c, b);
	}
	return NULL;
}

enum fs_cache_claim fs_cache_claim(struct fs_cache *c, struct fs_cache_object *o,
				   uint64_t index, bool wait, bool prefetch,
				   struct fs_cache_block **out)
{
	struct fs_cache_block *b;
	char *data = NULL;
	enum fs_cache_claim result;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		b = find_block(c, o, index);
		if (b)
			break;
		data = find_room(c);
		if (data)
			break;
		/* Everything is pinned or loading; a block that completes or is released makes
		 * room. With nothing in the cache at all, no room will ever come. */
		if (!wait || c->nblocks == 0) {
			pthread_mutex_unlock(&c->lock);
			return FS_CACHE_FULL;
		}
		c->room_waiters++;
		pthread_cond_wait(&c->room, &c->lock);
		c->room_waiters--;
	}
	if (b && b->state == BLOCK_FAILED && b->pins == 0) {
		/* Nobody is looking at the failure any more: try again. */
		b->state = BLOCK_LOADING;
		b->err = 0;
		b->prefetched = prefetch;
		result = FS_CACHE_MINE;
	} else if (b) {
		result = b->state == BLOCK_LOADING ? FS_CACHE_LOADING : FS_CACHE_READY;
	} else {
		b = calloc(1, sizeof(*b));
		if (!b) {
			c->pool[c->npool++] = data;
			pthread_mutex_unlock(&c->lock);
			return FS_CACHE_FULL;
		}
		b->obj = o;
		b->index = index;
		b->state = BLOCK_LOADING;
		b->data = data;
		b->prefetched = prefetch;
		o->nblocks++;
		c->nblocks++;
		b->hnext = c->table[block_bucket(c, o, index)];
		c->table[block_bucket(c, o, index)] = b;
		lru_push_front(c, b);
		result = FS_CACHE_MINE;
	}
	/* Readers' claims only: prefetch looking ahead is neither a hit nor a miss. */
	if (!prefetch && result == FS_CACHE_MINE)
		c->stats.misses++;
	else if (!prefetch)
		c->stats.hits++;
	lru_unlink(b);
	lru_push_front(c, b);
	b->pins++;
	if (!prefetch)
		b->used = true;
	*out = b;
	pthread_mutex_unlock(&c->lock);
	return result;
}

void fs_cache_complete(struct fs_cache *c, struct fs_cache_block *b, int err)
{
	uint64_t start = b->index * c->block_size, size = b->obj->size;

	pthread_mutex_lock(&c->lock);
	if (err) {
		b->state = BLOCK_FAILED;
		b->err = err;
		b->len = 0;
	} else {
		b->state = BLOCK_READY;
		b->len = size - start < c->block_size ? (size_t)(size - start) : c->block_size;
	}
	/* Most blocks complete with nobody waiting (prefetch runs ahead of the reader): wake
	 * only those that wait for this block, and those waiting for room. */
	if (b->waiters)
		pthread_cond_broadcast(stripe(c, b));
	if (c->room_waiters)
		pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->lock);
}

int fs_cache_wait(struct fs_cache *c, struct fs_cache_block *b)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	b->waiters++;
	while (b->state == BLOCK_LOADING)
		pthread_cond_wait(stripe(c, b), &c->lock);
	b->waiters--;
	rc = b->state == BLOCK_READY ? 0 : -b->err;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void fs_cache_pin(struct fs_cache *c, struct fs_cache_block *b)
{
	pthread_mutex_lock(&c->lock);
	b->pins++;
	pthread_mutex_unlock(&c->lock);
}

void fs_cache_release(struct fs_cache *c, struct fs_cache_block *b)
{
	pthread_mutex_lock(&c->lock);
	b->pins--;
	if (b->pins == 0 && c->room_waiters)
		pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->lock);
}

char *fs_cache_block_data(const struct fs_cache_block *b)
{
	return b->data;
}

size_t fs_cache_block_len(const struct fs_cache_block *b)
{
	return b->len;
}

uint64_t fs_cache_block_index(const struct fs_cache_block *b)
{
	return b->index;
}

void fs_cache_forget_key(struct fs_cache *c, const char *key, size_t key_len)
{
	pthread_mutex_lock(&c->lock);
	for (struct fs_cache_block *b = c->lru.next, *next; b != &c->lru; b = next) {
		next = b->next;
		if (b->pins == 0 && b->state != BLOCK_LOADING && b->obj->key_len == key_len &&
		    memcmp(b->obj->key, key, key_len) == 0)
			c->pool[c->npool++] = evict(c, b);
	}
	pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->lock);
}

void fs_cache_get_stats(struct fs_cache *c, struct fs_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	out->bytes_held = 0;
	for (struct fs_cache_block *b = c->lru.next; b != &c->lru; b = b->next)
		out->bytes_held += b->state == BLOCK_READY ? b->len : c->block_size;
	pthread_mutex_unlock(&c->lock);
}
