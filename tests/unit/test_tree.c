/*
 * The inode model against an in-memory bucket (no network): how keys become names, lookup
 * counts and inode lifetime, listing cache and TTL, request counts, coalescing of concurrent
 * fetches, errors, and the read path with pinned ETags.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/reader.h"
#include "fs/tree.h"
#include "harness.h"
#include "s3/log.h"

struct fake_object {
	const char *key;
	size_t key_len; /* 0: strlen(key) */
	uint64_t size;
	const char *etag;
};

struct fake_bucket {
	struct fake_object *objects; /* sorted by key bytes */
	size_t n;
	size_t page_size;
	atomic_int lists;
	atomic_int reads;
	enum s3_status fail; /* non-zero: every list fails with it */
	bool repeat_token;   /* every page says truncated with the same token */
	unsigned delay_ms;   /* per list call */
};

static size_t key_len(const struct fake_object *o)
{
	return o->key_len ? o->key_len : strlen(o->key);
}

static int compare_objects(const void *a, const void *b)
{
	const struct fake_object *x = a, *y = b;
	size_t lx = key_len(x), ly = key_len(y);
	int c = memcmp(x->key, y->key, lx < ly ? lx : ly);

	return c ? c : (lx > ly) - (lx < ly);
}

static char *dup_bytes(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* ListObjectsV2 with delimiter "/": the token is the index of the next key. */
static enum s3_status fake_list(void *ctx, const char *prefix, size_t plen, const char *token,
				struct s3_listing *out, struct s3_error *err)
{
	struct fake_bucket *fb = ctx;
	size_t i = token ? strtoul(token, NULL, 10) : 0, count = 0;

	atomic_fetch_add(&fb->lists, 1);
	memset(out, 0, sizeof(*out));
	if (fb->delay_ms) {
		struct timespec ts = {0, (long)fb->delay_ms * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (fb->fail)
		return s3_error_set(err, fb->fail, "injected failure");
	out->objects = calloc(fb->n + 1, sizeof(*out->objects));
	out->prefixes = calloc(fb->n + 1, sizeof(*out->prefixes));
	for (; i < fb->n; i++) {
		const struct fake_object *o = &fb->objects[i];
		size_t len = key_len(o);
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

			out->prefixes[out->nprefixes].prefix = dup_bytes(o->key, cp);
			out->prefixes[out->nprefixes++].len = cp;
			/* Skip every key under this common prefix (they are contiguous). */
			while (i + 1 < fb->n && key_len(&fb->objects[i + 1]) >= cp &&
			       memcmp(fb->objects[i + 1].key, o->key, cp) == 0)
				i++;
		} else {
			struct s3_object *so = &out->objects[out->nobjects++];

			so->key = dup_bytes(o->key, len);
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

static unsigned char content_byte(const char *key, uint64_t off)
{
	return (unsigned char)(off * 31 + (unsigned char)key[0]);
}

static enum s3_status fake_read(void *ctx, const char *key, size_t len, const char *etag,
				uint64_t off, size_t want, char *buf, size_t *got,
				struct s3_error *err)
{
	struct fake_bucket *fb = ctx;

	atomic_fetch_add(&fb->reads, 1);
	for (size_t i = 0; i < fb->n; i++) {
		const struct fake_object *o = &fb->objects[i];

		if (key_len(o) != len || memcmp(o->key, key, len) != 0)
			continue;
		if (etag && o->etag && strcmp(etag, o->etag) != 0)
			return s3_error_set(err, S3_PRECONDITION_FAILED, "changed");
		if (off >= o->size)
			return s3_error_set(err, S3_INVALID_RANGE, "past the end");
		*got = o->size - off < want ? (size_t)(o->size - off) : want;
		for (size_t k = 0; k < *got; k++)
			buf[k] = (char)content_byte(key, off + k);
		return S3_OK;
	}
	return s3_error_set(err, S3_NOT_FOUND, "no such key");
}

static struct fs_tree *make_tree(struct fake_bucket *fb, struct fs_backend *backend,
				 const char *prefix, int64_t ttl_ms)
{
	struct fs_tree_config cfg = {prefix, 1000, 1000, 0444, 0555, ttl_ms};

	qsort(fb->objects, fb->n, sizeof(*fb->objects), compare_objects);
	backend->list = fake_list;
	backend->read = fake_read;
	backend->ctx = fb;
	return fs_tree_create(&cfg, backend);
}

static bool dir_has(struct fs_dirlist *l, const char *name, bool is_dir)
{
	const struct fs_dirent *e = fs_dirlist_find(l, name);

	return e && e->is_dir == is_dir;
}

static struct fake_object semantics_keys[] = {
	{"a.txt", 0, 5, "\"e1\""},
	{"dir/", 0, 0, "\"m\""}, /* marker of a directory with content */
	{"dir/b", 0, 3, "\"e2\""},
	{"dir/sub/c", 0, 7, "\"e3\""},
	{"empty/", 0, 0, "\"m\""}, /* marker of an otherwise empty directory */
	{"x", 0, 9, "\"e4\""},     /* shadowed by x/ */
	{"x/y", 0, 1, "\"e5\""},
	{"a//b", 0, 1, NULL},  /* empty component */
	{"../up", 0, 1, NULL}, /* ".." component */
	{"./here", 0, 1, NULL},
	{"nul\0byte", 8, 1, NULL},
	{"bad\xFFutf8", 0, 1, NULL},
	{"with space+plus%25", 0, 4, "\"e6\""},
};

#define SEMANTICS_BUCKET                                                                   \
	{                                                                                  \
		.objects = semantics_keys,                                                 \
		.n = sizeof(semantics_keys) / sizeof(semantics_keys[0]), .page_size = 1000 \
	}

static void test_semantics(void)
{
	struct fake_bucket fb = SEMANTICS_BUCKET;
	struct fs_backend backend;
	struct fs_tree *t = make_tree(&fb, &backend, "", -1);
	struct fs_dirlist *root = NULL, *l = NULL;
	struct stat st;

	CHECK(fs_tree_opendir(t, FS_ROOT_INO, &root) == 0, "root lists");
	CHECK(root && dir_has(root, "a.txt", false), "file a.txt");
	CHECK(root && dir_has(root, "dir", true), "dir from prefix and marker, once");
	CHECK(root && dir_has(root, "empty", true), "empty dir from its marker");
	CHECK(root && dir_has(root, "x", true), "x is a directory (shadows the file)");
	CHECK(root && root->shadowed == 1, "one shadowed file (got %zu)", root ? root->shadowed : 0);
	CHECK(root && dir_has(root, "with space+plus%25", false), "special characters kept");
	CHECK(root && !fs_dirlist_find(root, "..") && !fs_dirlist_find(root, "."),
	      "no dot entries from keys");
	CHECK(root && !fs_dirlist_find(root, "nul") && !fs_dirlist_find(root, "bad\xFFutf8"),
	      "NUL and bad UTF-8 keys hidden");
	CHECK(root && root->hidden == 4, "hidden count (got %zu)", root ? root->hidden : 0);
	/* "a//b" makes a directory "a" (a common prefix "a/") whose only key is hidden. */
	CHECK(root && dir_has(root, "a", true), "a/ prefix is a directory");
	for (size_t i = 1; root && i < root->n; i++)
		CHECK(strcmp(root->entries[i - 1].name, root->entries[i].name) < 0, "sorted, unique");

	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == 0, "lookup a.txt");
	CHECK(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0444 && st.st_size == 5 &&
		      st.st_uid == 1000 && st.st_mtim.tv_sec == 1700000000,
	      "file attributes");
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "dir", &st) == 0 && S_ISDIR(st.st_mode) &&
		      (st.st_mode & 07777) == 0555,
	      "lookup dir");
	uint64_t dir_ino = st.st_ino;
	CHECK(fs_tree_opendir(t, dir_ino, &l) == 0, "dir lists");
	CHECK(l && l->n == 2 && dir_has(l, "b", false) && dir_has(l, "sub", true),
	      "dir holds b and sub, not its own marker");
	fs_dirlist_unref(l);
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "empty", &st) == 0, "lookup empty");
	CHECK(fs_tree_opendir(t, st.st_ino, &l) == 0 && l && l->n == 0, "empty dir is empty");
	fs_dirlist_unref(l);
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a", &st) == 0, "lookup a");
	CHECK(fs_tree_opendir(t, st.st_ino, &l) == 0 && l && l->n == 0 && l->hidden == 1,
	      "a/ holds only a hidden key");
	fs_dirlist_unref(l);

	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "missing", &st) == -ENOENT, "ENOENT");
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == 0, "lookup again");
	CHECK(fs_tree_lookup(t, st.st_ino, "x", &st) == -ENOTDIR, "ENOTDIR under a file");
	CHECK(fs_tree_opendir(t, 424242, &l) == -ENOENT, "unknown inode");
	fs_dirlist_unref(root);
	fs_tree_destroy(t);
}

static void test_lifetime(void)
{
	struct fake_bucket fb = SEMANTICS_BUCKET;
	struct fs_backend backend;
	struct fs_tree *t = make_tree(&fb, &backend, "", -1);
	struct stat a, b, c;

	CHECK(fs_tree_inode_count(t) == 1, "only the root");
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &a) == 0, "lookup");
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &b) == 0, "lookup again");
	CHECK(a.st_ino == b.st_ino && a.st_ino != FS_ROOT_INO, "same key, same inode");
	CHECK(fs_tree_inode_count(t) == 2, "two inodes");
	fs_tree_forget(t, a.st_ino, 1);
	CHECK(fs_tree_getattr(t, a.st_ino, &c) == 0, "alive with one reference left");
	fs_tree_forget(t, a.st_ino, 1);
	CHECK(fs_tree_getattr(t, a.st_ino, &c) == -ENOENT, "freed after the last forget");
	CHECK(fs_tree_inode_count(t) == 1, "back to the root");
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &c) == 0 && c.st_ino != a.st_ino,
	      "a new number after the inode was freed");
	fs_tree_forget(t, FS_ROOT_INO, 100);
	CHECK(fs_tree_getattr(t, FS_ROOT_INO, &c) == 0, "the root is never freed");
	fs_tree_destroy(t);
}

static void test_cache_and_counts(void)
{
	enum { N = 2500 };
	static struct fake_object objs[N + 1];
	static char names[N][32];
	struct fake_bucket fb = {.objects = objs, .n = N + 1, .page_size = 100};
	struct fs_backend backend;
	struct fs_tree *t;
	struct fs_dirlist *l = NULL;
	struct stat st, big;
	bool all = true;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "big/f%05d", i);
		objs[i] = (struct fake_object){names[i], 0, (uint64_t)i, "\"x\""};
	}
	objs[N] = (struct fake_object){"top", 0, 1, NULL};
	t = make_tree(&fb, &backend, "", -1);
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "big", &big) == 0, "lookup big");
	atomic_store(&fb.lists, 0);
	CHECK(fs_tree_opendir(t, big.st_ino, &l) == 0 && l && l->n == N, "2500 entries");
	CHECK(atomic_load(&fb.lists) == 25, "2500 keys at 100 a page: 25 LISTs (got %d)",
	      atomic_load(&fb.lists));
	for (int i = 0; i < N && all; i++)
		all = fs_tree_lookup(t, big.st_ino, names[i] + 4, &st) == 0 &&
		      st.st_size == i;
	CHECK(all, "every entry looked up with its size");
	CHECK(atomic_load(&fb.lists) == 25, "lookups cost no more LISTs");
	fs_dirlist_unref(l);
	fs_tree_destroy(t);

	/* TTL 0: every access lists again. */
	atomic_store(&fb.lists, 0);
	t = make_tree(&fb, &backend, "", 0);
	fs_tree_lookup(t, FS_ROOT_INO, "top", &st);
	fs_tree_lookup(t, FS_ROOT_INO, "top", &st);
	CHECK(atomic_load(&fb.lists) == 2, "TTL 0 lists each time (got %d)",
	      atomic_load(&fb.lists));
	fs_tree_destroy(t);

	/* A prefix mount sees only its subtree. */
	t = make_tree(&fb, &backend, "big/", -1);
	CHECK(fs_tree_opendir(t, FS_ROOT_INO, &l) == 0 && l && l->n == N &&
		      !fs_dirlist_find(l, "top"),
	      "prefix root holds the prefix's keys only");
	fs_dirlist_unref(l);
	fs_tree_destroy(t);
}

struct racer {
	struct fs_tree *tree;
	int rc;
};

static void *race_lookup(void *arg)
{
	struct racer *r = arg;
	struct stat st;

	r->rc = fs_tree_lookup(r->tree, FS_ROOT_INO, "a.txt", &st);
	return NULL;
}

static void test_coalescing(void)
{
	struct fake_bucket fb = SEMANTICS_BUCKET;
	struct fs_backend backend;
	struct fs_tree *t;
	pthread_t th[8];
	struct racer r[8];
	bool ok = true;

	fb.delay_ms = 100;
	t = make_tree(&fb, &backend, "", -1);
	for (int i = 0; i < 8; i++) {
		r[i].tree = t;
		pthread_create(&th[i], NULL, race_lookup, &r[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok = ok && r[i].rc == 0;
	}
	CHECK(ok, "all concurrent lookups succeed");
	CHECK(atomic_load(&fb.lists) == 1, "8 concurrent lookups, one LIST (got %d)",
	      atomic_load(&fb.lists));
	fs_tree_destroy(t);
}

static void test_errors(void)
{
	struct fake_bucket fb = SEMANTICS_BUCKET;
	struct fs_backend backend;
	struct fs_tree *t;
	struct stat st;

	fb.fail = S3_ACCESS_DENIED;
	t = make_tree(&fb, &backend, "", 0);
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == -EACCES, "denied listing: EACCES");
	fb.fail = S3_OK;
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == 0, "recovers");
	fb.fail = S3_THROTTLED;
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == 0,
	      "throttled refresh serves the previous listing");
	fb.fail = S3_NO_SUCH_BUCKET;
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == -ENOENT,
	      "a permanent error is not hidden by the old listing");
	fb.fail = S3_OK;
	fb.repeat_token = true;
	fb.page_size = 2;
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == -EIO,
	      "a repeated continuation token is an error, not a loop");
	fs_tree_destroy(t);
}

static void test_read_path(void)
{
	static struct fake_object objs[] = {
		{"f", 0, 300000, "\"v1\""},
		{"zero", 0, 0, "\"v0\""},
	};
	struct fake_bucket fb = {.objects = objs, .n = 2, .page_size = 1000};
	struct fs_backend backend;
	struct fs_tree *t = make_tree(&fb, &backend, "", -1);
	struct fs_file *f = NULL;
	struct stat st;
	static char buf[200000];
	bool ok = true;
	ssize_t n;

	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "f", &st) == 0, "lookup f");
	CHECK(fs_file_open(t, &backend, st.st_ino, &f) == 0, "open f");
	n = fs_file_read(f, buf, sizeof(buf), 250000);
	CHECK(n == 50000, "tail read is clipped to the size (%zd)", n);
	for (ssize_t i = 0; i < n && ok; i++)
		ok = (unsigned char)buf[i] == content_byte("f", 250000 + (uint64_t)i);
	CHECK(ok, "tail bytes right");
	CHECK(fs_file_read(f, buf, 10, 300000) == 0, "read at EOF is 0");
	CHECK(fs_file_read(f, buf, 10, 400000) == 0, "read past EOF is 0");
	objs[0].etag = "\"v2\"";
	CHECK(fs_file_read(f, buf, 10, 0) == -ESTALE, "changed object: ESTALE");
	fs_file_release(f);
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "zero", &st) == 0, "lookup zero");
	atomic_store(&fb.reads, 0);
	CHECK(fs_file_open(t, &backend, st.st_ino, &f) == 0, "open zero");
	CHECK(fs_file_read(f, buf, 4096, 0) == 0 && atomic_load(&fb.reads) == 0,
	      "an empty file reads 0 bytes without a request");
	fs_file_release(f);
	CHECK(fs_file_open(t, &backend, FS_ROOT_INO, &f) == -EISDIR, "open a directory: EISDIR");
	fs_tree_destroy(t);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	test_semantics();
	test_lifetime();
	test_cache_and_counts();
	test_coalescing();
	test_errors();
	test_read_path();
	return harness_report("test_tree");
}
