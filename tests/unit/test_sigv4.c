/*
 * The SigV4 signer against AWS's official test vectors (both suites in sigv4-suite/), plus the
 * S3-specific rules the suites do not cover (no normalisation, single encoding).
 *
 * aws4_testsuite/<case>/<case>.req holds a raw request with its X-Amz-Date; every header in it
 * is signed. aws-c-auth/v4/<case>/ holds request.txt and context.json; each case is signed
 * twice: with the Authorization header (the signer adds X-Amz-Date, the token and, when
 * sign_body is set, x-amz-content-sha256) and as a presigned URL.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "s3/buf.h"
#include "s3/sigv4.h"
#include "s3/uri.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MAX_ITEMS 32

struct parsed_request {
	char *text; /* the whole file; the fields below point into it */
	char *method;
	char *path;
	size_t path_len;
	struct sigv4_header headers[MAX_ITEMS];
	size_t nheaders;
	struct sigv4_param params[MAX_ITEMS];
	size_t nparams;
	struct buf decoded[MAX_ITEMS * 2];
	const char *body;
	size_t body_len;
};

/* snprintf for paths; the fixtures' paths are short, a cut one would simply not be found. */
static void pathf(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void pathf(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, size, fmt, ap);
	va_end(ap);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	if (len)
		*len = b.len;
	return buf_steal(&b);
}

/* Strips one trailing newline, as the expected-output files may or may not end with one. */
static char *read_expected(const char *dir, const char *name)
{
	char path[1024];
	size_t len;
	char *s;

	pathf(path, sizeof(path), "%s/%s", dir, name);
	s = read_file(path, &len);
	if (s && len && s[len - 1] == '\n')
		s[len - 1] = '\0';
	return s;
}

static void parse_query(struct parsed_request *r, char *q)
{
	while (q && *q && r->nparams < MAX_ITEMS) {
		char *amp = strchr(q, '&');
		char *eq;
		size_t i = r->nparams;

		if (amp)
			*amp = '\0';
		eq = strchr(q, '=');
		buf_init(&r->decoded[2 * i]);
		buf_init(&r->decoded[2 * i + 1]);
		uri_decode(&r->decoded[2 * i], q, eq ? (size_t)(eq - q) : strlen(q), false);
		if (eq)
			uri_decode(&r->decoded[2 * i + 1], eq + 1, strlen(eq + 1), false);
		buf_append(&r->decoded[2 * i], "", 0);
		buf_append(&r->decoded[2 * i + 1], "", 0);
		r->params[i] = (struct sigv4_param){r->decoded[2 * i].data, r->decoded[2 * i].len,
						    r->decoded[2 * i + 1].data,
						    r->decoded[2 * i + 1].len};
		r->nparams++;
		q = amp ? amp + 1 : NULL;
	}
}

/* Parses "METHOD PATH HTTP/1.1\nName:value\n continuation\n...\n\nbody". */
static bool parse_request(const char *file, struct parsed_request *r)
{
	char *line, *next, *sp, *last_sp, *q;

	memset(r, 0, sizeof(*r));
	r->text = read_file(file, NULL);
	if (!r->text)
		return false;
	line = r->text;
	next = strchr(line, '\n');
	if (next)
		*next++ = '\0';
	sp = strchr(line, ' ');
	last_sp = strrchr(line, ' ');
	if (!sp || sp == last_sp)
		return false;
	*sp = '\0';
	*last_sp = '\0';
	r->method = line;
	r->path = sp + 1;
	q = strchr(r->path, '?');
	if (q)
		*q++ = '\0';
	r->path_len = strlen(r->path);
	parse_query(r, q);
	while ((line = next) != NULL) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == '\0') {
			r->body = next ? next : "";
			r->body_len = strlen(r->body);
			break;
		}
		if ((*line == ' ' || *line == '\t') && r->nheaders) {
			/* A folded continuation: rejoin it; the signer folds the white space. */
			line[-1] = '\n';
			continue;
		}
		char *colon = strchr(line, ':');
		if (!colon || r->nheaders >= MAX_ITEMS)
			return false;
		*colon = '\0';
		r->headers[r->nheaders++] = (struct sigv4_header){line, colon + 1};
	}
	if (!r->body)
		r->body = "";
	return true;
}

static void free_request(struct parsed_request *r)
{
	for (size_t i = 0; i < 2 * r->nparams; i++)
		buf_fini(&r->decoded[i]);
	free(r->text);
}

static const char *header_value(const struct parsed_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	}
	return NULL;
}

/* Finds "key": <value> in the (trusted, flat) context.json fixture; copies a string or a bare
 * token (true, 3600) into out. */
static bool json_field(const char *json, const char *key, char *out, size_t size)
{
	char pat[128];
	const char *p, *end;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(json, pat);
	if (!p)
		return false;
	p = strchr(p + strlen(pat), ':');
	if (!p)
		return false;
	for (p++; *p == ' ' || *p == '\n'; p++)
		;
	if (*p == '"') {
		end = strchr(++p, '"');
	} else {
		end = p + strcspn(p, ",\n}");
	}
	if (!end || (size_t)(end - p) >= size)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

static void run_aws4_case(const char *dir, const char *name)
{
	char path[1024], hash[65];
	struct parsed_request r;
	struct buf uri;
	struct sigv4_result res = {0};
	char *creq, *sts, *authz;

	pathf(path, sizeof(path), "%s/%s.req", dir, name);
	if (!parse_request(path, &r)) {
		CHECK(false, "%s: cannot parse %s", name, path);
		free_request(&r);
		return;
	}
	pathf(path, sizeof(path), "%s.creq", name);
	creq = read_expected(dir, path);
	pathf(path, sizeof(path), "%s.sts", name);
	sts = read_expected(dir, path);
	pathf(path, sizeof(path), "%s.authz", name);
	authz = read_expected(dir, path);
	/* A header the signed request (.sreq) carries beyond the .req (the session token) is
	 * signed when the expected canonical request lists it among its signed headers. */
	pathf(path, sizeof(path), "%s/%s.sreq", dir, name);
	struct parsed_request signed_req = {0};
	if (creq && parse_request(path, &signed_req)) {
		/* The signed-headers line is the last but one of the canonical request. */
		const char *hash_line = strrchr(creq, '\n'), *signed_names = NULL;

		for (const char *p = hash_line; p && p > creq; p--) {
			if (p[-1] == '\n') {
				signed_names = p;
				break;
			}
		}

		for (size_t i = 0; i < signed_req.nheaders && r.nheaders < MAX_ITEMS; i++) {
			char lower[64];
			size_t k;

			for (k = 0; k + 1 < sizeof(lower) && signed_req.headers[i].name[k]; k++)
				lower[k] = (char)tolower((unsigned char)signed_req.headers[i].name[k]);
			lower[k] = '\0';
			if (header_value(&r, lower) || strcmp(lower, "authorization") == 0)
				continue;
			if (signed_names && memmem(signed_names, (size_t)(hash_line - signed_names), lower,
						   strlen(lower)))
				r.headers[r.nheaders++] = signed_req.headers[i];
		}
	}
	buf_init(&uri);
	sigv4_canonical_path(&uri, r.path, r.path_len, true);
	sigv4_sha256_hex(r.body, r.body_len, hash);
	struct sigv4_request req = {r.method, uri.data, r.params, r.nparams, r.headers, r.nheaders,
				    hash};
	struct sigv4_context ctx = {AKID, SECRET, NULL, "us-east-1", "service",
				    header_value(&r, "X-Amz-Date"), 0};
	CHECK(sigv4_sign(&req, &ctx, &res) == S3_OK, "%s: sign failed", name);
	CHECK_STR(res.canonical_request, creq, "aws4_testsuite %s: canonical request", name);
	CHECK_STR(res.string_to_sign, sts, "aws4_testsuite %s: string to sign", name);
	CHECK_STR(res.authorization, authz, "aws4_testsuite %s: authorization", name);
	sigv4_result_fini(&res);
	buf_fini(&uri);
	free(creq);
	free(sts);
	free(authz);
	free_request(&signed_req);
	free_request(&r);
}

static int run_aws4_suite(const char *root)
{
	int cases = 0;
	DIR *d = opendir(root);
	struct dirent *e;

	CHECK(d != NULL, "cannot open %s", root);
	while (d && (e = readdir(d)) != NULL) {
		char sub[1024], req[1400];
		struct stat st;
		DIR *inner;
		struct dirent *ie;

		if (e->d_name[0] == '.')
			continue;
		pathf(sub, sizeof(sub), "%s/%s", root, e->d_name);
		if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		pathf(req, sizeof(req), "%s/%s.req", sub, e->d_name);
		if (stat(req, &st) == 0) {
			run_aws4_case(sub, e->d_name);
			cases++;
			continue;
		}
		/* A group folder (normalize-path/, post-sts-token/): recurse one level. */
		inner = opendir(sub);
		while (inner && (ie = readdir(inner)) != NULL) {
			char sub2[2048], req2[2600];

			if (ie->d_name[0] == '.')
				continue;
			pathf(sub2, sizeof(sub2), "%s/%s", sub, ie->d_name);
			pathf(req2, sizeof(req2), "%s/%s.req", sub2, ie->d_name);
			if (stat(req2, &st) == 0) {
				run_aws4_case(sub2, ie->d_name);
				cases++;
			}
		}
		if (inner)
			closedir(inner);
	}
	if (d)
		closedir(d);
	return cases;
}

static void run_crt_case(const char *dir, const char *name)
{
	char path[1024], hash[65], token[1024] = "", region[64], service[64], stamp[64],
						      normalize[16], sign_body[16], expires[32], omit[16];
	char amz_date[17];
	struct parsed_request r;
	struct buf uri;
	struct sigv4_result res = {0};
	struct sigv4_header headers[MAX_ITEMS + 3];
	size_t n;
	char *json, *want;

	pathf(path, sizeof(path), "%s/context.json", dir);
	json = read_file(path, NULL);
	pathf(path, sizeof(path), "%s/request.txt", dir);
	if (!json || !parse_request(path, &r) || !json_field(json, "region", region, 64) ||
	    !json_field(json, "service", service, 64) ||
	    !json_field(json, "timestamp", stamp, 64) ||
	    !json_field(json, "normalize", normalize, 16) ||
	    !json_field(json, "sign_body", sign_body, 16) ||
	    !json_field(json, "expiration_in_seconds", expires, 32)) {
		CHECK(false, "%s: cannot read the case", name);
		free(json);
		return;
	}
	json_field(json, "token", token, sizeof(token));
	/* "omit_session_token": the token is added after signing (post-sts-header-after). */
	if (json_field(json, "omit_session_token", omit, sizeof(omit)) && strcmp(omit, "true") == 0)
		token[0] = '\0';
	/* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
	snprintf(amz_date, sizeof(amz_date), "%.4s%.2s%.2sT%.2s%.2s%.2sZ", stamp, stamp + 5,
		 stamp + 8, stamp + 11, stamp + 14, stamp + 17);
	buf_init(&uri);
	sigv4_canonical_path(&uri, r.path, r.path_len, strcmp(normalize, "true") == 0);
	sigv4_sha256_hex(r.body, r.body_len, hash);

	/* Header signing: the signer's caller adds x-amz-date, the token and the body hash. */
	memcpy(headers, r.headers, r.nheaders * sizeof(*headers));
	n = r.nheaders;
	headers[n++] = (struct sigv4_header){"X-Amz-Date", amz_date};
	if (token[0])
		headers[n++] = (struct sigv4_header){"X-Amz-Security-Token", token};
	if (strcmp(sign_body, "true") == 0)
		headers[n++] = (struct sigv4_header){"X-Amz-Content-Sha256", hash};
	struct sigv4_request req = {r.method, uri.data, r.params, r.nparams, headers, n, hash};
	struct sigv4_context ctx = {AKID, SECRET, token[0] ? token : NULL, region, service,
				    amz_date, atol(expires)};
	CHECK(sigv4_sign(&req, &ctx, &res) == S3_OK, "%s: sign failed", name);
	want = read_expected(dir, "header-canonical-request.txt");
	CHECK_STR(res.canonical_request, want, "aws-c-auth %s: header canonical request", name);
	free(want);
	want = read_expected(dir, "header-string-to-sign.txt");
	CHECK_STR(res.string_to_sign, want, "aws-c-auth %s: header string to sign", name);
	free(want);
	want = read_expected(dir, "header-signature.txt");
	CHECK_STR(res.signature, want, "aws-c-auth %s: header signature", name);
	free(want);
	sigv4_result_fini(&res);

	/* Query signing (presigned URL): only the request's own headers are signed. */
	req.headers = r.headers;
	req.nheaders = r.nheaders;
	CHECK(sigv4_presign(&req, &ctx, &res) == S3_OK, "%s: presign failed", name);
	want = read_expected(dir, "query-canonical-request.txt");
	CHECK_STR(res.canonical_request, want, "aws-c-auth %s: query canonical request", name);
	free(want);
	want = read_expected(dir, "query-string-to-sign.txt");
	CHECK_STR(res.string_to_sign, want, "aws-c-auth %s: query string to sign", name);
	free(want);
	want = read_expected(dir, "query-signature.txt");
	CHECK_STR(res.signature, want, "aws-c-auth %s: query signature", name);
	free(want);
	sigv4_result_fini(&res);
	buf_fini(&uri);
	free_request(&r);
	free(json);
}

static int run_crt_suite(const char *root)
{
	int cases = 0;
	DIR *d = opendir(root);
	struct dirent *e;

	CHECK(d != NULL, "cannot open %s", root);
	while (d && (e = readdir(d)) != NULL) {
		char sub[1024];

		if (e->d_name[0] == '.')
			continue;
		pathf(sub, sizeof(sub), "%s/%s", root, e->d_name);
		run_crt_case(sub, e->d_name);
		cases++;
	}
	if (d)
		closedir(d);
	return cases;
}

/* S3 rules: the path is used as is, each byte encoded once; a key with '%' stays "%25". */
static void test_s3_paths(void)
{
	static const struct {
		const char *raw, *want;
	} cases[] = {
		{"/bucket/my-object//example//photo.user", "/bucket/my-object//example//photo.user"},
		{"/b/a b+c", "/b/a%20b%2Bc"},
		{"/b/100%", "/b/100%25"},
		{"/b/./x/../y", "/b/./x/../y"},
		{"/b/\xF0\x9F\x98\x80", "/b/%F0%9F%98%80"},
		{"/b/~user_1-2.txt", "/b/~user_1-2.txt"},
		{"/b/q?x=1#f", "/b/q%3Fx%3D1%23f"},
		{"", "/"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		buf_init(&b);
		CHECK(sigv4_canonical_path(&b, cases[i].raw, strlen(cases[i].raw), false),
		      "canonical path %zu", i);
		CHECK_STR(b.data, cases[i].want, "S3 canonical path of '%s'", cases[i].raw);
		buf_fini(&b);
	}
}

/* A known S3 signature (AWS's S3 documentation example: GET with a Range header). */
static void test_s3_documented_example(void)
{
	struct sigv4_header headers[] = {
		{"host", "examplebucket.s3.amazonaws.com"},
		{"range", "bytes=0-9"},
		{"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
		{"x-amz-date", "20130524T000000Z"},
	};
	struct sigv4_request req = {"GET", "/test.txt", NULL, 0, headers, 4, SIGV4_EMPTY_SHA256};
	struct sigv4_context ctx = {"AKIAIOSFODNN7EXAMPLE",
				    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
				    NULL,
				    "us-east-1",
				    "s3",
				    "20130524T000000Z",
				    0};
	struct sigv4_result res = {0};

	CHECK(sigv4_sign(&req, &ctx, &res) == S3_OK, "S3 example signs");
	CHECK_STR(res.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		  "S3 documented GetObject signature");
	sigv4_result_fini(&res);
}

static void test_bad_input(void)
{
	struct sigv4_request req = {"GET", "/", NULL, 0, NULL, 0, SIGV4_EMPTY_SHA256};
	struct sigv4_context ctx = {AKID, SECRET, NULL, "us-east-1", "s3", "2015-08-30", 0};
	struct sigv4_result res = {0};

	CHECK(sigv4_sign(&req, &ctx, &res) == S3_INVALID_ARGUMENT, "malformed date rejected");
	ctx.amz_date = NULL;
	CHECK(sigv4_sign(&req, &ctx, &res) == S3_INVALID_ARGUMENT, "missing date rejected");
}

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : "tests/unit/sigv4-suite";
	char path[1024];
	int n;

	pathf(path, sizeof(path), "%s/aws4_testsuite", root);
	n = run_aws4_suite(path);
	CHECK(n >= 30, "aws4_testsuite: ran %d cases", n);
	printf("aws4_testsuite: %d cases\n", n);
	pathf(path, sizeof(path), "%s/aws-c-auth/v4", root);
	n = run_crt_suite(path);
	CHECK(n >= 38, "aws-c-auth: ran %d cases", n);
	printf("aws-c-auth v4: %d cases (header and query signing)\n", n);
	test_s3_paths();
	test_s3_documented_example();
	test_bad_input();
	return harness_report("test_sigv4");
}
