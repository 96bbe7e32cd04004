/*
 * Static credentials from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
 * optional AWS_SESSION_TOKEN, as every AWS SDK reads them first. They never change, so the
 * source fetches once and is not refreshed.
 */
#include <stdlib.h>

#include "source.h"

struct env_source {
	struct auth_source base;
	struct s3_credentials *creds;
};

static enum s3_status env_fetch(struct auth_source *self, struct s3_credentials **out,
				struct s3_error *err)
{
	struct env_source *s = (struct env_source *)self;

	(void)err;
	*out = s3_credentials_ref(s->creds);
	return S3_OK;
}

static void env_destroy(struct auth_source *self)
{
	struct env_source *s = (struct env_source *)self;

	s3_credentials_unref(s->creds);
	free(s);
}

enum s3_status auth_env_create(const struct auth_context *ctx, struct auth_source **out,
			       struct s3_error *err)
{
	const char *akid = auth_getenv("AWS_ACCESS_KEY_ID");
	const char *secret = auth_getenv("AWS_SECRET_ACCESS_KEY");
	struct env_source *s;

	(void)ctx;
	*out = NULL;
	if (!akid && !secret)
		return s3_error_set(err, S3_NO_CREDENTIALS,
				    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
	/* One without the other is a mistake the user must hear about, not a reason to fall
	 * through to another source silently. */
	if (!akid || !secret)
		return s3_error_set(err, S3_INVALID_ARGUMENT, "%s is set but %s is not",
				    akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
				    akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
	s = calloc(1, sizeof(*s));
	if (s)
		s->creds = s3_credentials_create(akid, secret, auth_getenv("AWS_SESSION_TOKEN"), 0,
						 "environment");
	if (!s || !s->creds) {
		free(s);
		return s3_error_set(err, S3_NO_MEMORY, "out of memory");
	}
	s->base.name = "environment";
	s->base.refreshable = false;
	s->base.fetch = env_fetch;
	s->base.destroy = env_destroy;
	*out = &s->base;
	return S3_OK;
}
