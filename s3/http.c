/*
 * HTTP transport on libcurl. See http.h for the contract.
 *
 * Pool: `idle` holds handles not in use; `created` counts all handles. A request takes an idle
 * handle, or creates one while created < max, or waits on `available`. Both fields are
 * protected by `lock`, which is never held during a transfer.
 *
 * Shared caches: one CURLSH shares DNS and TLS sessions among the handles; curl calls
 * share_lock/share_unlock around its accesses, one mutex per kind of shared data.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "log.h"

#define ERROR_BODY_LIMIT (64u * 1024)
#define CANCEL_POLL_MS 50

/* Set once, when the process shuts down; read by every transfer. */
static atomic_bool cancelled;
#define DEFAULT_BODY_LIMIT (1024u * 1024)

struct http_transport {
	pthread_mutex_t lock;
	pthread_cond_t available;
	CURL **idle;      /* protected by lock */
	unsigned nidle;   /* protected by lock */
	unsigned created; /* protected by lock */
	unsigned max;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	char *ca_bundle;
	char *user_agent;
	long connect_timeout_ms;
	long low_speed_time_s; /* the stall timeout */
};

/* What one transfer collects as it runs. */
struct transfer {
	struct http_transport *t;
	CURL *curl;
	const struct http_request *req;
	struct http_response *resp;
	struct s3_error *err;
	enum s3_status sink_status; /* S3_OK unless the sink or a limit stopped the transfer */
	bool body_overflow;
	bool stalled;              /* cut by on_progress: no byte for stall_ms */
	curl_off_t last_bytes;     /* bytes moved when on_progress last saw them change */
	struct timespec last_move; /* CLOCK_MONOTONIC */
};

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *user)
{
	struct http_transport *t = user;

	(void)handle;
	(void)access;
	pthread_mutex_lock(&t->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *user)
{
	struct http_transport *t = user;

	(void)handle;
	pthread_mutex_unlock(&t->share_locks[data]);
}

struct http_transport *http_transport_create(const struct http_config *config,
					     struct s3_error *err)
{
	struct http_transport *t = NULL;

	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->available, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&t->share_locks[i], NULL);
	t->max = config->max_connections ? config->max_connections : 16;
	t->idle = calloc(t->max, sizeof(*t->idle));
	t->user_agent = strdup(config->user_agent ? config->user_agent : "irsafs");
	if (!t->idle || !t->user_agent)
		goto nomem;
	if (config->ca_bundle && *config->ca_bundle) {
		t->ca_bundle = strdup(config->ca_bundle);
		if (!t->ca_bundle)
			goto nomem;
	}
	t->connect_timeout_ms = config->connect_timeout_ms ? config->connect_timeout_ms : 5000;
	t->low_speed_time_s = config->low_speed_time_s ? config->low_speed_time_s : 10;
	t->share = curl_share_init();
	if (!t->share)
		goto nomem;
	curl_share_setopt(t->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(t->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(t->share, CURLSHOPT_USERDATA, t);
	curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return t;
nomem:
	s3_error_set(err, S3_NO_MEMORY, "out of memory creating the HTTP transport");
	http_transport_destroy(t);
	return NULL;
}

void http_transport_destroy(struct http_transport *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->nidle; i++)
		curl_easy_cleanup(t->idle[i]);
	if (t->share)
		curl_share_cleanup(t->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&t->share_locks[i]);
	pthread_cond_destroy(&t->available);
	pthread_mutex_destroy(&t->lock);
	free(t->idle);
	free(t->ca_bundle);
	free(t->user_agent);
	free(t);
}

static CURL *acquire(struct http_transport *t)
{
	CURL *curl = NULL;
	bool create = false;

	pthread_mutex_lock(&t->lock);
	while (t->nidle == 0 && t->created >= t->max)
		pthread_cond_wait(&t->available, &t->lock);
	if (t->nidle > 0) {
		curl = t->idle[--t->nidle];
	} else {
		t->created++;
		create = true;
	}
	pthread_mutex_unlock(&t->lock);
	if (create) {
		curl = curl_easy_init();
		if (!curl) {
			pthread_mutex_lock(&t->lock);
			t->created--;
			pthread_cond_signal(&t->available);
			pthread_mutex_unlock(&t->lock);
		}
	}
	return curl;
}

static void release(struct http_transport *t, CURL *curl)
{
	pthread_mutex_lock(&t->lock);
	t->idle[t->nidle++] = curl;
	pthread_cond_signal(&t->available);
	pthread_mutex_unlock(&t->lock);
}

void http_response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body);
	resp->content_length = -1;
}

void http_response_fini(struct http_response *resp)
{
	buf_fini(&resp->body);
	http_response_init(resp);
}

static void response_reset(struct http_response *resp)
{
	struct buf body = resp->body;

	buf_reset(&body);
	memset(resp, 0, sizeof(*resp));
	resp->body = body;
	resp->content_length = -1;
}

/* Copies a header value, trimmed of surrounding white space, into dst. */
static void copy_value(char *dst, size_t size, const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

/* Response headers kept, and where. */
static const struct {
	const char *name;
	size_t offset;
	size_t size;
} kept_headers[] = {
	{"etag", offsetof(struct http_response, etag), sizeof(((struct http_response *)0)->etag)},
	{"content-range", offsetof(struct http_response, content_range),
	 sizeof(((struct http_response *)0)->content_range)},
	{"last-modified", offsetof(struct http_response, last_modified),
	 sizeof(((struct http_response *)0)->last_modified)},
	{"x-amz-bucket-region", offsetof(struct http_response, bucket_region),
	 sizeof(((struct http_response *)0)->bucket_region)},
	{"x-amz-storage-class", offsetof(struct http_response, storage_class),
	 sizeof(((struct http_response *)0)->storage_class)},
	{"x-amz-request-id", offsetof(struct http_response, request_id),
	 sizeof(((struct http_response *)0)->request_id)},
};

void http_response_parse_header(struct http_response *resp, const char *data, size_t len)
{
	const char *colon = memchr(data, ':', len);
	size_t name_len;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the previous headers. */
		response_reset(resp);
		return;
	}
	if (!colon)
		return;
	name_len = (size_t)(colon - data);
	for (size_t i = 0; i < sizeof(kept_headers) / sizeof(kept_headers[0]); i++) {
		if (strlen(kept_headers[i].name) == name_len &&
		    strncasecmp(data, kept_headers[i].name, name_len) == 0) {
			copy_value((char *)resp + kept_headers[i].offset, kept_headers[i].size,
				   colon + 1, len - name_len - 1);
			return;
		}
	}
	if (name_len == 14 && strncasecmp(data, "content-length", 14) == 0) {
		char num[32], *end;
		long long v;

		copy_value(num, sizeof(num), colon + 1, len - name_len - 1);
		errno = 0;
		v = strtoll(num, &end, 10);
		resp->content_length = errno || end == num || *end || v < 0 ? -1 : v;
	}
}

bool http_parse_content_range(const char *s, uint64_t *first, uint64_t *last, uint64_t *total)
{
	char *end;

	if (strncmp(s, "bytes ", 6) != 0)
		return false;
	s += 6;
	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*first = strtoull(s, &end, 10);
	if (*end != '-' || !isdigit((unsigned char)end[1]))
		return false;
	s = end + 1;
	*last = strtoull(s, &end, 10);
	if (*end != '/' || !isdigit((unsigned char)end[1]))
		return false;
	s = end + 1;
	*total = strtoull(s, &end, 10);
	return *end == '\0' && errno == 0 && *first <= *last && *last < *total;
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
	struct transfer *tr = user;

	http_response_parse_header(tr->resp, data, size * n);
	return size * n;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct transfer *tr = user;
	size_t len = size * n;
	long code = 0;
	size_t limit;

	curl_easy_getinfo(tr->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300 && tr->req->sink) {
		tr->sink_status = tr->req->sink(tr->req->sink_ctx, data, len, tr->err);
		return tr->sink_status == S3_OK ? len : 0;
	}
	if (code >= 200 && code < 300)
		limit = tr->req->max_body ? tr->req->max_body : DEFAULT_BODY_LIMIT;
	else
		limit = ERROR_BODY_LIMIT;
	if (tr->resp->body.len + len > limit) {
		/* Keep what fits of an error body (enough to read its code); refuse an oversized
		 * success body outright. */
		if (code >= 200 && code < 300) {
			tr->body_overflow = true;
			return 0;
		}
		len = limit - tr->resp->body.len;
		buf_append(&tr->resp->body, data, len);
		return size * n;
	}
	if (!buf_append(&tr->resp->body, data, len)) {
		tr->sink_status = S3_NO_MEMORY;
		return 0;
	}
	return len;
}

/* Logs curl's trace with credentials blanked. Only headers and connection info; never bodies. */
static int on_debug(CURL *curl, curl_infotype type, char *data, size_t size, void *user)
{
	static const char *const secret_headers[] = {"authorization:", "x-amz-security-token:",
						      "x-aws-ec2-metadata-token:"};
	const char *what;

	(void)curl;
	(void)user;
	switch (type) {
	case CURLINFO_TEXT:
		what = "*";
		break;
	case CURLINFO_HEADER_IN:
		what = "<";
		break;
	case CURLINFO_HEADER_OUT:
		what = ">";
		break;
	default:
		return 0;
	}
	for (size_t i = 0; i < size;) {
		size_t j = i, shown;
		bool secret = false;

		while (j < size && data[j] != '\n')
			j++;
		shown = j - i;
		while (shown && (data[i + shown - 1] == '\r'))
			shown--;
		for (size_t k = 0; k < sizeof(secret_headers) / sizeof(secret_headers[0]); k++) {
			size_t hl = strlen(secret_headers[k]);

			if (shown >= hl && strncasecmp(data + i, secret_headers[k], hl) == 0) {
				secret = true;
				shown = hl;
			}
		}
		if (shown)
			log_trace("http", "%s %.*s%s", what, (int)shown, data + i,
				  secret ? " [redacted]" : "");
		i = j + 1;
	}
	return 0;
}

void http_cancel_all(void)
{
	atomic_store(&cancelled, true);
}

bool http_cancelled(void)
{
	return atomic_load_explicit(&cancelled, memory_order_relaxed);
}

bool http_sleep_ms(int64_t ms)
{
	while (ms > 0 && !http_cancelled()) {
		int64_t slice = ms < CANCEL_POLL_MS ? ms : CANCEL_POLL_MS;
		struct timespec ts = {0, (long)slice * 1000000L};

		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return !http_cancelled();
}

/* curl calls this often (at least once a second) while a transfer runs; a non-zero answer
 * aborts it. Two reasons to: shutting down, or a stall: no byte moved either way for the
 * stall timeout (curl's own low-speed check averages over seconds and trips late). */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct transfer *tr = user;
	struct timespec now;
	int64_t idle_ms;

	(void)dltotal, (void)ultotal;
	if (http_cancelled())
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (dlnow + ulnow != tr->last_bytes) {
		tr->last_bytes = dlnow + ulnow;
		tr->last_move = now;
		return 0;
	}
	idle_ms = (now.tv_sec - tr->last_move.tv_sec) * 1000 +
		  (now.tv_nsec - tr->last_move.tv_nsec) / 1000000;
	if (idle_ms < tr->t->low_speed_time_s * 1000)
		return 0;
	tr->stalled = true;
	return 1;
}

static enum s3_status status_from_curl(CURLcode rc, const char *detail, struct s3_error *err)
{
	const char *text = detail && *detail ? detail : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return s3_error_set(err, S3_TIMEOUT, "timed out: %s", text);
	case CURLE_ABORTED_BY_CALLBACK:
		return s3_error_set(err, S3_CANCELLED, "cancelled: shutting down");
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		/* Asking again will not make the certificate any better. */
		return s3_error_set(err, S3_TLS, "TLS certificate verification failed: %s", text);
	case CURLE_OUT_OF_MEMORY:
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return s3_error_set(err, S3_INVALID_ARGUMENT, "bad URL: %s", text);
	case CURLE_PARTIAL_FILE:
		return s3_error_set(err, S3_NETWORK, "response body ended early: %s", text);
	case CURLE_SSL_CONNECT_ERROR:
		return s3_error_set(err, S3_NETWORK, "TLS failed: %s", text);
	default:
		return s3_error_set(err, S3_NETWORK, "%s", text);
	}
}

static void configure(struct http_transport *t, struct transfer *tr, struct curl_slist *headers,
		      char *errbuf)
{
	CURL *c = tr->curl;
	const struct http_request *req = tr->req;

	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SHARE, t->share);
	curl_easy_setopt(c, CURLOPT_USERAGENT, t->user_agent);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
	if (req->timeout_ms)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (t->ca_bundle)
		curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_bundle);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, tr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, tr);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, tr);
	if (log_enabled(LOG_LEVEL_TRACE)) {
		curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
	}
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	}
}

enum s3_status http_perform(struct http_transport *t, const struct http_request *req,
			    struct http_response *resp, struct s3_error *err)
{
	struct curl_slist *headers = NULL, *next;
	struct transfer tr = {.t = t, .req = req, .resp = resp, .err = err, .sink_status = S3_OK};
	char errbuf[CURL_ERROR_SIZE] = "";
	enum s3_status status = S3_OK;
	CURLcode rc;

	response_reset(resp);
	if (http_cancelled())
		return s3_error_set(err, S3_CANCELLED, "cancelled: shutting down");
	for (size_t i = 0; i < req->nheaders; i++) {
		next = curl_slist_append(headers, req->headers[i]);
		if (!next) {
			status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
			goto out;
		}
		headers = next;
	}
	/* Never wait for "100 Continue": it costs a round trip on every POST. */
	next = curl_slist_append(headers, "Expect:");
	if (!next) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	headers = next;
	tr.curl = acquire(t);
	clock_gettime(CLOCK_MONOTONIC, &tr.last_move);
	if (!tr.curl) {
		status = s3_error_set(err, S3_NO_MEMORY, "cannot create a curl handle");
		goto out;
	}
	configure(t, &tr, headers, errbuf);
	rc = curl_easy_perform(tr.curl);
	curl_easy_getinfo(tr.curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (tr.sink_status != S3_OK) {
		status = tr.sink_status;
		if (!err || !err->message[0])
			s3_error_set(err, status, "response body rejected");
	} else if (tr.body_overflow) {
		status = s3_error_set(err, S3_PROTOCOL, "response body larger than %zu bytes",
				      req->max_body ? req->max_body : DEFAULT_BODY_LIMIT);
	} else if (tr.stalled) {
		status = s3_error_set(err, S3_TIMEOUT, "stalled: no byte for %ld s",
				      t->low_speed_time_s);
	} else if (rc != CURLE_OK) {
		status = status_from_curl(rc, errbuf, err);
	}
	if (err)
		err->http_status = resp->status;
	/* curl_easy_reset keeps the connection, DNS and session caches; it drops our options so
	 * pointers into this request's memory do not outlive it. curl itself closes a connection
	 * whose transfer was aborted, so the handle is always fit for reuse. */
	curl_easy_reset(tr.curl);
	release(t, tr.curl);
out:
	curl_slist_free_all(headers);
	return status;
}
