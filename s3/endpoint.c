/*
 * Endpoint resolution. See endpoint.h.
 */
#include "endpoint.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"

/* The struct handed out is the head of this one, so refs stays private. */
struct endpoint_box {
	struct s3_endpoint ep;
	atomic_uint refs;
};

bool s3_bucket_name_valid(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];

		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return false;
	}
	return true;
}

/* True when the bucket can be a DNS label prefix: lower-case, 3-63 characters, no "..". */
static bool bucket_dns_compatible(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];

		if (!(islower(c) || isdigit(c) || c == '-' || c == '.'))
			return false;
		if (c == '.' && b[i + 1] == '.')
			return false;
	}
	return true;
}

bool s3_region_valid(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)r[i];

		if (!(islower(c) || isdigit(c) || c == '-'))
			return false;
	}
	return true;
}

static bool host_is_ip(const char *host)
{
	size_t n = strlen(host);

	if (host[0] == '[')
		return true;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)host[i]) && host[i] != '.')
			return false;
	}
	return n > 0;
}

struct s3_endpoint *s3_endpoint_ref(struct s3_endpoint *ep)
{
	atomic_fetch_add_explicit(&((struct endpoint_box *)ep)->refs, 1, memory_order_relaxed);
	return ep;
}

void s3_endpoint_unref(struct s3_endpoint *ep)
{
	struct endpoint_box *box = (struct endpoint_box *)ep;

	if (!ep || atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(ep->region);
	free(ep->base_url);
	free(ep->host);
	free(ep->path_root);
	free(ep->describe);
	free(box);
}

enum s3_status s3_endpoint_create(const char *bucket, const char *region,
				  const char *endpoint_url, bool force_path_style,
				  struct s3_endpoint **out, struct s3_error *err)
{
	char *url = NULL, *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL,
	     *user = NULL, *fragment = NULL;
	enum s3_status status = S3_INVALID_ARGUMENT;
	struct endpoint_box *box = NULL;
	struct s3_endpoint *ep;
	CURLU *u = NULL;
	struct buf base, hosthdr, desc;
	bool virtual_hosted;

	*out = NULL;
	buf_init(&base);
	buf_init(&hosthdr);
	buf_init(&desc);
	if (endpoint_url) {
		url = strdup(endpoint_url);
	} else if (asprintf(&url, "https://s3.%s.amazonaws.com%s", region,
			    strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0) {
		url = NULL;
	}
	u = curl_url();
	box = calloc(1, sizeof(*box));
	if (!url || !u || !box) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	ep = &box->ep;
	atomic_init(&box->refs, 1);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		s3_error_set(err, status, "endpoint URL '%s' is not a valid URL", url);
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		s3_error_set(err, status, "endpoint URL '%s' must start with http:// or https://",
			     url);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	if ((path && strcmp(path, "/") != 0) || query || fragment || user) {
		s3_error_set(err, status,
			     "endpoint URL '%s' must be scheme://host[:port] only, without a path, "
			     "query or user",
			     url);
		goto out;
	}
	ep->https = strcmp(scheme, "https") == 0;
	ep->aws_default = endpoint_url == NULL;
	/* Virtual-hosted addressing needs the bucket as a DNS label in front of a host name, and
	 * over TLS a bucket with dots would not match the wildcard certificate. */
	virtual_hosted = !force_path_style && !host_is_ip(host) && bucket_dns_compatible(bucket) &&
			 !(ep->https && strchr(bucket, '.'));
	if (!buf_appendf(&hosthdr, "%s%s%s%s%s", virtual_hosted ? bucket : "",
			 virtual_hosted ? "." : "", host, port ? ":" : "", port ? port : "") ||
	    !buf_appendf(&base, "%s://%s", scheme, hosthdr.data) ||
	    !buf_appendf(&desc, "%s (%s)", base.data,
			 virtual_hosted ? "virtual-hosted" : "path-style")) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	ep->region = strdup(region);
	ep->host = buf_steal(&hosthdr);
	ep->base_url = buf_steal(&base);
	ep->describe = buf_steal(&desc);
	if (virtual_hosted)
		ep->path_root = strdup("");
	else if (asprintf(&ep->path_root, "/%s", bucket) < 0)
		ep->path_root = NULL;
	if (!ep->region || !ep->host || !ep->base_url || !ep->describe || !ep->path_root) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	*out = ep;
	box = NULL;
	status = S3_OK;
out:
	if (box)
		s3_endpoint_unref(&box->ep);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_free(fragment);
	curl_free(user);
	curl_url_cleanup(u);
	free(url);
	buf_fini(&base);
	buf_fini(&hosthdr);
	buf_fini(&desc);
	return status;
}
