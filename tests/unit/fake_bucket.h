/*
 * An in-memory bucket behind the fs_backend interface, for the fs/ unit tests: ListObjectsV2
 * with delimiter "/" (a page size of choice, continuation tokens), ranged reads with ETag
 * checks and deterministic content, request counters and injected failures and delays.
 */
#ifndef IRSAFS_TESTS_FAKE_BUCKET_H
#define IRSAFS_TESTS_FAKE_BUCKET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "fs/backend.h"

struct fake_object {
	const char *key;
	size_t key_len; /* 0: strlen(key) */
	uint64_t size;
	const char *etag;
};

struct fake_bucket {
	struct fake_object *objects; /* sorted with fake_bucket_sort */
	size_t n;
	size_t page_size;
	atomic_int lists;
	atomic_int reads;
	atomic_llong bytes_read;
	enum s3_status fail; /* non-zero: every list fails with it */
	bool repeat_token;   /* every page says truncated with the same token */
	bool endless;        /* every page is empty and says truncated, with a new token */
	unsigned delay_ms;   /* per list call */
	unsigned read_delay_ms; /* per read call */
};

static inline size_t fake_key_len(const struct fake_object *o)
{
	return o->key_len ? o->key_len : strlen(o->key);
}

static inline int fake_compare_objects(const void *a, const void *b)
{
	const struct fake_object *x = a, *y = b;
	size_t lx = fake_key_len(x), ly = fake_key_len(y);
	int c = memcmp(x->key, y->key, lx < ly ? lx : ly);

	return c ? c : (lx > ly) - (lx < ly);
}

static inline char *fake_dup(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static inline void fake_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ListObjectsV2 with delimiter "/": the token is the index of the next key. */
static inline enum s3_status fake_list(void *ctx, const char *prefix, size_t plen,
				       const char *token, struct s3_listing *out,
				       struct s3_error *err)
{
	struct fake_bucket *fb = ctx;
	size_t i = token ? strtoul(token, NULL, 10) : 0, count = 0;

	atomic_fetch_add(&fb->lists, 1);
	memset(out, 0, sizeof(*out));
	if (fb->delay_ms)
		fake_sleep_ms(fb->delay_ms);
	if (fb->fail)
		return s3_error_set(err, fb->fail, "injected failure");
	if (fb->endless) {
		char next[32];

		snprintf(next, sizeof(next), "t%d", atomic_load(&fb->lists));
		out->truncated = true;
		out->next_token = strdup(next);
		return S3_OK;
	}
	out->objects = calloc(fb->n + 1, sizeof(*out->objects));
	out->prefixes = calloc(fb->n + 1, sizeof(*out->prefixes));
	for (; i < fb->n; i++) {
		const struct fake_object *o = &fb->objects[i];
		size_t len = fake_key_len(o);
		const char *slash;

		if (len < plen || memcmp(o->key, prefix, plen) != 0)
			continue;
		if (count == fb->page_size) {
			char next[32];

			snprintf(next, sizeof(next), "%zu", i);
			out->truncated = true;
			out->next_token = strdup(next);
			break;
		}
		slash = memchr(o->key + plen, '/', len - plen);
		if (slash) {
			size_t cp = (size_t)(slash - o->key) + 1;

			out->prefixes[out->nprefixes].prefix = fake_dup(o->key, cp);
			out->prefixes[out->nprefixes++].len = cp;
			/* Skip every key under this common prefix (they are contiguous). */
			while (i + 1 < fb->n && fake_key_len(&fb->objects[i + 1]) >= cp &&
			       memcmp(fb->objects[i + 1].key, o->key, cp) == 0)
				i++;
		} else {
			struct s3_object *so = &out->objects[out->nobjects++];

			so->key = fake_dup(o->key, len);
			so->key_len = len;
			so->size = o->size;
			so->mtime = 1700000000;
			so->etag = o->etag ? strdup(o->etag) : NULL;
		}
		count++;
	}
	if (fb->repeat_token) {
		free(out->next_token);
		out->truncated = true;
		out->next_token = strdup("same");
	}
	return S3_OK;
}

/* The content of every object: byte i of key k. */
static inline unsigned char fake_byte(const char *key, uint64_t off)
{
	return (unsigned char)(off * 31 + (off >> 13) + (unsigned char)key[0]);
}

static inline enum s3_status fake_read(void *ctx, const char *key, size_t len, const char *etag,
				       uint64_t off, const struct iovec *iov, int iovcnt,
				       size_t *got, void (*progress)(void *, size_t), void *pctx,
				       struct s3_error *err)
{
	struct fake_bucket *fb = ctx;
	size_t want = 0;

	atomic_fetch_add(&fb->reads, 1);
	*got = 0;
	if (fb->read_delay_ms)
		fake_sleep_ms(fb->read_delay_ms);
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	for (size_t i = 0; i < fb->n; i++) {
		const struct fake_object *o = &fb->objects[i];
		uint64_t pos = off;

		if (fake_key_len(o) != len || memcmp(o->key, key, len) != 0)
			continue;
		if (etag && o->etag && strcmp(etag, o->etag) != 0)
			return s3_error_set(err, S3_PRECONDITION_FAILED, "changed");
		if (off >= o->size)
			return s3_error_set(err, S3_INVALID_RANGE, "past the end");
		for (int v = 0; v < iovcnt && pos < o->size; v++) {
			unsigned char *p = iov[v].iov_base;
			size_t k;

			for (k = 0; k < iov[v].iov_len && pos < o->size; k++, pos++)
				p[k] = fake_byte(key, pos);
			*got += k;
			if (progress)
				progress(pctx, *got);
		}
		atomic_fetch_add(&fb->bytes_read, (long long)*got);
		(void)want;
		return S3_OK;
	}
	return s3_error_set(err, S3_NOT_FOUND, "no such key");
}

static inline void fake_bucket_sort(struct fake_bucket *fb)
{
	qsort(fb->objects, fb->n, sizeof(*fb->objects), fake_compare_objects);
}

static inline void fake_backend_init(struct fake_bucket *fb, struct fs_backend *backend)
{
	fake_bucket_sort(fb);
	backend->list = fake_list;
	backend->read = fake_read;
	backend->ctx = fb;
}

#endif
