/*
 * Container credentials: EKS Pod Identity and ECS task roles.
 *
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (appended to http://169.254.170.2) or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI names a JSON endpoint. The Authorization header, when
 * needed, is the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read afresh on each call,
 * as the agent rotates it) or AWS_CONTAINER_AUTHORIZATION_TOKEN. As the SDKs require, a plain
 * http URL must point at a loopback address or at the ECS/EKS agent's link-local address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "source.h"

#define ECS_HOST "http://169.254.170.2"
#define TOKEN_MAX (16 * 1024)
#define CONTAINER_TIMEOUT_MS 5000

struct container {
	struct auth_source base;
	struct http_transport *http; /* borrowed */
	char *url;
	char *token_file; /* NULL if none */
	char *token;      /* NULL if none; a fixed token from the environment */
};

static bool allowed_http_host(const char *host)
{
	static const char *const hosts[] = {"localhost", "169.254.170.2", "169.254.170.23",
					    "[fd00:ec2::23]", "fd00:ec2::23", "[::1]", "::1"};

	if (strncmp(host, "127.", 4) == 0)
		return true;
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		if (strcmp(host, hosts[i]) == 0)
			return true;
	}
	return false;
}

/* Checks a full URI: https anywhere, http only to the agent or loopback. */
static enum s3_status check_url(const char *url, struct s3_error *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	enum s3_status status = S3_INVALID_ARGUMENT;

	if (!u)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		s3_error_set(err, status, "AWS_CONTAINER_CREDENTIALS_FULL_URI '%.200s' is not a URL",
			     url);
	} else if (strcmp(scheme, "https") != 0 &&
		   !(strcmp(scheme, "http") == 0 && allowed_http_host(host))) {
		s3_error_set(err, status,
			     "AWS_CONTAINER_CREDENTIALS_FULL_URI '%.200s' must use https, or http to "
			     "a loopback address or the container agent (169.254.170.2, "
			     "169.254.170.23)",
			     url);
	} else {
		status = S3_OK;
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return status;
}

static enum s3_status container_fetch(struct auth_source *self, struct s3_credentials **out,
				      struct s3_error *err)
{
	struct container *c = (struct container *)self;
	struct http_request req = {0};
	struct http_response resp;
	char *token = NULL, *auth_line = NULL;
	const char *headers[2];
	size_t nheaders = 0;
	enum s3_status status;
	char what[640];

	*out = NULL;
	headers[nheaders++] = "Accept: application/json";
	if (c->token_file) {
		token = auth_read_secret_file(c->token_file, TOKEN_MAX, "container authorization token",
					      err);
		if (!token)
			return err->status;
	}
	if ((token || c->token) && asprintf(&auth_line, "Authorization: %s", token ? token : c->token) < 0)
		auth_line = NULL;
	if ((token || c->token) && !auth_line) {
		auth_secret_free(token);
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	if (auth_line)
		headers[nheaders++] = auth_line;
	http_response_init(&resp);
	req.method = "GET";
	req.url = c->url;
	req.headers = headers;
	req.nheaders = nheaders;
	req.timeout_ms = CONTAINER_TIMEOUT_MS;
	status = http_perform(c->http, &req, &resp, err);
	if (status != S3_OK) {
		s3_error_describe(err, what, sizeof(what));
		s3_error_set(err, status, "container credentials at %s: %s", c->url, what);
	} else if (resp.status != 200) {
		status = resp.status >= 500 || resp.status == 429 ? S3_SERVER_ERROR : S3_ACCESS_DENIED;
		s3_error_set(err, status, "container credentials at %s answered HTTP %ld", c->url,
			     resp.status);
	} else {
		status = auth_parse_json_credentials(resp.body.data, resp.body.len, "container", out,
						     err);
	}
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	http_response_fini(&resp);
	auth_secret_free(auth_line);
	auth_secret_free(token);
	return status;
}

static void container_destroy(struct auth_source *self)
{
	struct container *c = (struct container *)self;

	free(c->url);
	free(c->token_file);
	auth_secret_free(c->token);
	free(c);
}

enum s3_status auth_container_create(const struct auth_context *ctx, struct auth_source **out,
				     struct s3_error *err)
{
	const char *relative = auth_getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = auth_getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *token_file = auth_getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *token = auth_getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct container *c;
	enum s3_status status;

	*out = NULL;
	if (!relative && !full)
		return s3_error_set(err, S3_NO_CREDENTIALS,
				    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
				    "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
	if (!relative) {
		status = check_url(full, err);
		if (status != S3_OK)
			return status;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	c->http = ctx->http;
	if (relative) {
		if (asprintf(&c->url, "%s%s%s", ECS_HOST, relative[0] == '/' ? "" : "/", relative) < 0)
			c->url = NULL;
	} else {
		c->url = strdup(full);
	}
	c->token_file = token_file ? strdup(token_file) : NULL;
	c->token = token && !token_file ? strdup(token) : NULL;
	if (!c->url || (token_file && !c->token_file) || (token && !token_file && !c->token)) {
		container_destroy(&c->base);
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	c->base.name = "container";
	c->base.refreshable = true;
	c->base.fetch = container_fetch;
	c->base.destroy = container_destroy;
	*out = &c->base;
	return S3_OK;
}
