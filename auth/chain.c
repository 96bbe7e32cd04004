/*
 * The credential chain. See chain.h.
 */
#include "chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "refresher.h"
#include "s3/buf.h"
#include "s3/http.h"
#include "s3/log.h"
#include "source.h"

#define FIRST_FETCH_ATTEMPTS 4

struct auth_chain {
	struct s3_credentials_provider provider;
	struct http_transport *http;
	struct auth_refresher *refresher;
	const char *source; /* static string from the source */
};

typedef enum s3_status (*source_create_fn)(const struct auth_context *ctx,
					   struct auth_source **out, struct s3_error *err);

static const struct {
	const char *name;
	source_create_fn create;
} sources[] = {
	{"environment", auth_env_create},
	{"web-identity", auth_web_identity_create},
	{"container", auth_container_create},
	{"imds", auth_imds_create},
};

static struct s3_credentials *chain_get(void *ctx, struct s3_error *err)
{
	struct auth_chain *chain = ctx;

	return auth_refresher_get(chain->refresher, err);
}

static void chain_rejected(void *ctx, const struct s3_credentials *rejected)
{
	struct auth_chain *chain = ctx;

	auth_refresher_rejected(chain->refresher, rejected);
}

/* The first fetch: transient failures are retried a few times with backoff, so a pod that
 * starts while STS hiccups still mounts; a permanent refusal ends at once. */
static enum s3_status first_fetch(struct auth_source *src, struct s3_credentials **out,
				  struct s3_error *err)
{
	enum s3_status status = S3_OK;
	char what[640];

	for (unsigned attempt = 1; attempt <= FIRST_FETCH_ATTEMPTS; attempt++) {
		s3_error_clear(err);
		status = src->fetch(src, out, err);
		if (status == S3_OK || !s3_status_retryable(status) ||
		    attempt == FIRST_FETCH_ATTEMPTS)
			break;
		log_debug("auth", "%s: attempt %u failed: %s; retrying", src->name, attempt,
			 s3_error_describe(err, what, sizeof(what)));
		if (!http_sleep_ms((250 << attempt) + arc4random_uniform(250)))
			break;
	}
	return status;
}

struct auth_chain *auth_chain_create(const struct auth_chain_config *config,
				     struct s3_error *err)
{
	struct http_config http = {
		.ca_bundle = config->ca_bundle,
		.connect_timeout_ms = 2000,
		.low_speed_time_s = 10,
		.max_connections = 2,
		.user_agent = "irsafs/" IRSAFS_VERSION,
	};
	struct auth_chain *chain = calloc(1, sizeof(*chain));
	struct auth_source *src = NULL;
	struct s3_credentials *creds = NULL;
	struct buf tried;
	enum s3_status status = S3_NO_CREDENTIALS;

	buf_init(&tried);
	if (!chain) {
		s3_error_set(err, S3_NO_MEMORY, "out of memory");
		return NULL;
	}
	chain->http = http_transport_create(&http, err);
	if (!chain->http)
		goto fail;
	struct auth_context ctx = {chain->http, config->region};
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		status = sources[i].create(&ctx, &src, err);
		if (status == S3_NO_CREDENTIALS) {
			log_debug("auth", "credential source %s: skipped: %s", sources[i].name,
				  err->message);
			buf_appendf(&tried, "%s%s (%s)", tried.len ? "; " : "", sources[i].name,
				    err->message);
			continue;
		}
		if (status != S3_OK)
			goto fail;
		log_debug("auth", "credential source %s: configured; fetching credentials",
			  src->name);
		status = first_fetch(src, &creds, err);
		if (status == S3_OK)
			break;
		/* The metadata service is only a last resort: off EC2 (no answer, or whatever
		 * answers at its address refusing) that means "no credentials", not a failure of
		 * its own. */
		if (strcmp(src->name, "imds") == 0) {
			buf_appendf(&tried, "%simds (%s)", tried.len ? "; " : "", err->message);
			src->destroy(src);
			src = NULL;
			status = S3_NO_CREDENTIALS;
			continue;
		}
		goto fail;
	}
	if (status != S3_OK) {
		s3_error_set(err, S3_NO_CREDENTIALS,
			     "no AWS credentials found: set AWS_ACCESS_KEY_ID and "
			     "AWS_SECRET_ACCESS_KEY, or run with IRSA or Pod Identity (tried: %s)",
			     tried.data ? tried.data : "nothing");
		goto fail;
	}
	log_debug("auth", "credential source %s: chosen (access key %s%s)", src->name,
		  s3_credentials_access_key_id(creds),
		  s3_credentials_expiration(creds) ? ", temporary" : "");
	chain->source = src->name;
	chain->refresher = auth_refresher_create(src, creds);
	src = NULL;
	if (!chain->refresher) {
		s3_error_set(err, S3_NO_MEMORY, "out of memory");
		goto fail;
	}
	chain->provider.get = chain_get;
	chain->provider.rejected = chain_rejected;
	chain->provider.ctx = chain;
	buf_fini(&tried);
	return chain;
fail:
	if (src)
		src->destroy(src);
	buf_fini(&tried);
	auth_chain_destroy(chain);
	return NULL;
}

int auth_chain_start(struct auth_chain *chain)
{
	return auth_refresher_start(chain->refresher);
}

void auth_chain_destroy(struct auth_chain *chain)
{
	if (!chain)
		return;
	auth_refresher_destroy(chain->refresher);
	http_transport_destroy(chain->http);
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

void auth_chain_get_stats(struct auth_chain *chain, uint64_t *renewals, uint64_t *failures,
			  int64_t *expires_in_s)
{
	struct auth_refresher_stats st;

	auth_refresher_get_stats(chain->refresher, &st);
	*renewals = st.renewals;
	*failures = st.failures;
	*expires_in_s = st.expires_in_s;
}
