/*
 * The block cache and the read path against an in-memory bucket: block life cycle, the byte
 * cap, single-flight fetching, sequential prefetch in parts, bounded amplification for random
 * reads, one GET for small objects, exact bytes at every offset, and changed objects.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fake_bucket.h"
#include "fs/cache.h"
#include "fs/reader.h"
#include "fs/tree.h"
#include "harness.h"
#include "s3/log.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define BS (256 * KIB)

/* ---- the cache alone ---- */

static void test_cache_life_cycle(void)
{
	struct fs_cache *c = fs_cache_create(4 * BS, BS);
	struct fs_cache_object *o = fs_cache_object_get(c, "k", 1, "\"e\"", 10 * BS + 100);
	struct fs_cache_block *b, *b2, *held[4];
	struct fs_cache_stats st;

	CHECK(fs_cache_create(3 * BS, BS) == NULL, "fewer than 4 blocks refused");
	CHECK(fs_cache_create(4 * BS, 3000) == NULL, "block size not a power of two refused");
	CHECK(fs_cache_claim(c, o, 0, false, false, &b) == FS_CACHE_MINE, "first claim is mine");
	CHECK(fs_cache_claim(c, o, 0, false, false, &b2) == FS_CACHE_LOADING && b2 == b,
	      "second claim sees it loading");
	fs_cache_complete(c, b, 0);
	CHECK(fs_cache_wait(c, b2) == 0 && fs_cache_block_len(b2) == BS, "ready, full block");
	fs_cache_release(c, b);
	fs_cache_release(c, b2);
	CHECK(fs_cache_claim(c, o, 10, false, false, &b) == FS_CACHE_MINE, "last block");
	fs_cache_complete(c, b, 0);
	CHECK(fs_cache_block_len(b) == 100, "last block is short (%zu)", fs_cache_block_len(b));
	fs_cache_release(c, b);
	CHECK(fs_cache_claim(c, o, 0, false, false, &b) == FS_CACHE_READY, "cached block is ready");
	fs_cache_release(c, b);

	/* Failure: waiters see it; the next claim tries again. */
	CHECK(fs_cache_claim(c, o, 3, false, false, &b) == FS_CACHE_MINE, "claim 3");
	fs_cache_complete(c, b, EIO);
	CHECK(fs_cache_wait(c, b) == -EIO, "failed block reports EIO");
	fs_cache_release(c, b);
	CHECK(fs_cache_claim(c, o, 3, false, false, &b) == FS_CACHE_MINE, "failed block retried");
	fs_cache_complete(c, b, 0);
	fs_cache_release(c, b);

	/* The cap: 4 blocks pinned, a fifth has no room. */
	for (int i = 0; i < 4; i++) {
		enum fs_cache_claim st4 = fs_cache_claim(c, o, (uint64_t)(4 + i), false, false,
							 &held[i]);

		CHECK(st4 == FS_CACHE_MINE, "claim %d evicts to make room", 4 + i);
		fs_cache_complete(c, held[i], 0);
	}
	CHECK(fs_cache_claim(c, o, 9, false, false, &b) == FS_CACHE_FULL, "no room while pinned");
	fs_cache_get_stats(c, &st);
	CHECK(st.bytes_held <= 4 * BS, "never above the cap (%zu)", st.bytes_held);
	for (int i = 0; i < 4; i++)
		fs_cache_release(c, held[i]);
	CHECK(fs_cache_claim(c, o, 9, false, true, &b) == FS_CACHE_MINE, "room after release");
	fs_cache_complete(c, b, 0);
	fs_cache_release(c, b);
	fs_cache_get_stats(c, &st);
	CHECK(st.evictions >= 4, "evictions counted (%llu)", (unsigned long long)st.evictions);

	/* Another version of the key has its own blocks; forgetting the key drops both. */
	struct fs_cache_object *o2 = fs_cache_object_get(c, "k", 1, "\"f\"", 10 * BS + 100);
	CHECK(o2 != o, "another ETag is another object");
	CHECK(fs_cache_claim(c, o2, 9, false, false, &b) == FS_CACHE_MINE, "new version fetched");
	fs_cache_complete(c, b, 0);
	fs_cache_release(c, b);
	fs_cache_forget_key(c, "k", 1);
	CHECK(fs_cache_claim(c, o, 9, false, false, &b) == FS_CACHE_MINE, "forgotten");
	fs_cache_complete(c, b, 0);
	fs_cache_release(c, b);
	fs_cache_object_put(c, o2);
	fs_cache_object_put(c, o);
	fs_cache_destroy(c);
}

/* ---- the read path ---- */

struct setup {
	struct fake_bucket fb;
	struct fs_backend backend;
	struct fs_tree *tree;
	struct fs_reader *reader;
};

static struct fake_object objects[] = {
	{"big", 0, 64 * MIB + 12345, "\"b1\""},
	{"small", 0, 3 * MIB + 7, "\"s1\""},
	{"tiny", 0, 10, "\"t1\""},
	{"empty", 0, 0, "\"z\""},
	{"huge", 0, 96 * MIB, "\"h1\""},
};

static void setup(struct setup *s, size_t cache_size)
{
	struct fs_tree_config tc = {"", 0, 0, 0444, 0555, -1, 0};
	struct fs_reader_config rc = {cache_size, BS, 8};

	memset(s, 0, sizeof(*s));
	s->fb.objects = objects;
	s->fb.n = sizeof(objects) / sizeof(objects[0]);
	s->fb.page_size = 1000;
	fake_backend_init(&s->fb, &s->backend);
	s->tree = fs_tree_create(&tc, &s->backend);
	s->reader = fs_reader_create(s->tree, &s->backend, &rc);
	fs_reader_start(s->reader);
}

static void teardown(struct setup *s)
{
	fs_reader_destroy(s->reader);
	fs_tree_destroy(s->tree);
}

static struct fs_file *open_file(struct setup *s, const char *name)
{
	struct fs_file *f = NULL;
	struct stat st;
	bool keep;

	if (fs_tree_lookup(s->tree, FS_ROOT_INO, name, &st) == 0)
		fs_file_open(s->reader, st.st_ino, &f, &keep);
	return f;
}

struct sink {
	char *buf;
	size_t len;
};

static int copy_reply(void *ctx, const struct iovec *iov, int count)
{
	struct sink *k = ctx;

	k->len = 0;
	for (int i = 0; i < count; i++) {
		memcpy(k->buf + k->len, iov[i].iov_base, iov[i].iov_len);
		k->len += iov[i].iov_len;
	}
	return 0;
}

/* Reads [off, off+size) and checks every byte against the bucket's content. */
static bool read_check(struct fs_file *f, const char *key, uint64_t off, size_t size)
{
	static __thread char buf[2 * 1024 * 1024];
	struct sink k = {buf, 0};
	uint64_t fsize = fs_file_size(f);
	size_t want = off >= fsize ? 0 : (fsize - off < size ? (size_t)(fsize - off) : size);
	ssize_t n = fs_file_read(f, size, off, copy_reply, &k);

	if (n != (ssize_t)want || k.len != want)
		return false;
	for (size_t i = 0; i < want; i++) {
		if ((unsigned char)buf[i] != fake_byte(key, off + i))
			return false;
	}
	return true;
}

static void test_sequential(void)
{
	struct setup s;
	struct fs_file *f;
	struct fs_reader_stats st;
	bool ok = true;

	setup(&s, 64 * MIB);
	f = open_file(&s, "big");
	for (uint64_t off = 0; off < 64 * MIB + 12345 && ok; off += 128 * KIB)
		ok = read_check(f, "big", off, 128 * KIB);
	fs_reader_get_stats(s.reader, &st);
	CHECK(ok, "sequential bytes right");
	CHECK(st.cache.bytes_held <= 64 * MIB, "cache within its cap");
	fs_file_release(f);
	/* Teardown joins the workers: every GET has finished counting. */
	teardown(&s);
	CHECK(atomic_load(&s.fb.bytes_read) == (long long)(64 * MIB + 12345),
	      "every byte fetched once (%lld)", (long long)atomic_load(&s.fb.bytes_read));
	CHECK(atomic_load(&s.fb.reads) <= 20,
	      "a 64 MiB stream takes few GETs (parts), got %d", atomic_load(&s.fb.reads));
}

static void test_memory_cap(void)
{
	struct setup s;
	struct fs_file *f;
	struct fs_reader_stats st;
	bool ok = true;

	/* A 96 MiB stream through a 16 MiB cache: correct, within the cap, no byte twice. */
	setup(&s, 16 * MIB);
	f = open_file(&s, "huge");
	for (uint64_t off = 0; off < 96 * MIB && ok; off += 128 * KIB)
		ok = read_check(f, "huge", off, 128 * KIB);
	fs_reader_get_stats(s.reader, &st);
	CHECK(ok, "bytes right through a small cache");
	CHECK(st.cache.capacity == 16 * MIB && st.cache.bytes_held <= 16 * MIB,
	      "held %zu of %zu", st.cache.bytes_held, st.cache.capacity);
	fs_file_release(f);
	teardown(&s);
	CHECK(atomic_load(&s.fb.bytes_read) == (long long)(96 * MIB),
	      "prefetch never outran the cap into refetching (%lld)",
	      (long long)atomic_load(&s.fb.bytes_read));
}

static void test_random(void)
{
	struct setup s;
	struct fs_file *f;
	bool ok = true;
	unsigned seed = 42;

	setup(&s, 64 * MIB);
	f = open_file(&s, "big");
	for (int i = 0; i < 200 && ok; i++) {
		uint64_t off = ((uint64_t)rand_r(&seed) << 16 ^ (uint64_t)rand_r(&seed)) %
			       (64 * MIB);

		ok = read_check(f, "big", off, 4096);
	}
	CHECK(ok, "random bytes right");
	fs_file_release(f);
	teardown(&s);
	CHECK(atomic_load(&s.fb.bytes_read) <= (long long)(200 * 2 * BS),
	      "random reads fetch only their blocks (%lld bytes for 200 reads)",
	      (long long)atomic_load(&s.fb.bytes_read));
}

static void test_small_and_edges(void)
{
	struct setup s;
	struct fs_file *f;

	setup(&s, 64 * MIB);
	f = open_file(&s, "small");
	CHECK(read_check(f, "small", 0, 128 * KIB), "small object first read");
	for (uint64_t off = 128 * KIB; off < 3 * MIB + 7; off += 128 * KIB)
		read_check(f, "small", off, 128 * KIB);
	CHECK(atomic_load(&s.fb.reads) == 1, "a 3 MiB object read from the start: one GET (%d)",
	      atomic_load(&s.fb.reads));
	CHECK(read_check(f, "small", 3 * MIB, 100) && read_check(f, "small", 3 * MIB + 7, 10) &&
		      read_check(f, "small", 5 * MIB, 10),
	      "tail, EOF and past EOF");
	CHECK(read_check(f, "small", BS - 10, 20) && read_check(f, "small", 3 * BS - 1, BS + 2),
	      "reads across block boundaries");
	fs_file_release(f);
	f = open_file(&s, "tiny");
	CHECK(read_check(f, "tiny", 0, 4096) && read_check(f, "tiny", 9, 4096), "tiny object");
	fs_file_release(f);
	atomic_store(&s.fb.reads, 0);
	f = open_file(&s, "empty");
	CHECK(read_check(f, "empty", 0, 4096) && atomic_load(&s.fb.reads) == 0,
	      "an empty object needs no GET");
	fs_file_release(f);
	teardown(&s);
}

struct racer {
	struct setup *s;
	bool ok;
};

static void *race_read(void *arg)
{
	struct racer *r = arg;
	struct fs_file *f = open_file(r->s, "big");

	r->ok = f && read_check(f, "big", 10 * MIB, 1 * MIB);
	fs_file_release(f);
	return NULL;
}

static void test_single_flight(void)
{
	struct setup s;
	pthread_t th[8];
	struct racer r[8];
	bool ok = true;

	setup(&s, 64 * MIB);
	s.fb.read_delay_ms = 50;
	for (int i = 0; i < 8; i++) {
		r[i].s = &s;
		pthread_create(&th[i], NULL, race_read, &r[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok = ok && r[i].ok;
	}
	CHECK(ok, "8 concurrent readers get the right bytes");
	teardown(&s);
	CHECK(atomic_load(&s.fb.bytes_read) == (long long)(1 * MIB),
	      "8 readers of the same MiB fetch it once (%lld bytes)",
	      (long long)atomic_load(&s.fb.bytes_read));
}

static void test_changed_object(void)
{
	struct setup s;
	struct fs_file *f;
	static char buf[4096];
	struct sink k = {buf, 0};
	struct fake_object *tiny = NULL;

	setup(&s, 64 * MIB);
	for (size_t i = 0; i < s.fb.n; i++) {
		if (strcmp(objects[i].key, "tiny") == 0)
			tiny = &objects[i];
	}
	f = open_file(&s, "tiny");
	tiny->etag = "\"t2\"";
	CHECK(fs_file_read(f, 10, 0, copy_reply, &k) == -ESTALE, "changed object: ESTALE");
	fs_file_release(f);
	tiny->etag = "\"t1\"";
	teardown(&s);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	test_cache_life_cycle();
	test_sequential();
	test_memory_cap();
	test_random();
	test_small_and_edges();
	test_single_flight();
	test_changed_object();
	return harness_report("test_reader");
}
