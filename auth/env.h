/*
 * Static credentials from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
 * optional AWS_SESSION_TOKEN, as every AWS SDK reads them first.
 */
#ifndef IRSAFS_AUTH_ENV_H
#define IRSAFS_AUTH_ENV_H

#include "s3/credentials.h"
#include "s3/status.h"

/* Reads the environment. Returns:
 *   S3_OK with *out set (one reference for the caller) when both keys are set;
 *   S3_NO_CREDENTIALS with *out NULL and err->message saying why when neither is set;
 *   S3_INVALID_ARGUMENT when only one of the two keys is set (a configuration mistake the user
 *   must hear about rather than silently falling through to another source);
 *   S3_NO_MEMORY. */
enum s3_status auth_env_load(struct s3_credentials **out, struct s3_error *err);

#endif
