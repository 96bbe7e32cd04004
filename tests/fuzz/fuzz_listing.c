/*
 * Fuzzes ListObjectsV2 parsing and the key-to-name mapping behind readdir.
 *
 * Input: one selector byte, then a ListBucketResult body. The selector (mod 4) picks the
 * directory being listed: "", "a/", "dir/sub/" or "\xc3\xa9/" (so seeds start with '0'..'3').
 * The body goes to s3_listing_parse; a page that parses is served, as a deep copy, once and not
 * truncated, by a fake fs_backend to fs_dirlist_fetch.
 *
 * Checks on the page: keys and prefixes of 1..S3_MAX_KEY_LENGTH bytes, NUL-terminated; a
 * continuation token exactly when truncated. Checks on the snapshot: every name passes
 * fs_name_check and holds no '/'; names strictly sorted (so unique); a file is exactly one key
 * of the page (with its size); a directory comes from a key or common prefix below it; every
 * key or prefix whose first component is a valid name shows up (as a directory if anything
 * follows the name); the hidden count matches; fs_dirlist_find finds every entry. Everything is
 * freed, so LeakSanitizer sees any leak.
 */

#include <libxml/parser.h>

#include "tests/fuzz/fuzz.h"
#include "fs/backend.h"
#include "fs/dirlist.h"
#include "fs/names.h"
#include "s3/listing.h"
#include "s3/log.h"

static const char *const dir_prefixes[] = {"", "a/", "dir/sub/", "\xc3\xa9/"};

/* The fake backend: serves one page, once. */
struct fake {
	const struct s3_listing *page;
	unsigned calls;
};

static char *dup_bytes(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* Deep copy of src into *out, without truncation; *out is released with s3_listing_fini. */
static bool copy_page(const struct s3_listing *src, struct s3_listing *out)
{
	memset(out, 0, sizeof(*out));
	out->objects = calloc(src->nobjects ? src->nobjects : 1, sizeof(*out->objects));
	out->prefixes = calloc(src->nprefixes ? src->nprefixes : 1, sizeof(*out->prefixes));
	if (!out->objects || !out->prefixes)
		return false;
	for (size_t i = 0; i < src->nobjects; i++) {
		const struct s3_object *o = &src->objects[i];
		struct s3_object *c = &out->objects[out->nobjects++];

		*c = *o;
		c->key = dup_bytes(o->key, o->key_len);
		c->etag = o->etag ? strdup(o->etag) : NULL;
		if (!c->key || (o->etag && !c->etag))
			return false;
	}
	for (size_t i = 0; i < src->nprefixes; i++) {
		struct s3_prefix *c = &out->prefixes[out->nprefixes++];

		c->len = src->prefixes[i].len;
		c->prefix = dup_bytes(src->prefixes[i].prefix, c->len);
		if (!c->prefix)
			return false;
	}
	return true;
}

static enum s3_status fake_list(void *ctx, const char *prefix, size_t prefix_len, const char *token,
				struct s3_listing *out, struct s3_error *err)
{
	struct fake *f = ctx;

	(void)prefix;
	(void)prefix_len;
	check(token == NULL && f->calls++ == 0, "a second LIST for an untruncated listing");
	if (!copy_page(f->page, out))
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	return S3_OK;
}

/* True when key lies in the directory prefix and its first component there is name; *more
 * tells whether a '/' follows the name. */
static bool child_is(const char *key, size_t key_len, const char *prefix, size_t plen,
		     const char *name, size_t nlen, bool *more)
{
	if (key_len < plen + nlen || memcmp(key, prefix, plen) != 0 ||
	    memcmp(key + plen, name, nlen) != 0)
		return false;
	*more = key_len > plen + nlen;
	return !*more || key[plen + nlen] == '/';
}

/* Checks that the entry for a key or prefix (rest: what follows the directory prefix) is in the
 * snapshot when its first component is a valid name; counts it in *hidden otherwise. */
static void check_child(const struct fs_dirlist *list, const char *rest, size_t rlen,
			bool from_prefix, size_t *hidden)
{
	const char *slash = memchr(rest, '/', rlen);
	size_t nlen = slash ? (size_t)(slash - rest) : rlen;
	const struct fs_dirent *e;
	char *name;

	if (fs_name_check(rest, nlen) != FS_NAME_OK) {
		(*hidden)++;
		return;
	}
	name = dup_bytes(rest, nlen);
	if (!name)
		return;
	e = fs_dirlist_find(list, name);
	check(e != NULL, "a key with a valid name is missing from the directory");
	check(e->is_dir || (!slash && !from_prefix), "a directory shows up as a file");
	free(name);
}

static void check_snapshot(const struct fs_dirlist *list, const struct s3_listing *page,
			   const char *prefix, size_t plen)
{
	size_t hidden = 0;

	check(list->pages == 1, "one page, one LIST");
	for (size_t i = 0; i < list->n; i++) {
		const struct fs_dirent *e = &list->entries[i];
		size_t nlen = e->name ? strlen(e->name) : 0;
		bool found = false, more;

		check(e->name && fs_name_check(e->name, nlen) == FS_NAME_OK, "an invalid name");
		check(!memchr(e->name, '/', nlen), "a name with '/'");
		check(i == 0 || strcmp(list->entries[i - 1].name, e->name) < 0,
		      "names not strictly sorted");
		check(fs_dirlist_find(list, e->name) == e, "fs_dirlist_find misses an entry");
		for (size_t k = 0; k < page->nobjects && !found; k++) {
			const struct s3_object *o = &page->objects[k];

			found = child_is(o->key, o->key_len, prefix, plen, e->name, nlen, &more) &&
				(e->is_dir ? more : !more && o->size == e->size);
		}
		for (size_t k = 0; k < page->nprefixes && !found && e->is_dir; k++)
			found = child_is(page->prefixes[k].prefix, page->prefixes[k].len, prefix,
					 plen, e->name, nlen, &more);
		check(found, "an entry that no key or prefix of the page stands for");
		check(e->is_dir ? e->etag == NULL && e->size == 0 : true,
		      "a directory with file data");
	}
	for (size_t k = 0; k < page->nobjects; k++) {
		const struct s3_object *o = &page->objects[k];

		if (o->key_len > plen && memcmp(o->key, prefix, plen) == 0)
			check_child(list, o->key + plen, o->key_len - plen, false, &hidden);
	}
	for (size_t k = 0; k < page->nprefixes; k++) {
		const struct s3_prefix *p = &page->prefixes[k];

		if (p->len > plen && memcmp(p->prefix, prefix, plen) == 0)
			check_child(list, p->prefix + plen, p->len - plen, true, &hidden);
	}
	check(hidden == list->hidden, "hidden count differs");
}

static void check_page(const struct s3_listing *page)
{
	for (size_t i = 0; i < page->nobjects; i++) {
		const struct s3_object *o = &page->objects[i];

		check(o->key && o->key_len >= 1 && o->key_len <= S3_MAX_KEY_LENGTH &&
			  o->key[o->key_len] == '\0',
		      "a bad key");
		check(o->mtime_nsec < 1000000000u, "nanoseconds out of range");
		check(memchr(o->storage_class, '\0', sizeof(o->storage_class)) != NULL,
		      "storage class not terminated");
	}
	for (size_t i = 0; i < page->nprefixes; i++) {
		const struct s3_prefix *p = &page->prefixes[i];

		check(p->prefix && p->len >= 1 && p->len <= S3_MAX_KEY_LENGTH &&
			  p->prefix[p->len] == '\0',
		      "a bad prefix");
	}
	check(page->truncated ? page->next_token && *page->next_token : !page->next_token,
	      "continuation token and truncation disagree");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	xmlInitParser();
	/* Keys outside the prefix and hidden names are logged; keep the fuzzer fast and quiet. */
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_listing page;
	struct s3_error err;
	struct fs_dirlist *list = NULL;
	struct fake fake = {0};
	struct fs_backend backend = {.list = fake_list, .read = NULL, .ctx = &fake};
	const char *prefix;
	enum s3_status status;

	if (size < 1)
		return 0;
	prefix = dir_prefixes[data[0] % 4];
	s3_error_clear(&err);
	status = s3_listing_parse((const char *)data + 1, size - 1, &page, &err);
	check(memchr(err.message, '\0', sizeof(err.message)) != NULL, "message not terminated");
	if (status != S3_OK) {
		check(status == S3_PROTOCOL || status == S3_NO_MEMORY, "unexpected status");
		goto out;
	}
	check_page(&page);
	fake.page = &page;
	status = fs_dirlist_fetch(&backend, prefix, strlen(prefix), &list, &err);
	check(status == S3_OK || status == S3_NO_MEMORY, "fetch failed on a served page");
	if (status == S3_OK)
		check_snapshot(list, &page, prefix, strlen(prefix));
out:
	fs_dirlist_unref(list);
	s3_listing_fini(&page);
	return 0;
}
