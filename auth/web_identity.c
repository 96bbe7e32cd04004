/*
 * Web identity (IRSA): exchange the pod's projected service-account token for temporary
 * credentials with STS AssumeRoleWithWebIdentity.
 *
 * Configured by AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (+ AWS_ROLE_SESSION_NAME), as the
 * EKS pod identity webhook injects them. The request is an unsigned form POST to the regional
 * STS endpoint (https://sts.REGION.amazonaws.com), or the global one for the legacy regions
 * when AWS_STS_REGIONAL_ENDPOINTS=legacy; AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL, override
 * it. The token file is opened and read again for every call, because kubelet rotates it.
 * The token, the request body and the response are wiped from memory after use.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "s3/buf.h"
#include "s3/date.h"
#include "s3/uri.h"
#include "s3/xml.h"
#include "source.h"

#define TOKEN_MAX (64 * 1024)
#define STS_TIMEOUT_MS 15000

struct web_identity {
	struct auth_source base;
	struct http_transport *http; /* borrowed */
	char *role_arn;
	char *token_file;
	char *session_name;
	char *endpoint; /* "https://sts.us-east-1.amazonaws.com" */
};

/* The regions whose STS endpoint is the global one when AWS_STS_REGIONAL_ENDPOINTS=legacy. */
static const char *const legacy_regions[] = {
	"ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "aws-global",
	"ca-central-1",   "eu-central-1", "eu-north-1",   "eu-west-1",      "eu-west-2",
	"eu-west-3",      "sa-east-1",  "us-east-1",      "us-east-2",      "us-west-1",
	"us-west-2",
};

/* arn:PARTITION:iam::ACCOUNT:role/PATH/NAME */
static bool role_arn_valid(const char *arn)
{
	const char *p = arn;
	int digits = 0;

	if (strncmp(p, "arn:aws", 7) != 0)
		return false;
	for (p += 7; *p && *p != ':'; p++) {
		if (!islower((unsigned char)*p) && *p != '-')
			return false;
	}
	if (strncmp(p, ":iam::", 6) != 0)
		return false;
	for (p += 6; isdigit((unsigned char)*p); p++)
		digits++;
	if (digits != 12 || strncmp(p, ":role/", 6) != 0 || !p[6])
		return false;
	for (p += 6; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("+=,.@_/-", *p))
			return false;
	}
	return strlen(arn) <= 2048;
}

/* RoleSessionName: 2 to 64 characters of [\w+=,.@-]. */
static bool session_name_char(char c)
{
	return isalnum((unsigned char)c) || strchr("_+=,.@-", c);
}

static bool session_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 2 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!session_name_char(name[i]))
			return false;
	}
	return true;
}

/* "irsafs-<hostname>" (in a pod, the pod's name: it shows in CloudTrail), made valid. */
static char *default_session_name(void)
{
	char host[256] = "", name[65];
	size_t n;

	gethostname(host, sizeof(host) - 1);
	n = (size_t)snprintf(name, sizeof(name), "irsafs-%s", host);
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	for (size_t i = 0; i < n; i++) {
		if (!session_name_char(name[i]))
			name[i] = '-';
	}
	while (n > 2 && name[n - 1] == '-')
		name[--n] = '\0';
	if (n <= 7)
		snprintf(name, sizeof(name), "irsafs-%ld", (long)time(NULL));
	return strdup(name);
}

static char *sts_endpoint(const char *region)
{
	const char *override = auth_getenv("AWS_ENDPOINT_URL_STS");
	const char *mode = auth_getenv("AWS_STS_REGIONAL_ENDPOINTS");
	char *url = NULL;
	size_t n;

	if (!override)
		override = auth_getenv("AWS_ENDPOINT_URL");
	if (override) {
		url = strdup(override);
		/* The request goes to "/"; drop a trailing slash of the override. */
		n = url ? strlen(url) : 0;
		while (n > 0 && url[n - 1] == '/')
			url[--n] = '\0';
		return url;
	}
	if (mode && strcasecmp(mode, "legacy") == 0) {
		for (size_t i = 0; i < sizeof(legacy_regions) / sizeof(legacy_regions[0]); i++) {
			if (strcmp(region, legacy_regions[i]) == 0)
				return strdup("https://sts.amazonaws.com");
		}
	}
	if (asprintf(&url, "https://sts.%s.amazonaws.com%s", region,
		     strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0)
		return NULL;
	return url;
}

/* STS errors that will not go away by asking again (the role, the token or the policy is
 * wrong); everything else (Throttling, IDPCommunicationError, an expired token that kubelet
 * is about to replace, 5xx, network) is worth retrying. */
static enum s3_status classify_sts(long http_status, const char *code)
{
	static const char *const transient[] = {"Throttling", "ThrottlingException",
						 "IDPCommunicationError", "ExpiredTokenException",
						 "ServiceUnavailable", "InternalFailure",
						 "RequestTimeout"};

	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
		if (strcmp(code, transient[i]) == 0)
			return strstr(code, "Thrott") ? S3_THROTTLED : S3_SERVER_ERROR;
	}
	if (http_status >= 500 || http_status == 429)
		return S3_SERVER_ERROR;
	return S3_ACCESS_DENIED;
}

/* Finds the first element called name anywhere below node. */
static xmlNode *find_element(xmlNode *node, const char *name)
{
	for (; node; node = node->next) {
		xmlNode *found;

		if (xml_name_is(node, name))
			return node;
		found = find_element(node->children, name);
		if (found)
			return found;
	}
	return NULL;
}

static char *child_text(xmlNode *parent, const char *name)
{
	xmlNode *node = xml_child(parent, name);
	size_t len;

	return node ? xml_text(node, &len) : NULL;
}

enum s3_status auth_sts_parse_credentials(const char *body, size_t len,
					  struct s3_credentials **out, struct s3_error *err)
{
	xmlDoc *doc = xml_parse(body, len);
	xmlNode *creds;
	char *akid = NULL, *secret = NULL, *token = NULL, *expiration = NULL;
	int64_t exp = 0;
	enum s3_status status = S3_PROTOCOL;

	*out = NULL;
	creds = doc ? find_element(xmlDocGetRootElement(doc), "Credentials") : NULL;
	if (!creds) {
		s3_error_set(err, status, "STS answered without Credentials");
		goto out;
	}
	akid = child_text(creds, "AccessKeyId");
	secret = child_text(creds, "SecretAccessKey");
	token = child_text(creds, "SessionToken");
	expiration = child_text(creds, "Expiration");
	if (!akid || !*akid || !secret || !*secret || !token || !*token || !expiration ||
	    !date_parse_iso8601(expiration, &exp, NULL)) {
		s3_error_set(err, status,
			     "STS answered with incomplete Credentials (AccessKeyId, "
			     "SecretAccessKey, SessionToken and Expiration are required)");
		goto out;
	}
	if (exp <= (int64_t)time(NULL)) {
		s3_error_set(err, status,
			     "STS answered with credentials that expired already at %.40s (is the "
			     "system clock right?)",
			     expiration);
		goto out;
	}
	*out = s3_credentials_create(akid, secret, token, (time_t)exp, "web-identity");
	status = *out ? S3_OK : s3_error_set(err, S3_NO_MEMORY, "out of memory");
out:
	free(akid);
	auth_secret_free(secret);
	auth_secret_free(token);
	free(expiration);
	xml_wipe(doc);
	xmlFreeDoc(doc);
	return status;
}

static enum s3_status wi_fetch(struct auth_source *self, struct s3_credentials **out,
			       struct s3_error *err)
{
	struct web_identity *w = (struct web_identity *)self;
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		"Accept: text/xml",
	};
	struct http_request req = {0};
	struct http_response resp;
	struct buf body, url;
	enum s3_status status;
	char *token;
	char what[640];

	*out = NULL;
	token = auth_read_secret_file(w->token_file, TOKEN_MAX, "web identity token", err);
	if (!token)
		return err->status;
	buf_init(&body);
	buf_init(&url);
	http_response_init(&resp);
	if (!buf_append_str(&body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=") ||
	    !uri_encode(&body, w->role_arn, strlen(w->role_arn), false) ||
	    !buf_append_str(&body, "&RoleSessionName=") ||
	    !uri_encode(&body, w->session_name, strlen(w->session_name), false) ||
	    !buf_append_str(&body, "&WebIdentityToken=") ||
	    !uri_encode(&body, token, strlen(token), false) ||
	    !buf_appendf(&url, "%s/", w->endpoint)) {
		status = s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto out;
	}
	req.method = "POST";
	req.url = url.data;
	req.headers = headers;
	req.nheaders = sizeof(headers) / sizeof(headers[0]);
	req.body = body.data;
	req.body_len = body.len;
	req.timeout_ms = STS_TIMEOUT_MS;
	status = http_perform(w->http, &req, &resp, err);
	if (status != S3_OK) {
		s3_error_describe(err, what, sizeof(what));
		s3_error_set(err, status, "STS AssumeRoleWithWebIdentity at %s failed: %s",
			     w->endpoint, what);
		goto out;
	}
	if (resp.status != 200) {
		struct s3_error sts;

		s3_error_clear(&sts);
		sts.http_status = resp.status;
		s3_error_parse_body(&sts, resp.body.data, resp.body.len);
		status = classify_sts(resp.status, sts.code);
		s3_error_set(err, status,
			     "STS AssumeRoleWithWebIdentity failed: %s: %s (role %s, token file %s)",
			     sts.code[0] ? sts.code : "HTTP error",
			     sts.message[0] ? sts.message : "no message", w->role_arn,
			     w->token_file);
		snprintf(err->code, sizeof(err->code), "%s", sts.code);
		err->http_status = resp.status;
		goto out;
	}
	status = auth_sts_parse_credentials(resp.body.data, resp.body.len, out, err);
out:
	auth_secret_free(token);
	if (body.data)
		OPENSSL_cleanse(body.data, body.len);
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	buf_fini(&body);
	buf_fini(&url);
	http_response_fini(&resp);
	return status;
}

static void wi_destroy(struct auth_source *self)
{
	struct web_identity *w = (struct web_identity *)self;

	free(w->role_arn);
	free(w->token_file);
	free(w->session_name);
	free(w->endpoint);
	free(w);
}

enum s3_status auth_web_identity_create(const struct auth_context *ctx, struct auth_source **out,
					struct s3_error *err)
{
	const char *arn = auth_getenv("AWS_ROLE_ARN");
	const char *file = auth_getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *name = auth_getenv("AWS_ROLE_SESSION_NAME");
	struct web_identity *w;

	*out = NULL;
	if (!arn && !file)
		return s3_error_set(err, S3_NO_CREDENTIALS,
				    "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are not set");
	if (!arn || !file)
		return s3_error_set(err, S3_INVALID_ARGUMENT,
				    "%s is set but %s is not (both come from the IRSA webhook: is "
				    "the ServiceAccount annotated with eks.amazonaws.com/role-arn?)",
				    arn ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE",
				    arn ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
	if (!role_arn_valid(arn))
		return s3_error_set(err, S3_INVALID_ARGUMENT,
				    "AWS_ROLE_ARN '%.200s' is not a role ARN "
				    "(arn:aws:iam::123456789012:role/NAME)",
				    arn);
	if (name && !session_name_valid(name))
		return s3_error_set(err, S3_INVALID_ARGUMENT,
				    "AWS_ROLE_SESSION_NAME '%.80s' is not valid: use 2 to 64 letters, "
				    "digits or +=,.@_-",
				    name);
	w = calloc(1, sizeof(*w));
	if (!w)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	w->http = ctx->http;
	w->role_arn = strdup(arn);
	w->token_file = strdup(file);
	w->session_name = name ? strdup(name) : default_session_name();
	w->endpoint = sts_endpoint(ctx->region);
	if (!w->role_arn || !w->token_file || !w->session_name || !w->endpoint) {
		wi_destroy(&w->base);
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	w->base.name = "web-identity";
	w->base.refreshable = true;
	w->base.fetch = wi_fetch;
	w->base.destroy = wi_destroy;
	*out = &w->base;
	return S3_OK;
}
