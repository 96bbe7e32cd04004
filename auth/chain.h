/*
 * The credential chain: where irsafs's credentials come from.
 *
 * Sources are tried in the AWS SDKs' order and the first one that is configured wins:
 *   1. environment keys (auth/env.c)
 *   (web identity, container credentials and IMDS follow in the same order as they are added)
 * The chain then serves that source's credentials to the S3 client through the
 * s3_credentials_provider interface (s3/credentials.h). Which source was chosen, and why the
 * others were skipped, is logged at debug level; secrets never are.
 */
#ifndef IRSAFS_AUTH_CHAIN_H
#define IRSAFS_AUTH_CHAIN_H

#include "s3/credentials.h"
#include "s3/status.h"

struct auth_chain;

/* Resolves the chain now and loads the first credentials. Returns NULL with err set when no
 * source is configured (S3_NO_CREDENTIALS, listing what was tried) or a configured source
 * fails. */
struct auth_chain *auth_chain_create(struct s3_error *err);

/* Frees the chain. The S3 client using its provider must be destroyed first. Accepts NULL. */
void auth_chain_destroy(struct auth_chain *chain);

/* The provider to hand to the S3 client; lives as long as the chain. */
const struct s3_credentials_provider *auth_chain_provider(struct auth_chain *chain);

/* Name of the source in use ("environment", ...). */
const char *auth_chain_source(const struct auth_chain *chain);

#endif
