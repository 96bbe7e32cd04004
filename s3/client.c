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
#include <pthread.h>
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
#include "endpoint.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "sigv4.h"
#include "uri.h"

#define LIST_BODY_LIMIT (16u * 1024 * 1024)
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 20000

struct s3_client {
	struct http_transport *http;
	const struct s3_credentials_provider *credentials; /* borrowed, may be NULL */
	char *bucket;
	char *endpoint_url; /* as configured, NULL for AWS's */
	bool force_path_style;
	unsigned max_attempts;
	int64_t max_retry_ms;
	pthread_mutex_t lock;
	struct s3_endpoint *ep; /* protected by lock; replaced when the region changes */
};

/* One logical request; execute() may send it several times. */
struct op {
	const char *name; /* "ListObjectsV2", for logs */
	enum s3_metrics_op metric;
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

static enum s3_status check_names(const struct s3_client_config *cfg, struct s3_error *err)
{
	if (!cfg->bucket || !s3_bucket_name_valid(cfg->bucket))
		return s3_error_set(err, S3_INVALID_ARGUMENT,
				    "bucket name '%s' is not valid: use 3 to 255 letters, digits, "
				    "'.', '-' or '_'",
				    cfg->bucket ? cfg->bucket : "");
	if (!cfg->region || !s3_region_valid(cfg->region))
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

	if (check_names(cfg, err) != S3_OK)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	pthread_mutex_init(&c->lock, NULL);
	c->bucket = strdup(cfg->bucket);
	c->endpoint_url = cfg->endpoint_url ? strdup(cfg->endpoint_url) : NULL;
	if (!c->bucket || (cfg->endpoint_url && !c->endpoint_url))
		goto nomem;
	c->force_path_style = cfg->force_path_style;
	c->credentials = cfg->credentials;
	c->max_attempts = cfg->max_attempts ? cfg->max_attempts : S3_DEFAULT_MAX_ATTEMPTS;
	c->max_retry_ms = cfg->max_retry_ms ? cfg->max_retry_ms : S3_DEFAULT_MAX_RETRY_MS;
	if (s3_endpoint_create(c->bucket, cfg->region, c->endpoint_url, c->force_path_style,
			       &c->ep, err) != S3_OK)
		goto fail;
	/* A CA bundle matters only for https; then an unreadable one is a configuration error
	 * worth reporting before the first request fails with a TLS error. */
	if (c->ep->https && cfg->ca_bundle && *cfg->ca_bundle &&
	    access(cfg->ca_bundle, R_OK) != 0) {
		s3_error_set(err, S3_INVALID_ARGUMENT,
			     "cannot read the CA bundle %s (from AWS_CA_BUNDLE): %s", cfg->ca_bundle,
			     strerror(errno));
		goto fail;
	}
	http.ca_bundle = c->ep->https ? cfg->ca_bundle : NULL;
	http.max_connections = cfg->max_connections;
	http.low_speed_time_s = cfg->stall_timeout_s;
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
	s3_endpoint_unref(c->ep);
	pthread_mutex_destroy(&c->lock);
	free(c->bucket);
	free(c->endpoint_url);
	free(c);
}

const char *s3_client_endpoint(const struct s3_client *c)
{
	return c->ep->describe;
}

const char *s3_client_region(const struct s3_client *c)
{
	return c->ep->region;
}

static struct s3_endpoint *current_endpoint(struct s3_client *c)
{
	struct s3_endpoint *ep;

	pthread_mutex_lock(&c->lock);
	ep = s3_endpoint_ref(c->ep);
	pthread_mutex_unlock(&c->lock);
	return ep;
}

/* S3 says the bucket is in `region`: sign for it (and, with AWS's own endpoint, send there)
 * from now on. Returns true when requests should be sent again with the new endpoint. */
static bool switch_region(struct s3_client *c, const struct s3_endpoint *from,
			  const char *region)
{
	struct s3_endpoint *ep = NULL;
	struct s3_error err;
	bool switched;

	if (!s3_region_valid(region) || strcmp(region, from->region) == 0)
		return false;
	if (s3_endpoint_create(c->bucket, region, c->endpoint_url, c->force_path_style, &ep,
			       &err) != S3_OK)
		return false;
	pthread_mutex_lock(&c->lock);
	if (c->ep == from) {
		s3_endpoint_unref(c->ep);
		c->ep = ep;
		ep = NULL;
		LOG_EVENT(LOG_LEVEL_INFO, "s3", "the bucket is in another region: using it",
			  {"bucket", c->bucket}, {"region", region}, {"configured", from->region});
	}
	/* Either we switched, or another request already did. */
	switched = strcmp(c->ep->region, from->region) != 0;
	pthread_mutex_unlock(&c->lock);
	s3_endpoint_unref(ep);
	return switched;
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
static enum s3_status sign(const struct s3_endpoint *ep, const struct op *op, const char *path,
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
		    !add_line(lines, "Host: %s", ep->host))
			return s3_error_set(err, S3_NO_MEMORY, "out of memory");
		return S3_OK;
	}
	if (!sigv4_format_time(time(NULL), amz_date))
		return s3_error_set(err, S3_INVALID_ARGUMENT, "the system clock is unusable");
	headers[n++] = (struct sigv4_header){"Host", ep->host};
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
		.region = ep->region,
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

/* Counts one exchange with S3 in the metrics. */
static void record(const struct op *op, enum s3_status status, long http_status,
		   uint64_t started)
{
	enum s3_metrics_class class = S3_METRICS_NO_RESPONSE;

	if (status == S3_OK && http_status >= 200 && http_status < 600)
		class = (enum s3_metrics_class)(http_status / 100 - 2);
	metrics_add(&s3_metrics.requests[op->metric][class], 1);
	metrics_observe(&s3_metrics.latency[op->metric], metrics_now_ns() - started);
	if (status == S3_OK && (http_status == 503 || http_status == 429))
		metrics_add(&s3_metrics.throttled, 1);
}

static enum s3_metrics_retry retry_reason(enum s3_status status)
{
	switch (status) {
	case S3_THROTTLED:
		return S3_METRICS_RETRY_THROTTLED;
	case S3_TIMEOUT:
		return S3_METRICS_RETRY_TIMEOUT;
	case S3_NETWORK:
		return S3_METRICS_RETRY_NETWORK;
	default:
		return S3_METRICS_RETRY_SERVER_ERROR;
	}
}

/* Sends one attempt of op, signed with creds (NULL: unsigned), and classifies the answer. */
static enum s3_status send_once(struct s3_client *c, const struct s3_endpoint *ep,
				const struct op *op, const struct s3_credentials *creds,
				struct http_response *resp, struct s3_error *err)
{
	struct header_lines lines = {0};
	struct http_request req = {0};
	struct buf path, query, url;
	enum s3_status status = S3_NO_MEMORY;
	uint64_t started;

	buf_init(&path);
	buf_init(&query);
	buf_init(&url);
	if (!buf_append_str(&path, ep->path_root) ||
	    (op->key && (!buf_append_char(&path, '/') ||
			 !uri_encode(&path, op->key, op->key_len, true))) ||
	    (path.len == 0 && !buf_append_char(&path, '/')))
		goto nomem;
	status = sign(ep, op, path.data, creds, &query, &lines, err);
	if (status != S3_OK)
		goto out;
	if (!buf_appendf(&url, "%s%s%s%s", ep->base_url, path.data, query.len ? "?" : "",
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
	started = metrics_now_ns();
	status = http_perform(c->http, &req, resp, err);
	record(op, status, resp->status, started);
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

/* Full jitter: a random delay up to an exponentially growing cap. */
static int64_t backoff_ms(unsigned attempt)
{
	uint64_t cap = (uint64_t)BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);

	if (cap > BACKOFF_CAP_MS)
		cap = BACKOFF_CAP_MS;
	return (int64_t)arc4random_uniform((uint32_t)cap + 1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum s3_status execute(struct s3_client *c, const struct op *op,
			      struct http_response *resp, struct s3_error *err)
{
	enum s3_status status = S3_OK;
	bool refreshed = false, moved = false;
	int64_t start = now_ms();
	unsigned attempt = 0;
	char what[640];

	for (;;) {
		struct s3_credentials *creds = NULL;
		struct s3_endpoint *ep = current_endpoint(c);
		bool again = false;
		int64_t delay;

		s3_error_clear(err);
		if (c->credentials) {
			creds = c->credentials->get(c->credentials->ctx, err);
			if (!creds) {
				s3_endpoint_unref(ep);
				return err->status != S3_OK ? err->status : S3_NO_CREDENTIALS;
			}
		}
		status = send_once(c, ep, op, creds, resp, err);
		/* A region change and new credentials are not attempts: each may happen once per
		 * request, and then the request is sent again at once. */
		if (status == S3_WRONG_REGION && !moved && err->region[0] &&
		    switch_region(c, ep, err->region)) {
			moved = again = true;
			metrics_add(&s3_metrics.retries[S3_METRICS_RETRY_REGION], 1);
		} else if (status == S3_EXPIRED_CREDENTIALS && creds && !refreshed &&
			   c->credentials->rejected) {
			metrics_add(&s3_metrics.retries[S3_METRICS_RETRY_CREDENTIALS], 1);
			log_debug("s3", "%s: credentials from %s were rejected (%s); refreshing",
				  op->name, s3_credentials_source(creds), err->code);
			c->credentials->rejected(c->credentials->ctx, creds);
			refreshed = again = true;
		}
		s3_credentials_unref(creds);
		s3_endpoint_unref(ep);
		if (again)
			continue;
		attempt++;
		if (status == S3_OK || !s3_status_retryable(status))
			break;
		delay = backoff_ms(attempt);
		if (attempt >= c->max_attempts || now_ms() - start + delay > c->max_retry_ms) {
			metrics_add(&s3_metrics.gave_up, 1);
			log_debug("s3", "%s: giving up after %u attempts in %lld ms: %s", op->name,
				  attempt, (long long)(now_ms() - start),
				  s3_error_describe(err, what, sizeof(what)));
			break;
		}
		log_debug("s3", "%s attempt %u failed: %s; retrying in %lld ms", op->name, attempt,
			  s3_error_describe(err, what, sizeof(what)), (long long)delay);
		metrics_add(&s3_metrics.retries[retry_reason(status)], 1);
		if (!http_sleep_ms(delay))
			return s3_error_set(err, S3_CANCELLED, "cancelled: shutting down");
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
	struct op op = {.name = "ListObjectsV2", .metric = S3_METRICS_LIST, .method = "GET",
			.max_body = LIST_BODY_LIMIT};

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
	struct op op = {.name = "GetObject", .metric = S3_METRICS_GET, .method = "GET",
			.key = p->key, .key_len = p->key_len, .if_match = p->if_match, .get = &sink};
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
	metrics_add(&s3_metrics.bytes_received, sink.got);
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
	struct op op = {.name = "HeadObject", .metric = S3_METRICS_HEAD, .method = "HEAD",
			.key = key, .key_len = key_len};
	struct http_response resp;
	enum s3_status status;

	http_response_init(&resp);
	status = execute(c, &op, &resp, err);
	if (status == S3_OK)
		fill_info(&resp, info);
	http_response_fini(&resp);
	return status;
}
