/*
 * AWS Signature Version 4. See sigv4.h for the contract.
 *
 * The steps, as AWS documents them:
 *   canonical request = method \n canonical URI \n canonical query \n canonical headers \n
 *                       signed headers \n payload hash
 *   string to sign    = algorithm \n amz date \n scope \n hex(sha256(canonical request))
 *   signing key       = HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request"
 *   signature         = hex(HMAC(signing key, string to sign))
 */
#include "sigv4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "uri.h"

struct canon_header {
	char *name; /* lower-cased copy */
	const char *value;
	size_t index; /* position in the request, to keep repeated headers in order */
};

struct canon_param {
	char *name; /* encoded */
	char *value;
};

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

bool sigv4_format_time(time_t t, char out[17])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		return false;
	return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16;
}

static bool valid_amz_date(const char *d)
{
	if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++) {
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return false;
	}
	return true;
}

bool sigv4_canonical_path(struct buf *out, const char *path, size_t len, bool normalize)
{
	struct buf norm;
	bool ok = false;
	/* Segment start offsets in norm, for ".." to pop back to. */
	size_t *starts = NULL, depth = 0;

	if (len == 0)
		return buf_append_char(out, '/');
	if (!normalize)
		return uri_encode(out, path, len, true);

	buf_init(&norm);
	starts = calloc(len + 1, sizeof(*starts));
	if (!starts)
		goto out;
	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && path[j] != '/')
			j++;
		if (j - i == 0 || (j - i == 1 && path[i] == '.')) {
			/* empty or "." segment: drop */
		} else if (j - i == 2 && path[i] == '.' && path[i + 1] == '.') {
			if (depth > 0)
				norm.len = starts[--depth];
		} else {
			starts[depth++] = norm.len;
			if (!buf_append_char(&norm, '/') || !buf_append(&norm, path + i, j - i))
				goto out;
		}
		i = j + 1;
	}
	if (norm.len == 0 || path[len - 1] == '/' ||
	    (len >= 2 && path[len - 1] == '.' && path[len - 2] == '/') ||
	    (len >= 3 && path[len - 1] == '.' && path[len - 2] == '.' && path[len - 3] == '/')) {
		if (norm.len == 0 || norm.data[norm.len - 1] != '/') {
			if (!buf_append_char(&norm, '/'))
				goto out;
		}
	}
	ok = uri_encode(out, norm.data, norm.len, true);
out:
	free(starts);
	buf_fini(&norm);
	return ok;
}

static int compare_headers(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int compare_params(const void *a, const void *b)
{
	const struct canon_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* Appends value trimmed, with each run of white space (folded lines included) as one space. */
static bool append_trimmed(struct buf *out, const char *value)
{
	bool pending_space = false, started = false;

	for (const char *p = value; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			pending_space = started;
			continue;
		}
		if (pending_space && !buf_append_char(out, ' '))
			return false;
		if (!buf_append_char(out, *p))
			return false;
		pending_space = false;
		started = true;
	}
	return true;
}

/* Canonical headers (each "name:value\n") into canon, the ';'-joined names into names. */
static bool canonical_headers(const struct sigv4_header *headers, size_t n, struct buf *canon,
			      struct buf *names)
{
	struct canon_header *sorted = NULL;
	size_t made = 0;
	bool ok = false;

	sorted = calloc(n ? n : 1, sizeof(*sorted));
	if (!sorted)
		goto out;
	for (made = 0; made < n; made++) {
		char *lower = strdup(headers[made].name);

		if (!lower)
			goto out;
		for (char *p = lower; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		sorted[made] = (struct canon_header){lower, headers[made].value, made};
	}
	qsort(sorted, n, sizeof(*sorted), compare_headers);
	for (size_t i = 0; i < n; i++) {
		bool first = i == 0 || strcmp(sorted[i - 1].name, sorted[i].name) != 0;
		bool last = i + 1 == n || strcmp(sorted[i + 1].name, sorted[i].name) != 0;

		if (first) {
			if ((names->len && !buf_append_char(names, ';')) ||
			    !buf_append_str(names, sorted[i].name) ||
			    !buf_append_str(canon, sorted[i].name) || !buf_append_char(canon, ':'))
				goto out;
		} else if (!buf_append_char(canon, ',')) {
			goto out;
		}
		if (!append_trimmed(canon, sorted[i].value))
			goto out;
		if (last && !buf_append_char(canon, '\n'))
			goto out;
	}
	ok = true;
out:
	for (size_t i = 0; i < made; i++)
		free(sorted[i].name);
	free(sorted);
	return ok;
}

static char *encode_copy(const char *s, size_t len)
{
	struct buf b;

	buf_init(&b);
	if (!uri_encode(&b, s, len, false) || !buf_append(&b, "", 0)) {
		buf_fini(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* The canonical query string of params plus extra (presigning), sorted. */
static bool canonical_query(const struct sigv4_param *params, size_t n,
			    const struct sigv4_param *extra, size_t nextra, struct buf *out)
{
	size_t total = n + nextra, made = 0;
	struct canon_param *sorted = NULL;
	bool ok = false;

	sorted = calloc(total ? total : 1, sizeof(*sorted));
	if (!sorted)
		goto out;
	for (made = 0; made < total; made++) {
		const struct sigv4_param *p = made < n ? &params[made] : &extra[made - n];

		sorted[made].name = encode_copy(p->name, p->name_len);
		sorted[made].value = encode_copy(p->value, p->value_len);
		if (!sorted[made].name || !sorted[made].value) {
			made++;
			goto out;
		}
	}
	qsort(sorted, total, sizeof(*sorted), compare_params);
	for (size_t i = 0; i < total; i++) {
		if ((i && !buf_append_char(out, '&')) || !buf_append_str(out, sorted[i].name) ||
		    !buf_append_char(out, '=') || !buf_append_str(out, sorted[i].value))
			goto out;
	}
	ok = true;
out:
	for (size_t i = 0; i < made; i++) {
		free(sorted[i].name);
		free(sorted[i].value);
	}
	free(sorted);
	return ok;
}

static void hmac_sha256(const void *key, size_t keylen, const char *data, size_t len,
			unsigned char out[32])
{
	unsigned int outlen = 32;

	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, len, out, &outlen);
}

/* signature = hex(HMAC(signing key, sts)); every derived key is wiped before returning. */
static bool compute_signature(const struct sigv4_context *ctx, const char *sts, char sig[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char k[32], mac[32];
	char *secret;
	size_t slen = strlen(ctx->secret_access_key) + 5;

	secret = malloc(slen);
	if (!secret)
		return false;
	memcpy(secret, "AWS4", 4);
	memcpy(secret + 4, ctx->secret_access_key, slen - 4);
	hmac_sha256(secret, slen - 1, ctx->amz_date, 8, k);
	OPENSSL_cleanse(secret, slen);
	free(secret);
	hmac_sha256(k, 32, ctx->region, strlen(ctx->region), k);
	hmac_sha256(k, 32, ctx->service, strlen(ctx->service), k);
	hmac_sha256(k, 32, "aws4_request", 12, k);
	hmac_sha256(k, 32, sts, strlen(sts), mac);
	OPENSSL_cleanse(k, sizeof(k));
	for (int i = 0; i < 32; i++) {
		sig[2 * i] = hex[mac[i] >> 4];
		sig[2 * i + 1] = hex[mac[i] & 15];
	}
	sig[64] = '\0';
	return true;
}

bool sigv4_canonical_query(const struct sigv4_param *params, size_t n, struct buf *out)
{
	return canonical_query(params, n, NULL, 0, out);
}

void sigv4_result_fini(struct sigv4_result *res)
{
	free(res->canonical_request);
	free(res->string_to_sign);
	free(res->signed_headers);
	free(res->canonical_query);
	free(res->authorization);
	memset(res, 0, sizeof(*res));
}

static enum s3_status sign(const struct sigv4_request *req, const struct sigv4_context *ctx,
			   bool presign, struct sigv4_result *out)
{
	struct buf creq, sts, headers, names, query, scope, credential, auth;
	struct sigv4_param extra[6];
	size_t nextra = 0;
	char hash[65], expires[24];
	enum s3_status status = S3_NO_MEMORY;

	memset(out, 0, sizeof(*out));
	buf_init(&creq);
	buf_init(&sts);
	buf_init(&headers);
	buf_init(&names);
	buf_init(&query);
	buf_init(&scope);
	buf_init(&credential);
	buf_init(&auth);
	if (!valid_amz_date(ctx->amz_date) || !ctx->access_key_id || !ctx->secret_access_key ||
	    !ctx->region || !ctx->service || !req->method || !req->canonical_uri ||
	    !req->payload_hash) {
		status = S3_INVALID_ARGUMENT;
		goto out;
	}
	if (!buf_appendf(&scope, "%.8s/%s/%s/aws4_request", ctx->amz_date, ctx->region,
			 ctx->service))
		goto out;
	if (!canonical_headers(req->headers, req->nheaders, &headers, &names))
		goto out;
	if (presign) {
		if (!buf_appendf(&credential, "%s/%s", ctx->access_key_id, scope.data))
			goto out;
		snprintf(expires, sizeof(expires), "%ld", ctx->expires);
		extra[nextra++] = (struct sigv4_param){"X-Amz-Algorithm", 15, SIGV4_ALGORITHM,
						       strlen(SIGV4_ALGORITHM)};
		extra[nextra++] =
			(struct sigv4_param){"X-Amz-Credential", 16, credential.data, credential.len};
		extra[nextra++] = (struct sigv4_param){"X-Amz-Date", 10, ctx->amz_date, 16};
		extra[nextra++] = (struct sigv4_param){"X-Amz-Expires", 13, expires, strlen(expires)};
		if (ctx->session_token)
			extra[nextra++] = (struct sigv4_param){"X-Amz-Security-Token", 20,
							       ctx->session_token,
							       strlen(ctx->session_token)};
		extra[nextra++] =
			(struct sigv4_param){"X-Amz-SignedHeaders", 19, names.data, names.len};
	}
	if (!canonical_query(req->params, req->nparams, extra, nextra, &query))
		goto out;
	if (!buf_appendf(&creq, "%s\n%s\n%s\n%s\n%s\n%s", req->method, req->canonical_uri,
			 query.data ? query.data : "", headers.data ? headers.data : "",
			 names.data ? names.data : "", req->payload_hash))
		goto out;
	sigv4_sha256_hex(creq.data, creq.len, hash);
	if (!buf_appendf(&sts, "%s\n%s\n%s\n%s", SIGV4_ALGORITHM, ctx->amz_date, scope.data, hash))
		goto out;
	if (!compute_signature(ctx, sts.data, out->signature))
		goto out;
	if (presign) {
		if (!buf_appendf(&query, "%sX-Amz-Signature=%s", query.len ? "&" : "",
				 out->signature))
			goto out;
	} else if (!buf_appendf(&auth, "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
				SIGV4_ALGORITHM, ctx->access_key_id, scope.data,
				names.data ? names.data : "", out->signature)) {
		goto out;
	}
	out->canonical_request = buf_steal(&creq);
	out->string_to_sign = buf_steal(&sts);
	out->signed_headers = buf_steal(&names);
	out->canonical_query = buf_steal(&query);
	out->authorization = presign ? NULL : buf_steal(&auth);
	if (!out->canonical_request || !out->string_to_sign || !out->signed_headers ||
	    !out->canonical_query || (!presign && !out->authorization)) {
		sigv4_result_fini(out);
		goto out;
	}
	status = S3_OK;
out:
	buf_fini(&creq);
	buf_fini(&sts);
	buf_fini(&headers);
	buf_fini(&names);
	buf_fini(&query);
	buf_fini(&scope);
	buf_fini(&credential);
	buf_fini(&auth);
	return status;
}

enum s3_status sigv4_sign(const struct sigv4_request *req, const struct sigv4_context *ctx,
			  struct sigv4_result *out)
{
	return sign(req, ctx, false, out);
}

enum s3_status sigv4_presign(const struct sigv4_request *req, const struct sigv4_context *ctx,
			     struct sigv4_result *out)
{
	return sign(req, ctx, true, out);
}
