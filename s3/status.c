/*
 * Status classification and S3/STS error documents. See status.h.
 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

void s3_error_clear(struct s3_error *err)
{
	memset(err, 0, sizeof(*err));
}

enum s3_status s3_error_set(struct s3_error *err, enum s3_status status, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return status;
	s3_error_clear(err);
	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return status;
}

static bool code_is(const char *code, const char *want)
{
	return code && strcmp(code, want) == 0;
}

enum s3_status s3_status_classify(long http_status, const char *code)
{
	if (http_status >= 200 && http_status < 300)
		return S3_OK;
	if (code_is(code, "NoSuchKey"))
		return S3_NOT_FOUND;
	if (code_is(code, "NoSuchBucket"))
		return S3_NO_SUCH_BUCKET;
	if (code_is(code, "ExpiredToken") || code_is(code, "InvalidToken") ||
	    code_is(code, "TokenRefreshRequired") || code_is(code, "ExpiredTokenException"))
		return S3_EXPIRED_CREDENTIALS;
	if (code_is(code, "InvalidAccessKeyId") || code_is(code, "SignatureDoesNotMatch"))
		return S3_BAD_CREDENTIALS;
	if (code_is(code, "PermanentRedirect") || code_is(code, "AuthorizationHeaderMalformed") ||
	    code_is(code, "IllegalLocationConstraintException") || http_status == 301)
		return S3_WRONG_REGION;
	if (code_is(code, "SlowDown") || code_is(code, "Throttling") ||
	    code_is(code, "ThrottlingException") || code_is(code, "RequestLimitExceeded") ||
	    http_status == 429 || http_status == 503)
		return S3_THROTTLED;
	if (code_is(code, "RequestTimeout"))
		return S3_TIMEOUT;
	if (code_is(code, "InvalidObjectState"))
		return S3_ARCHIVED;
	if (code_is(code, "InternalError"))
		return S3_SERVER_ERROR;
	switch (http_status) {
	case 404:
		return S3_NOT_FOUND;
	case 403:
		return S3_ACCESS_DENIED;
	case 412:
		return S3_PRECONDITION_FAILED;
	case 416:
		return S3_INVALID_RANGE;
	default:
		break;
	}
	if (http_status >= 500)
		return S3_SERVER_ERROR;
	if (http_status >= 400)
		return S3_CLIENT_ERROR;
	return S3_PROTOCOL;
}

const char *s3_status_name(enum s3_status status)
{
	switch (status) {
	case S3_OK:
		return "ok";
	case S3_NOT_FOUND:
		return "not-found";
	case S3_NO_SUCH_BUCKET:
		return "no-such-bucket";
	case S3_ACCESS_DENIED:
		return "access-denied";
	case S3_BAD_CREDENTIALS:
		return "bad-credentials";
	case S3_EXPIRED_CREDENTIALS:
		return "expired-credentials";
	case S3_NO_CREDENTIALS:
		return "no-credentials";
	case S3_WRONG_REGION:
		return "wrong-region";
	case S3_THROTTLED:
		return "throttled";
	case S3_PRECONDITION_FAILED:
		return "precondition-failed";
	case S3_INVALID_RANGE:
		return "invalid-range";
	case S3_ARCHIVED:
		return "archived";
	case S3_CLIENT_ERROR:
		return "client-error";
	case S3_SERVER_ERROR:
		return "server-error";
	case S3_TIMEOUT:
		return "timeout";
	case S3_NETWORK:
		return "network";
	case S3_TLS:
		return "tls";
	case S3_PROTOCOL:
		return "protocol";
	case S3_NO_MEMORY:
		return "no-memory";
	case S3_INVALID_ARGUMENT:
		return "invalid-argument";
	case S3_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

bool s3_status_retryable(enum s3_status status)
{
	return status == S3_THROTTLED || status == S3_SERVER_ERROR || status == S3_TIMEOUT ||
	       status == S3_NETWORK || status == S3_PROTOCOL;
}

/* Copies the text of the child `name` of `parent` into dst, if present and non-empty. */
static void copy_child_text(xmlNode *parent, const char *name, char *dst, size_t size)
{
	xmlNode *node = xml_child(parent, name);
	size_t len = 0;
	char *text;

	if (!node)
		return;
	text = xml_text(node, &len);
	if (text && len) {
		/* Keep messages printable and on one line. */
		size_t n = len < size - 1 ? len : size - 1;
		for (size_t i = 0; i < n; i++)
			dst[i] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
		dst[n] = '\0';
	}
	free(text);
}

bool s3_error_parse_body(struct s3_error *err, const char *body, size_t len)
{
	xmlDoc *doc = NULL;
	xmlNode *root, *error;
	bool ok = false;

	doc = xml_parse(body, len);
	if (!doc)
		goto out;
	root = xmlDocGetRootElement(doc);
	if (!root)
		goto out;
	/* S3: <Error> at the root. STS: <ErrorResponse><Error>. */
	if (xml_name_is(root, "Error"))
		error = root;
	else if (xml_name_is(root, "ErrorResponse"))
		error = xml_child(root, "Error");
	else
		error = NULL;
	if (!error)
		goto out;
	copy_child_text(error, "Code", err->code, sizeof(err->code));
	copy_child_text(error, "Message", err->message, sizeof(err->message));
	copy_child_text(error, "Region", err->region, sizeof(err->region));
	copy_child_text(error, "RequestId", err->request_id, sizeof(err->request_id));
	copy_child_text(root, "RequestId", err->request_id, sizeof(err->request_id));
	ok = true;
out:
	xmlFreeDoc(doc);
	return ok;
}

const char *s3_error_describe(const struct s3_error *err, char *out, size_t size)
{
	if (err->code[0] && err->http_status)
		snprintf(out, size, "%s: %s (HTTP %ld)", err->code,
			 err->message[0] ? err->message : "no message", err->http_status);
	else if (err->code[0])
		snprintf(out, size, "%s: %s", err->code, err->message);
	else if (err->http_status && !err->message[0])
		snprintf(out, size, "HTTP %ld", err->http_status);
	else
		snprintf(out, size, "%s", err->message[0] ? err->message : s3_status_name(err->status));
	return out;
}
