/*
 * Static environment credentials. See env.h.
 */
#include "env.h"

#include <stdlib.h>

static const char *nonempty_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

enum s3_status auth_env_load(struct s3_credentials **out, struct s3_error *err)
{
	const char *akid = nonempty_env("AWS_ACCESS_KEY_ID");
	const char *secret = nonempty_env("AWS_SECRET_ACCESS_KEY");
	const char *token = nonempty_env("AWS_SESSION_TOKEN");

	*out = NULL;
	if (!akid && !secret)
		return s3_error_set(err, S3_NO_CREDENTIALS,
				    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
	if (!akid || !secret)
		return s3_error_set(err, S3_INVALID_ARGUMENT, "%s is set but %s is not",
				    akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
				    akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
	*out = s3_credentials_create(akid, secret, token, 0, "environment");
	if (!*out)
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	return S3_OK;
}
