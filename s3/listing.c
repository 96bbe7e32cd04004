/*
 * ListObjectsV2 page parsing on libxml2. See listing.h.
 */
#include "listing.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "date.h"
#include "uri.h"
#include "xml.h"

/* Text of child `name`; NULL if absent. *status is set to S3_NO_MEMORY if copying failed. */
static char *child_text(xmlNode *parent, const char *name, size_t *len, enum s3_status *status)
{
	xmlNode *node = xml_child(parent, name);
	char *text;

	*len = 0;
	if (!node)
		return NULL;
	text = xml_text(node, len);
	if (!text)
		*status = S3_NO_MEMORY;
	return text;
}

/* Replaces *text with its decoding when the listing is url-encoded. */
static enum s3_status decode_in_place(char **text, size_t *len, bool url, struct s3_error *err)
{
	struct buf b;

	if (!url)
		return S3_OK;
	buf_init(&b);
	if (!uri_decode(&b, *text, *len, true)) {
		buf_fini(&b);
		return s3_error_set(err, S3_PROTOCOL, "listing has a malformed url-encoded key");
	}
	free(*text);
	*len = b.len;
	*text = buf_steal(&b);
	return *text ? S3_OK : s3_error_set(err, S3_NO_MEMORY, "out of memory");
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	uintmax_t v;

	if (!s || !*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoumax(s, &end, 10);
	if (errno || *end || v > INT64_MAX)
		return false;
	*out = (uint64_t)v;
	return true;
}

static enum s3_status parse_contents(xmlNode *node, bool url, struct s3_object *obj,
				     struct s3_error *err)
{
	enum s3_status status = S3_OK;
	char *size = NULL, *mtime = NULL, *sclass = NULL;
	size_t len;

	obj->key = child_text(node, "Key", &obj->key_len, &status);
	size = child_text(node, "Size", &len, &status);
	mtime = child_text(node, "LastModified", &len, &status);
	obj->etag = child_text(node, "ETag", &len, &status);
	sclass = child_text(node, "StorageClass", &len, &status);
	if (status != S3_OK) {
		s3_error_set(err, status, "out of memory");
		goto out;
	}
	if (!obj->key) {
		status = s3_error_set(err, S3_PROTOCOL, "listing has a Contents without a Key");
		goto out;
	}
	status = decode_in_place(&obj->key, &obj->key_len, url, err);
	if (status != S3_OK)
		goto out;
	if (obj->key_len == 0 || obj->key_len > S3_MAX_KEY_LENGTH) {
		status = s3_error_set(err, S3_PROTOCOL, "listing has a key of %zu bytes",
				      obj->key_len);
		goto out;
	}
	if (!parse_u64(size, &obj->size)) {
		status = s3_error_set(err, S3_PROTOCOL, "listing has a bad or missing Size");
		goto out;
	}
	if (mtime && !date_parse_iso8601(mtime, &obj->mtime, &obj->mtime_nsec)) {
		status = s3_error_set(err, S3_PROTOCOL, "listing has a bad LastModified");
		goto out;
	}
	if (sclass && strlen(sclass) < sizeof(obj->storage_class))
		strcpy(obj->storage_class, sclass);
out:
	free(size);
	free(mtime);
	free(sclass);
	return status;
}

static enum s3_status parse_prefix(xmlNode *node, bool url, struct s3_prefix *p,
				   struct s3_error *err)
{
	enum s3_status status = S3_OK;

	p->prefix = child_text(node, "Prefix", &p->len, &status);
	if (status != S3_OK)
		return s3_error_set(err, status, "out of memory");
	if (!p->prefix)
		return s3_error_set(err, S3_PROTOCOL, "listing has a CommonPrefixes without Prefix");
	status = decode_in_place(&p->prefix, &p->len, url, err);
	if (status != S3_OK)
		return status;
	if (p->len == 0 || p->len > S3_MAX_KEY_LENGTH)
		return s3_error_set(err, S3_PROTOCOL, "listing has a prefix of %zu bytes", p->len);
	return S3_OK;
}

static size_t count_children(xmlNode *parent, const char *name)
{
	size_t n = 0;

	for (xmlNode *c = xml_child(parent, name); c; c = xml_next(c, name))
		n++;
	return n;
}

enum s3_status s3_listing_parse(const char *data, size_t len, struct s3_listing *out,
				struct s3_error *err)
{
	enum s3_status status = S3_OK;
	xmlDoc *doc = NULL;
	xmlNode *root;
	char *encoding = NULL, *truncated = NULL;
	size_t n, tlen;
	bool url;

	memset(out, 0, sizeof(*out));
	doc = xml_parse(data, len);
	if (!doc) {
		status = s3_error_set(err, S3_PROTOCOL, "listing response is not well-formed XML");
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (!xml_name_is(root, "ListBucketResult")) {
		status = s3_error_set(err, S3_PROTOCOL, "listing response has root <%s>",
				      root && root->name ? (const char *)root->name : "?");
		goto out;
	}
	encoding = child_text(root, "EncodingType", &n, &status);
	truncated = child_text(root, "IsTruncated", &n, &status);
	if (status != S3_OK) {
		s3_error_set(err, status, "out of memory");
		goto out;
	}
	url = encoding && strcmp(encoding, "url") == 0;
	out->truncated = truncated && strcmp(truncated, "true") == 0;

	n = count_children(root, "Contents");
	out->objects = calloc(n ? n : 1, sizeof(*out->objects));
	n = count_children(root, "CommonPrefixes");
	out->prefixes = calloc(n ? n : 1, sizeof(*out->prefixes));
	if (!out->objects || !out->prefixes) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	for (xmlNode *c = xml_child(root, "Contents"); c; c = xml_next(c, "Contents")) {
		status = parse_contents(c, url, &out->objects[out->nobjects++], err);
		if (status != S3_OK)
			goto out;
	}
	for (xmlNode *c = xml_child(root, "CommonPrefixes"); c; c = xml_next(c, "CommonPrefixes")) {
		status = parse_prefix(c, url, &out->prefixes[out->nprefixes++], err);
		if (status != S3_OK)
			goto out;
	}
	if (out->truncated) {
		out->next_token = child_text(root, "NextContinuationToken", &tlen, &status);
		if (status != S3_OK) {
			s3_error_set(err, status, "out of memory");
			goto out;
		}
		if (!out->next_token || tlen == 0 || strlen(out->next_token) != tlen) {
			status = s3_error_set(err, S3_PROTOCOL,
					      "listing is truncated but has no continuation token");
			goto out;
		}
	}
out:
	free(encoding);
	free(truncated);
	xmlFreeDoc(doc);
	return status;
}

void s3_listing_fini(struct s3_listing *listing)
{
	for (size_t i = 0; i < listing->nobjects; i++) {
		free(listing->objects[i].key);
		free(listing->objects[i].etag);
	}
	for (size_t i = 0; i < listing->nprefixes; i++)
		free(listing->prefixes[i].prefix);
	free(listing->objects);
	free(listing->prefixes);
	free(listing->next_token);
	memset(listing, 0, sizeof(*listing));
}
