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

#include "fs/tree.h"
#include "fake_bucket.h"
#include "harness.h"
#include "s3/log.h"

static struct fs_tree *make_tree(struct fake_bucket *fb, struct fs_backend *backend,
				 const char *prefix, int64_t ttl_ms)
{
	struct fs_tree_config cfg = {prefix, 1000, 1000, 0444, 0555, ttl_ms, 0};

	fake_backend_init(fb, backend);
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
	fb.repeat_token = false;
	fb.endless = true;
	atomic_store(&fb.lists, 0);
	CHECK(fs_tree_lookup(t, FS_ROOT_INO, "a.txt", &st) == -EIO,
	      "endless empty pages are an error, not a loop");
	CHECK(atomic_load(&fb.lists) <= 102, "given up after about 100 empty pages (%d)",
	      atomic_load(&fb.lists));
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
	return harness_report("test_tree");
}
