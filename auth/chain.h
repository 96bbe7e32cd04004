/*
 * The credential chain: where irsafs's credentials come from.
 *
 * Sources are tried in the AWS SDKs' order and the first one that is configured wins:
 *   1. environment keys           auth/env.c
 *   2. web identity (IRSA) / STS  auth/web_identity.c
 *   3. container (Pod Identity)   auth/container.c
 *   4. EC2 instance metadata      auth/imds.c
 * The chosen source's first credentials are fetched at once (transient failures retried a few
 * times, permanent ones reported at once), then kept fresh by a refresher (auth/refresher.c)
 * and served to the S3 client through the s3_credentials_provider interface
 * (s3/credentials.h). Which source was chosen, and why the others were skipped, is logged at
 * debug level; secrets never are.
 */
#ifndef IRSAFS_AUTH_CHAIN_H
#define IRSAFS_AUTH_CHAIN_H

#include <stdint.h>

#include "s3/credentials.h"
#include "s3/status.h"

struct auth_chain_config {
	const char *region;    /* for the regional STS endpoint */
	const char *ca_bundle; /* for https credential endpoints; NULL for the default */
};

struct auth_chain;

/* Picks the source and loads the first credentials. Returns NULL with err set when no source
 * is configured (S3_NO_CREDENTIALS, naming what was tried) or the chosen one fails (its
 * error: e.g. "STS AssumeRoleWithWebIdentity failed: InvalidIdentityToken: ..."). */
struct auth_chain *auth_chain_create(const struct auth_chain_config *config,
				     struct s3_error *err);

/* Starts background renewal. Call once the process has daemonized. Returns 0 or an errno. */
int auth_chain_start(struct auth_chain *chain);

/* Stops renewal and frees the chain. The S3 client using its provider must be destroyed
 * first. Accepts NULL. */
void auth_chain_destroy(struct auth_chain *chain);

/* The provider to hand to the S3 client; lives as long as the chain. */
const struct s3_credentials_provider *auth_chain_provider(struct auth_chain *chain);

/* Name of the source in use ("environment", "web-identity", "container", "imds"). */
const char *auth_chain_source(const struct auth_chain *chain);

/* Renewals so far, and seconds until the current credentials expire (-1: never). */
void auth_chain_get_stats(struct auth_chain *chain, uint64_t *renewals, uint64_t *failures,
			  int64_t *expires_in_s);

#endif
