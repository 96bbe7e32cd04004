/*
 * Helpers shared by the credential sources: secret files, the environment, and the JSON
 * credential document (json-c). See source.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "s3/date.h"
#include "source.h"

const char *auth_getenv(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void auth_secret_free(char *secret)
{
	if (!secret)
		return;
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
}

char *auth_read_secret_file(const char *path, size_t max_len, const char *what,
			    struct s3_error *err)
{
	char *buf = NULL;
	size_t len = 0, start = 0;
	ssize_t n;
	int fd;

	/* Opened afresh on every call: kubelet replaces the file by renaming a symlink. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		s3_error_set(err, S3_INVALID_ARGUMENT, "cannot read the %s file %s: %s", what, path,
			     strerror(errno));
		return NULL;
	}
	buf = malloc(max_len + 1);
	if (!buf) {
		close(fd);
		s3_error_set(err, S3_NO_MEMORY, "out of memory");
		return NULL;
	}
	while (len <= max_len && (n = read(fd, buf + len, max_len + 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0) {
		s3_error_set(err, S3_INVALID_ARGUMENT, "cannot read the %s file %s: %s", what, path,
			     strerror(errno));
		goto fail;
	}
	if (len > max_len) {
		s3_error_set(err, S3_INVALID_ARGUMENT, "the %s file %s is larger than %zu bytes",
			     what, path, max_len);
		goto fail;
	}
	while (len && strchr(" \t\r\n", buf[len - 1]))
		len--;
	while (start < len && strchr(" \t\r\n", buf[start]))
		start++;
	if (start == len) {
		s3_error_set(err, S3_INVALID_ARGUMENT, "the %s file %s is empty", what, path);
		goto fail;
	}
	if (memchr(buf + start, '\0', len - start)) {
		s3_error_set(err, S3_INVALID_ARGUMENT, "the %s file %s holds a NUL byte", what,
			     path);
		goto fail;
	}
	memmove(buf, buf + start, len - start);
	buf[len - start] = '\0';
	close(fd);
	return buf;
fail:
	OPENSSL_cleanse(buf, max_len + 1);
	free(buf);
	close(fd);
	return NULL;
}

static const char *json_string_field(struct json_object *obj, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Overwrites a string held by json-c before the object is freed: the document carries the
 * secret key and the session token. */
static void wipe_field(struct json_object *obj, const char *name)
{
	const char *v = json_string_field(obj, name);

	if (v)
		OPENSSL_cleanse((char *)v, strlen(v));
}

enum s3_status auth_parse_json_credentials(const char *body, size_t len, const char *source,
					   struct s3_credentials **out, struct s3_error *err)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	const char *akid, *secret, *token, *expiration, *code;
	int64_t exp = 0;
	enum s3_status status = S3_PROTOCOL;

	*out = NULL;
	tok = json_tokener_new_ex(16);
	if (!tok)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	if (len <= 64 * 1024)
		obj = json_tokener_parse_ex(tok, body, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(obj, json_type_object)) {
		s3_error_set(err, status, "the %s credential response is not a JSON object", source);
		goto out;
	}
	code = json_string_field(obj, "Code");
	if (code && strcmp(code, "Success") != 0) {
		s3_error_set(err, status, "the %s credential response says Code %s", source, code);
		goto out;
	}
	akid = json_string_field(obj, "AccessKeyId");
	secret = json_string_field(obj, "SecretAccessKey");
	token = json_string_field(obj, "Token");
	expiration = json_string_field(obj, "Expiration");
	if (!akid || !*akid || !secret || !*secret) {
		s3_error_set(err, status,
			     "the %s credential response lacks AccessKeyId or SecretAccessKey",
			     source);
		goto out;
	}
	if (expiration && !date_parse_iso8601(expiration, &exp, NULL)) {
		s3_error_set(err, status, "the %s credential response has a bad Expiration '%.40s'",
			     source, expiration);
		goto out;
	}
	if (expiration && exp <= (int64_t)time(NULL)) {
		s3_error_set(err, status,
			     "the %s credentials expired already at %.40s (is the system clock "
			     "right?)",
			     source, expiration);
		goto out;
	}
	*out = s3_credentials_create(akid, secret, token, (time_t)exp, source);
	status = *out ? S3_OK : s3_error_set(err, S3_NO_MEMORY, "out of memory");
out:
	if (obj) {
		wipe_field(obj, "SecretAccessKey");
		wipe_field(obj, "Token");
		json_object_put(obj);
	}
	json_tokener_free(tok);
	return status;
}
