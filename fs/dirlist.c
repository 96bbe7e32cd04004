/*
 * Building directory snapshots from listing pages. See dirlist.h.
 *
 * Entries are collected from every page into a growing array, sorted by name with directories
 * first among equal names, and then deduplicated keeping the first of each name: so a directory
 * shadows a file, and a marker plus a common prefix of the same directory count once.
 */
#include "dirlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "names.h"
#include "s3/log.h"

/* Limits against a server that never stops paging. */
#define MAX_EMPTY_PAGES 100
#define MAX_DIR_ENTRIES (10u * 1000 * 1000)

struct builder {
	struct fs_dirent *entries;
	size_t n, cap;
	size_t hidden;
};

static bool push(struct builder *b, const char *name, size_t len, bool is_dir,
		 const struct s3_object *obj)
{
	struct fs_dirent *e;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct fs_dirent *p = realloc(b->entries, cap * sizeof(*p));

		if (!p)
			return false;
		b->entries = p;
		b->cap = cap;
	}
	e = &b->entries[b->n];
	memset(e, 0, sizeof(*e));
	e->name = strndup(name, len);
	if (!e->name)
		return false;
	e->is_dir = is_dir;
	if (!is_dir && obj) {
		e->size = obj->size;
		e->mtime = obj->mtime;
		e->mtime_nsec = obj->mtime_nsec;
		if (obj->etag) {
			e->etag = strdup(obj->etag);
			if (!e->etag) {
				free(e->name);
				return false;
			}
		}
	}
	b->n++;
	return true;
}

/* Adds the child that `rest` (a key or prefix with the directory prefix removed) stands for:
 * its first component is the name; a '/' after it makes it a directory. */
static bool add_child(struct builder *b, const char *rest, size_t len, bool from_prefix,
		      const struct s3_object *obj, const char *full, size_t full_len)
{
	const char *slash = memchr(rest, '/', len);
	size_t name_len = slash ? (size_t)(slash - rest) : len;
	enum fs_name_verdict verdict;

	if (len == 0)
		return true; /* the directory's own marker */
	verdict = fs_name_check(rest, name_len);
	if (verdict != FS_NAME_OK) {
		b->hidden++;
		log_debug("fs", "hiding key '%.*s': %s", (int)full_len, full,
			  fs_name_verdict_text(verdict));
		return true;
	}
	return push(b, rest, name_len, slash != NULL || from_prefix, obj);
}

static int compare_entries(const void *a, const void *b)
{
	const struct fs_dirent *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return (int)y->is_dir - (int)x->is_dir;
}

static void free_entries(struct fs_dirent *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(entries[i].name);
		free(entries[i].etag);
	}
	free(entries);
}

/* dir: the prefix as a C string, for logs. */
static enum s3_status add_page(struct builder *b, const struct s3_listing *page,
			       const char *prefix, size_t prefix_len, const char *dir,
			       struct s3_error *err)
{
	for (size_t i = 0; i < page->nobjects; i++) {
		const struct s3_object *o = &page->objects[i];

		if (o->key_len < prefix_len || memcmp(o->key, prefix, prefix_len) != 0) {
			LOG_EVENT(LOG_LEVEL_WARN, "fs", "listing returned a key outside its prefix",
				  {"prefix", dir}, {"key", o->key});
			continue;
		}
		if (!add_child(b, o->key + prefix_len, o->key_len - prefix_len, false, o, o->key,
			       o->key_len))
			return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	for (size_t i = 0; i < page->nprefixes; i++) {
		const struct s3_prefix *p = &page->prefixes[i];

		if (p->len <= prefix_len || memcmp(p->prefix, prefix, prefix_len) != 0) {
			LOG_EVENT(LOG_LEVEL_WARN, "fs", "listing returned a key outside its prefix",
				  {"prefix", dir}, {"key", p->prefix});
			continue;
		}
		if (!add_child(b, p->prefix + prefix_len, p->len - prefix_len, true, NULL,
			       p->prefix, p->len))
			return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	return S3_OK;
}

enum s3_status fs_dirlist_fetch(const struct fs_backend *backend, const char *prefix,
				size_t prefix_len, struct fs_dirlist **out, struct s3_error *err)
{
	struct builder b = {0};
	struct s3_listing page = {0};
	struct fs_dirlist *list = NULL;
	char *token = NULL, *dir = strndup(prefix, prefix_len);
	size_t pages = 0, kept = 0, shadowed = 0, empty_pages = 0;
	enum s3_status status;

	*out = NULL;
	if (!dir)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	for (;;) {
		status = backend->list(backend->ctx, prefix, prefix_len, token, &page, err);
		pages++;
		if (status != S3_OK)
			goto out;
		status = add_page(&b, &page, prefix, prefix_len, dir, err);
		if (status != S3_OK)
			goto out;
		if (!page.truncated)
			break;
		/* A server that pages forever must not hold a lookup forever, nor fill memory. */
		empty_pages = page.nobjects + page.nprefixes ? 0 : empty_pages + 1;
		if (empty_pages > MAX_EMPTY_PAGES || b.n + b.hidden > MAX_DIR_ENTRIES) {
			status = s3_error_set(err, S3_PROTOCOL,
					      "listing '%.*s' does not end: %zu pages, %zu entries",
					      (int)prefix_len, prefix, pages, b.n + b.hidden);
			goto out;
		}
		if (token && strcmp(token, page.next_token) == 0) {
			status = s3_error_set(err, S3_PROTOCOL,
					      "the server repeated continuation token '%s' while "
					      "listing '%.*s'",
					      token, (int)prefix_len, prefix);
			goto out;
		}
		free(token);
		token = page.next_token;
		page.next_token = NULL;
		s3_listing_fini(&page);
	}
	if (b.n > 1)
		qsort(b.entries, b.n, sizeof(*b.entries), compare_entries);
	for (size_t i = 0; i < b.n; i++) {
		if (kept && strcmp(b.entries[kept - 1].name, b.entries[i].name) == 0) {
			/* Same name again: a shadowed file, or a marker beside its prefix. */
			if (!b.entries[i].is_dir && b.entries[kept - 1].is_dir) {
				shadowed++;
				log_debug("fs", "file '%.*s%s' is shadowed by a directory",
					  (int)prefix_len, prefix, b.entries[i].name);
			}
			free(b.entries[i].name);
			free(b.entries[i].etag);
			continue;
		}
		b.entries[kept++] = b.entries[i];
	}
	b.n = kept;
	list = calloc(1, sizeof(*list));
	if (!list) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	atomic_init(&list->refs, 1);
	list->entries = b.entries;
	list->n = b.n;
	list->hidden = b.hidden;
	list->shadowed = shadowed;
	list->pages = pages;
	b.entries = NULL;
	b.n = 0;
	metrics_add(&fs_metrics.hidden_keys, list->hidden);
	metrics_add(&fs_metrics.shadowed_files, list->shadowed);
	if (list->hidden || list->shadowed) {
		char nhidden[24], nshadowed[24];

		snprintf(nhidden, sizeof(nhidden), "%zu", list->hidden);
		snprintf(nshadowed, sizeof(nshadowed), "%zu", list->shadowed);
		LOG_EVENT(LOG_LEVEL_INFO, "fs", "keys hidden: not valid names, or files under a "
			  "directory of the same name",
			  {"prefix", dir}, {"hidden", nhidden}, {"shadowed", nshadowed});
	}
	*out = list;
	status = S3_OK;
out:
	s3_listing_fini(&page);
	free(token);
	free(dir);
	free_entries(b.entries, b.n);
	return status;
}

const struct fs_dirent *fs_dirlist_find(const struct fs_dirlist *list, const char *name)
{
	size_t lo = 0, hi = list->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, list->entries[mid].name);

		if (c == 0)
			return &list->entries[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

struct fs_dirlist *fs_dirlist_ref(struct fs_dirlist *list)
{
	atomic_fetch_add_explicit(&list->refs, 1, memory_order_relaxed);
	return list;
}

void fs_dirlist_unref(struct fs_dirlist *list)
{
	if (!list || atomic_fetch_sub_explicit(&list->refs, 1, memory_order_acq_rel) != 1)
		return;
	free_entries(list->entries, list->n);
	free(list);
}
