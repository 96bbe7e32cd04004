/*
 * The S3 client. See client.h for the contract.
 *
 * Life of a request (execute):
 *   for each attempt: take credentials -> sign -> send (send_once) -> classify
 *     expired credentials, first time: tell the provider, sign again with fresh ones
 *     retryable status, attempts left: sleep (full jitter), go again; a GET resumes after the
 *       bytes already stored
 *     otherwise: done
 */
#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "date.h"
#include "http.h"
#include "log.h"
#include "sigv4.h"
#include "uri.h"

#define LIST_BODY_LIMIT (16u * 1024 * 1024)
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000

struct s3_client {
	struct http_transport *http;
	const struct s3_credentials_provider *credentials; /* borrowed, may be NULL */
	char *bucket;
	char *region;
	char *base_url;   /* "https://bucket.s3.us-east-1.amazonaws.com" or "http://127.0.0.1:9000" */
	char *host;       /* the Host header: host[:port] as in base_url */
	char *path_root;  /* "" (virtual-hosted) or "/bucket" (path-style) */
	char *describe;   /* for messages */
	unsigned max_attempts;
};

/* One logical request; execute() may send it several times. */
struct op {
	const char *name; /* "ListObjectsV2", for logs */
	const char *method;
	const char *key; /* NULL for bucket-level requests */
	size_t key_len;
	const struct sigv4_param *params;
	size_t nparams;
	const char *if_match;
	struct get_sink *get; /* ranged GET state, or NULL */
	size_t max_body;
};

/* A ranged GET in progress: bytes land in iov in order; got grows across attempts. */
struct get_sink {
	const struct s3_get_params *params;
	const struct iovec *iov;
	int iovcnt;
	int cur;         /* iov being filled */
	size_t cur_off;  /* bytes already in iov[cur] */
	uint64_t offset; /* object offset of the first byte of iov[0] */
	size_t want;     /* room in all of iov */
	size_t got;      /* bytes stored so far */
	size_t expected; /* bytes the current response promised (from Content-Range) */
	uint64_t total;  /* object size from Content-Range */
	bool checked;    /* Content-Range of the current response validated */
	struct http_response *resp;
};

static bool bucket_name_valid(const char *b)
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

static bool region_valid(const char *r)
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

/* Splits the endpoint URL with curl's parser and decides the addressing style. */
static enum s3_status resolve_endpoint(struct s3_client *c, const struct s3_client_config *cfg,
				       struct s3_error *err)
{
	char *url = NULL, *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL,
	     *user = NULL, *fragment = NULL;
	enum s3_status status = S3_INVALID_ARGUMENT;
	CURLU *u = NULL;
	struct buf base, hosthdr, desc;
	bool virtual_hosted, https;

	buf_init(&base);
	buf_init(&hosthdr);
	buf_init(&desc);
	if (cfg->endpoint_url) {
		url = strdup(cfg->endpoint_url);
	} else {
		const char *suffix = strncmp(cfg->region, "cn-", 3) == 0 ? ".cn" : "";

		if (asprintf(&url, "https://s3.%s.amazonaws.com%s", cfg->region, suffix) < 0)
			url = NULL;
	}
	u = curl_url();
	if (!url || !u) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
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
	https = strcmp(scheme, "https") == 0;
	/* Virtual-hosted addressing needs the bucket as a DNS label in front of a host name, and
	 * over TLS a bucket with dots would not match the wildcard certificate. */
	virtual_hosted = !cfg->force_path_style && !host_is_ip(host) &&
			 bucket_dns_compatible(cfg->bucket) &&
			 !(https && strchr(cfg->bucket, '.'));
	if (!buf_appendf(&hosthdr, "%s%s%s%s%s", virtual_hosted ? cfg->bucket : "",
			 virtual_hosted ? "." : "", host, port ? ":" : "", port ? port : "") ||
	    !buf_appendf(&base, "%s://%s", scheme, hosthdr.data) ||
	    !buf_appendf(&desc, "%s (%s)", base.data,
			 virtual_hosted ? "virtual-hosted" : "path-style")) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	c->host = buf_steal(&hosthdr);
	c->base_url = buf_steal(&base);
	c->describe = buf_steal(&desc);
	if (virtual_hosted)
		c->path_root = strdup("");
	else if (asprintf(&c->path_root, "/%s", cfg->bucket) < 0)
		c->path_root = NULL;
	status = c->host && c->base_url && c->describe && c->path_root
			 ? S3_OK
			 : s3_error_set(err, S3_NO_MEMORY, "out of memory");
out:
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

static enum s3_status check_names(const struct s3_client_config *cfg, struct s3_error *err)
{
	if (!cfg->bucket || !bucket_name_valid(cfg->bucket))
		return s3_error_set(err, S3_INVALID_ARGUMENT,
				    "bucket name '%s' is not valid: use 3 to 255 letters, digits, "
				    "'.', '-' or '_'",
				    cfg->bucket ? cfg->bucket : "");
	if (!cfg->region || !region_valid(cfg->region))
		return s3_error_set(err, S3_INVALID_ARGUMENT,
				    "region '%s' is not valid: expected a name such as us-east-1",
				    cfg->region ? cfg->region : "");
	return S3_OK;
}

enum s3_status s3_client_config_check(const struct s3_client_config *cfg, struct s3_error *err)
{
	struct s3_client *c = s3_client_create(cfg, err);

	if (!c)
		return err->status;
	s3_client_destroy(c);
	return S3_OK;
}

struct s3_client *s3_client_create(const struct s3_client_config *cfg, struct s3_error *err)
{
	struct s3_client *c = NULL;
	struct http_config http = {0};
	bool https;

	if (check_names(cfg, err) != S3_OK)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	c->bucket = strdup(cfg->bucket);
	c->region = strdup(cfg->region);
	if (!c->bucket || !c->region)
		goto nomem;
	c->credentials = cfg->credentials;
	c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 4;
	if (resolve_endpoint(c, cfg, err) != S3_OK)
		goto fail;
	https = strncmp(c->base_url, "https:", 6) == 0;
	/* A CA bundle matters only for https; then an unreadable one is a configuration error
	 * worth reporting before the first request fails with a TLS error. */
	if (https && cfg->ca_bundle && *cfg->ca_bundle && access(cfg->ca_bundle, R_OK) != 0) {
		s3_error_set(err, S3_INVALID_ARGUMENT,
			     "cannot read the CA bundle %s (from AWS_CA_BUNDLE): %s", cfg->ca_bundle,
			     strerror(errno));
		goto fail;
	}
	http.ca_bundle = https ? cfg->ca_bundle : NULL;
	http.max_connections = cfg->max_connections;
	http.user_agent = "irsafs/" IRSAFS_VERSION;
	c->http = http_transport_create(&http, err);
	if (!c->http)
		goto fail;
	return c;
nomem:
	s3_error_set(err, S3_NO_MEMORY, "out of memory");
fail:
	s3_client_destroy(c);
	return NULL;
}

void s3_client_destroy(struct s3_client *c)
{
	if (!c)
		return;
	http_transport_destroy(c->http);
	free(c->bucket);
	free(c->region);
	free(c->base_url);
	free(c->host);
	free(c->path_root);
	free(c->describe);
	free(c);
}

const char *s3_client_endpoint(const struct s3_client *c)
{
	return c->describe;
}

static enum s3_status get_sink(void *ctx, const char *data, size_t len, struct s3_error *err)
{
	struct get_sink *g = ctx;

	if (!g->checked) {
		uint64_t first, last, total, start = g->offset + g->got;
		uint64_t want_last = g->offset + g->want - 1;

		if (!http_parse_content_range(g->resp->content_range, &first, &last, &total))
			return s3_error_set(err, S3_PROTOCOL,
					    "ranged GET answered without a valid Content-Range "
					    "('%s')",
					    g->resp->content_range);
		if (first != start || last != (want_last < total - 1 ? want_last : total - 1))
			return s3_error_set(err, S3_PROTOCOL,
					    "Content-Range '%s' disagrees with the requested bytes "
					    "%" PRIu64 "-%" PRIu64,
					    g->resp->content_range, start, want_last);
		g->expected = (size_t)(last - first + 1);
		g->total = total;
		g->checked = true;
	}
	if (len > g->want - g->got)
		return s3_error_set(err, S3_PROTOCOL, "GET returned more bytes than requested");
	while (len) {
		const struct iovec *v = &g->iov[g->cur];
		size_t n = v->iov_len - g->cur_off < len ? v->iov_len - g->cur_off : len;

		memcpy((char *)v->iov_base + g->cur_off, data, n);
		data += n;
		len -= n;
		g->got += n;
		g->cur_off += n;
		if (g->cur_off == v->iov_len && g->cur + 1 < g->iovcnt) {
			g->cur++;
			g->cur_off = 0;
		}
	}
	if (g->params->progress)
		g->params->progress(g->params->progress_ctx, g->got);
	return S3_OK;
}

/* Header lines of one attempt; every line is wiped when freed (some carry credentials). */
struct header_lines {
	char *line[8];
	size_t n;
};

static bool add_line(struct header_lines *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static bool add_line(struct header_lines *h, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (h->n >= sizeof(h->line) / sizeof(h->line[0]))
		return false;
	va_start(ap, fmt);
	rc = vasprintf(&h->line[h->n], fmt, ap);
	va_end(ap);
	if (rc < 0) {
		h->line[h->n] = NULL;
		return false;
	}
	h->n++;
	return true;
}

static void free_lines(struct header_lines *h)
{
	for (size_t i = 0; i < h->n; i++) {
		OPENSSL_cleanse(h->line[i], strlen(h->line[i]));
		free(h->line[i]);
	}
	h->n = 0;
}

/* Signs (unless creds is NULL: anonymous) and adds the signing headers. query receives the
 * canonical query string to send. */
static enum s3_status sign(struct s3_client *c, const struct op *op, const char *path,
			   const struct s3_credentials *creds, struct buf *query,
			   struct header_lines *lines, struct s3_error *err)
{
	const char *token = creds ? s3_credentials_session_token(creds) : NULL;
	struct sigv4_header headers[4];
	struct sigv4_result sig = {0};
	char amz_date[17];
	size_t n = 0;
	enum s3_status status;

	if (!creds) {
		if (!sigv4_canonical_query(op->params, op->nparams, query) ||
		    !add_line(lines, "Host: %s", c->host))
			return s3_error_set(err, S3_NO_MEMORY, "out of memory");
		return S3_OK;
	}
	if (!sigv4_format_time(time(NULL), amz_date))
		return s3_error_set(err, S3_INVALID_ARGUMENT, "the system clock is unusable");
	headers[n++] = (struct sigv4_header){"Host", c->host};
	headers[n++] = (struct sigv4_header){"x-amz-content-sha256", SIGV4_EMPTY_SHA256};
	headers[n++] = (struct sigv4_header){"x-amz-date", amz_date};
	if (token)
		headers[n++] = (struct sigv4_header){"x-amz-security-token", token};
	struct sigv4_request sreq = {
		.method = op->method,
		.canonical_uri = path,
		.params = op->params,
		.nparams = op->nparams,
		.headers = headers,
		.nheaders = n,
		.payload_hash = SIGV4_EMPTY_SHA256,
	};
	struct sigv4_context sctx = {
		.access_key_id = s3_credentials_access_key_id(creds),
		.secret_access_key = s3_credentials_secret_access_key(creds),
		.region = c->region,
		.service = "s3",
		.amz_date = amz_date,
	};
	status = sigv4_sign(&sreq, &sctx, &sig);
	if (status != S3_OK)
		return s3_error_set(err, status, "cannot sign the request");
	status = S3_NO_MEMORY;
	for (size_t i = 0; i < n; i++) {
		if (!add_line(lines, "%s: %s", headers[i].name, headers[i].value))
			goto out;
	}
	if (!add_line(lines, "Authorization: %s", sig.authorization) ||
	    !buf_append_str(query, sig.canonical_query))
		goto out;
	status = S3_OK;
out:
	sigv4_result_fini(&sig);
	return status == S3_OK ? S3_OK : s3_error_set(err, status, "out of memory");
}

/* Sends one attempt of op, signed with creds (NULL: unsigned), and classifies the answer. */
static enum s3_status send_once(struct s3_client *c, const struct op *op,
				const struct s3_credentials *creds, struct http_response *resp,
				struct s3_error *err)
{
	struct header_lines lines = {0};
	struct http_request req = {0};
	struct buf path, query, url;
	enum s3_status status = S3_NO_MEMORY;

	buf_init(&path);
	buf_init(&query);
	buf_init(&url);
	if (!buf_append_str(&path, c->path_root) ||
	    (op->key && (!buf_append_char(&path, '/') ||
			 !uri_encode(&path, op->key, op->key_len, true))) ||
	    (path.len == 0 && !buf_append_char(&path, '/')))
		goto nomem;
	status = sign(c, op, path.data, creds, &query, &lines, err);
	if (status != S3_OK)
		goto out;
	if (!buf_appendf(&url, "%s%s%s%s", c->base_url, path.data, query.len ? "?" : "",
			 query.len ? query.data : ""))
		goto nomem;
	if (op->get) {
		/* Resume after the bytes earlier attempts stored. */
		uint64_t first = op->get->offset + op->get->got;
		uint64_t last = op->get->offset + op->get->want - 1;

		if (!add_line(&lines, "Range: bytes=%" PRIu64 "-%" PRIu64, first, last))
			goto nomem;
		op->get->checked = false;
		op->get->resp = resp;
	}
	if (op->if_match && !add_line(&lines, "If-Match: %s", op->if_match))
		goto nomem;
	req.method = op->method;
	req.url = url.data;
	req.headers = (const char *const *)lines.line;
	req.nheaders = lines.n;
	req.sink = op->get ? get_sink : NULL;
	req.sink_ctx = op->get;
	req.max_body = op->max_body;
	status = http_perform(c->http, &req, resp, err);
	if (status != S3_OK || (resp->status >= 200 && resp->status < 300))
		goto out;
	/* An error answer: classify it by the code in its body and its HTTP status. */
	s3_error_clear(err);
	err->http_status = resp->status;
	if (resp->body.len)
		s3_error_parse_body(err, resp->body.data, resp->body.len);
	if (!err->region[0] && resp->bucket_region[0])
		snprintf(err->region, sizeof(err->region), "%s", resp->bucket_region);
	if (!err->request_id[0] && resp->request_id[0])
		snprintf(err->request_id, sizeof(err->request_id), "%s", resp->request_id);
	status = s3_status_classify(resp->status, err->code);
	err->status = status;
	goto out;
nomem:
	status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
out:
	free_lines(&lines);
	buf_fini(&path);
	buf_fini(&query);
	buf_fini(&url);
	return status;
}

static void backoff_sleep(unsigned attempt)
{
	uint64_t cap = BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);
	uint32_t ms;
	struct timespec ts;

	if (cap > BACKOFF_CAP_MS)
		cap = BACKOFF_CAP_MS;
	ms = arc4random_uniform((uint32_t)cap + 1);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static enum s3_status execute(struct s3_client *c, const struct op *op,
			      struct http_response *resp, struct s3_error *err)
{
	enum s3_status status = S3_OK;
	bool refreshed = false;
	char what[640];

	for (unsigned attempt = 1;; attempt++) {
		struct s3_credentials *creds = NULL;

		s3_error_clear(err);
		if (c->credentials) {
			creds = c->credentials->get(c->credentials->ctx, err);
			if (!creds)
				return err->status != S3_OK ? err->status : S3_NO_CREDENTIALS;
		}
		status = send_once(c, op, creds, resp, err);
		if (status == S3_EXPIRED_CREDENTIALS && creds && !refreshed &&
		    c->credentials->rejected) {
			log_debug("s3", "%s: credentials from %s were rejected (%s); refreshing",
				 op->name, s3_credentials_source(creds), err->code);
			c->credentials->rejected(c->credentials->ctx, creds);
			s3_credentials_unref(creds);
			refreshed = true;
			attempt--;
			continue;
		}
		s3_credentials_unref(creds);
		if (status == S3_OK || !s3_status_retryable(status) || attempt >= c->max_attempts)
			break;
		log_debug("s3", "%s attempt %u failed: %s; retrying", op->name, attempt,
			  s3_error_describe(err, what, sizeof(what)));
		backoff_sleep(attempt);
	}
	return status;
}

enum s3_status s3_list_objects(struct s3_client *c, const struct s3_list_params *p,
			       struct s3_listing *out, struct s3_error *err)
{
	struct sigv4_param params[6];
	size_t n = 0;
	char max_keys[16];
	struct http_response resp;
	enum s3_status status;
	struct op op = {.name = "ListObjectsV2", .method = "GET", .max_body = LIST_BODY_LIMIT};

	memset(out, 0, sizeof(*out));
	params[n++] = (struct sigv4_param){"list-type", 9, "2", 1};
	params[n++] = (struct sigv4_param){"encoding-type", 13, "url", 3};
	params[n++] = (struct sigv4_param){"prefix", 6, p->prefix ? p->prefix : "", p->prefix_len};
	if (p->delimiter)
		params[n++] = (struct sigv4_param){"delimiter", 9, p->delimiter,
						   strlen(p->delimiter)};
	if (p->continuation_token)
		params[n++] = (struct sigv4_param){"continuation-token", 18, p->continuation_token,
						   strlen(p->continuation_token)};
	if (p->max_keys) {
		snprintf(max_keys, sizeof(max_keys), "%u", p->max_keys);
		params[n++] = (struct sigv4_param){"max-keys", 8, max_keys, strlen(max_keys)};
	}
	op.params = params;
	op.nparams = n;
	http_response_init(&resp);
	status = execute(c, &op, &resp, err);
	if (status == S3_OK)
		status = s3_listing_parse(resp.body.data, resp.body.len, out, err);
	http_response_fini(&resp);
	return status;
}

static void fill_info(const struct http_response *resp, struct s3_object_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->etag, sizeof(info->etag), "%s", resp->etag);
	snprintf(info->storage_class, sizeof(info->storage_class), "%s", resp->storage_class);
	if (resp->content_length > 0)
		info->size = (uint64_t)resp->content_length;
	if (resp->last_modified[0])
		date_parse_http(resp->last_modified, &info->mtime);
}

enum s3_status s3_get_object(struct s3_client *c, const struct s3_get_params *p,
			     const struct iovec *iov, int iovcnt, size_t *got,
			     struct s3_object_info *info, struct s3_error *err)
{
	struct get_sink sink = {.params = p, .iov = iov, .iovcnt = iovcnt, .offset = p->offset};
	struct op op = {.name = "GetObject", .method = "GET", .key = p->key, .key_len = p->key_len,
			.if_match = p->if_match, .get = &sink};
	struct http_response resp;
	enum s3_status status;

	*got = 0;
	for (int i = 0; i < iovcnt; i++)
		sink.want += iov[i].iov_len;
	if (sink.want == 0)
		return s3_error_set(err, S3_INVALID_ARGUMENT, "zero-length read");
	http_response_init(&resp);
	for (unsigned short_reads = 0;; short_reads++) {
		status = execute(c, &op, &resp, err);
		if (status != S3_OK || sink.got >= sink.want ||
		    p->offset + sink.got >= sink.total)
			break;
		/* The response ended before the bytes its Content-Range promised. */
		if (short_reads + 1 >= c->max_attempts) {
			status = s3_error_set(err, S3_NETWORK,
					      "GET body ended after %zu of %zu bytes", sink.got,
					      sink.expected);
			break;
		}
	}
	*got = sink.got;
	if (status == S3_OK && info) {
		fill_info(&resp, info);
		info->size = sink.total;
	}
	http_response_fini(&resp);
	return status;
}

enum s3_status s3_head_object(struct s3_client *c, const char *key, size_t key_len,
			      struct s3_object_info *info, struct s3_error *err)
{
	struct op op = {.name = "HeadObject", .method = "HEAD", .key = key, .key_len = key_len};
	struct http_response resp;
	enum s3_status status;

	http_response_init(&resp);
	status = execute(c, &op, &resp, err);
	if (status == S3_OK)
		fill_info(&resp, info);
	http_response_fini(&resp);
	return status;
}
