/*
 * The credential chain. See chain.h.
 *
 * `current` is the snapshot handed out by get(); it is replaced, never modified, under `lock`.
 * get() only takes the lock long enough to take a reference.
 */
#include "chain.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "env.h"
#include "s3/log.h"

struct auth_chain {
	struct s3_credentials_provider provider;
	pthread_mutex_t lock;
	struct s3_credentials *current; /* protected by lock */
	const char *source;
};

static struct s3_credentials *chain_get(void *ctx, struct s3_error *err)
{
	struct auth_chain *chain = ctx;
	struct s3_credentials *creds = NULL;

	pthread_mutex_lock(&chain->lock);
	if (chain->current)
		creds = s3_credentials_ref(chain->current);
	pthread_mutex_unlock(&chain->lock);
	if (!creds)
		s3_error_set(err, S3_NO_CREDENTIALS, "no credentials available");
	return creds;
}

static void chain_rejected(void *ctx, const struct s3_credentials *rejected)
{
	struct auth_chain *chain = ctx;

	/* Static keys cannot be renewed; the request then fails with S3's error. */
	log_debug("auth", "S3 rejected the %s credentials (access key %s) as expired or invalid; "
			 "static keys cannot be refreshed",
		 chain->source, s3_credentials_access_key_id(rejected));
}

struct auth_chain *auth_chain_create(struct s3_error *err)
{
	struct auth_chain *chain = NULL;
	struct s3_credentials *creds = NULL;
	enum s3_status status;

	status = auth_env_load(&creds, err);
	if (status == S3_NO_CREDENTIALS) {
		log_debug("auth", "environment: skipped: %s", err->message);
		s3_error_set(err, S3_NO_CREDENTIALS,
			     "no AWS credentials found: set AWS_ACCESS_KEY_ID and "
			     "AWS_SECRET_ACCESS_KEY (tried: environment)");
		return NULL;
	}
	if (status != S3_OK)
		return NULL;
	log_debug("auth", "environment: chosen (access key %s%s)",
		  s3_credentials_access_key_id(creds),
		  s3_credentials_session_token(creds) ? ", with session token" : "");
	chain = calloc(1, sizeof(*chain));
	if (!chain) {
		s3_credentials_unref(creds);
		s3_error_set(err, S3_NO_MEMORY, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&chain->lock, NULL);
	chain->current = creds;
	chain->source = "environment";
	chain->provider.get = chain_get;
	chain->provider.rejected = chain_rejected;
	chain->provider.ctx = chain;
	return chain;
}

void auth_chain_destroy(struct auth_chain *chain)
{
	if (!chain)
		return;
	s3_credentials_unref(chain->current);
	pthread_mutex_destroy(&chain->lock);
	free(chain);
}

const struct s3_credentials_provider *auth_chain_provider(struct auth_chain *chain)
{
	return &chain->provider;
}

const char *auth_chain_source(const struct auth_chain *chain)
{
	return chain->source;
}
