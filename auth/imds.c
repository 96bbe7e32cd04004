/*
 * EC2 instance metadata (IMDSv2): the node's instance role, the chain's last resort.
 *
 * Each fetch takes a session token (PUT /latest/api/token), reads the role name from
 * /latest/meta-data/iam/security-credentials/ and then the role's JSON credentials. The base
 * URL is http://169.254.169.254 unless AWS_EC2_METADATA_SERVICE_ENDPOINT says otherwise;
 * AWS_EC2_METADATA_DISABLED=true turns the source off. Timeouts are short: off EC2 the address
 * does not answer, and a pod should not wait long to learn that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "s3/buf.h"
#include "source.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 2000

struct imds {
	struct auth_source base;
	struct http_transport *http; /* borrowed */
	char *base_url;
};

/* One request; a 200 body lands in resp. */
static enum s3_status imds_call(struct imds *m, const char *method, const char *path,
				const char *header, struct http_response *resp,
				struct s3_error *err)
{
	struct http_request req = {0};
	const char *headers[1] = {header};
	char url[1024], what[640];
	enum s3_status status;

	snprintf(url, sizeof(url), "%s%s", m->base_url, path);
	req.method = method;
	req.url = url;
	req.headers = headers;
	req.nheaders = header ? 1 : 0;
	req.timeout_ms = IMDS_TIMEOUT_MS;
	req.max_body = 64 * 1024;
	status = http_perform(m->http, &req, resp, err);
	if (status != S3_OK) {
		s3_error_describe(err, what, sizeof(what));
		return s3_error_set(err, status, "instance metadata at %s: %s", m->base_url, what);
	}
	if (resp->status == 200)
		return S3_OK;
	status = resp->status >= 500 ? S3_SERVER_ERROR
		 : resp->status == 404 ? S3_NOT_FOUND
				       : S3_ACCESS_DENIED;
	return s3_error_set(err, status, "instance metadata %s %s answered HTTP %ld", method, path,
			    resp->status);
}

static enum s3_status imds_fetch(struct auth_source *self, struct s3_credentials **out,
				 struct s3_error *err)
{
	struct imds *m = (struct imds *)self;
	struct http_response resp;
	char *token_header = NULL;
	char role[256], path[512];
	enum s3_status status;
	size_t n;

	*out = NULL;
	http_response_init(&resp);
	status = imds_call(m, "PUT", "/latest/api/token",
			   "X-aws-ec2-metadata-token-ttl-seconds: 21600", &resp, err);
	if (status != S3_OK)
		goto out;
	if (resp.body.len == 0 || resp.body.len > 4096 ||
	    asprintf(&token_header, "X-aws-ec2-metadata-token: %s", resp.body.data) < 0) {
		token_header = NULL;
		status = s3_error_set(err, S3_PROTOCOL, "instance metadata returned a bad token");
		goto out;
	}
	OPENSSL_cleanse(resp.body.data, resp.body.len);
	status = imds_call(m, "GET", "/latest/meta-data/iam/security-credentials/", token_header,
			   &resp, err);
	if (status == S3_NOT_FOUND) {
		status = s3_error_set(err, S3_NO_CREDENTIALS,
				      "the instance has no IAM role (instance metadata at %s)",
				      m->base_url);
		goto out;
	}
	if (status != S3_OK)
		goto out;
	/* The first line is the role name. */
	n = strcspn(resp.body.data ? resp.body.data : "", "\r\n");
	if (n == 0 || n >= sizeof(role) || strchr(resp.body.data, '/')) {
		status = s3_error_set(err, S3_PROTOCOL, "instance metadata returned no role name");
		goto out;
	}
	memcpy(role, resp.body.data, n);
	role[n] = '\0';
	snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/%s", role);
	status = imds_call(m, "GET", path, token_header, &resp, err);
	if (status == S3_OK)
		status = auth_parse_json_credentials(resp.body.data, resp.body.len, "imds", out, err);
out:
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	http_response_fini(&resp);
	auth_secret_free(token_header);
	return status;
}

static void imds_destroy(struct auth_source *self)
{
	struct imds *m = (struct imds *)self;

	free(m->base_url);
	free(m);
}

enum s3_status auth_imds_create(const struct auth_context *ctx, struct auth_source **out,
				struct s3_error *err)
{
	const char *disabled = auth_getenv("AWS_EC2_METADATA_DISABLED");
	const char *endpoint = auth_getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	struct imds *m;
	size_t n;

	*out = NULL;
	if (disabled && strcasecmp(disabled, "true") == 0)
		return s3_error_set(err, S3_NO_CREDENTIALS, "AWS_EC2_METADATA_DISABLED is true");
	m = calloc(1, sizeof(*m));
	if (!m)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	m->http = ctx->http;
	m->base_url = strdup(endpoint ? endpoint : IMDS_DEFAULT);
	if (!m->base_url) {
		free(m);
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	n = strlen(m->base_url);
	while (n > 0 && m->base_url[n - 1] == '/')
		m->base_url[--n] = '\0';
	m->base.name = "imds";
	m->base.refreshable = true;
	m->base.fetch = imds_fetch;
	m->base.destroy = imds_destroy;
	*out = &m->base;
	return S3_OK;
}
