/*
 * Fuzzes the container / IMDS JSON credential parser (auth_parse_json_credentials).
 *
 * Input: the whole input is the response body (json-c parses it with an explicit length, so it
 * is not NUL-terminated here on purpose).
 *
 * Checks: S3_OK comes with credentials that have a non-empty key id and secret, the source name
 * passed in and a non-negative expiration; any other result is S3_PROTOCOL or S3_NO_MEMORY with
 * no credentials, err->status set and a NUL-terminated message. The credentials are released, so
 * LeakSanitizer sees any leak of the JSON objects or the tokener.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/source.h"
#include "s3/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_json_credentials: invariant broken: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_credentials *creds = (struct s3_credentials *)&creds; /* must be reset */
	struct s3_error err;
	enum s3_status status;

	s3_error_clear(&err);
	status = auth_parse_json_credentials((const char *)data, size, "container", &creds, &err);
	if (status == S3_OK) {
		check(creds != NULL, "S3_OK without credentials");
		check(*s3_credentials_access_key_id(creds) != '\0', "empty access key id");
		check(*s3_credentials_secret_access_key(creds) != '\0', "empty secret");
		check(s3_credentials_expiration(creds) >= 0, "negative expiration");
		check(strcmp(s3_credentials_source(creds), "container") == 0, "wrong source");
	} else {
		check(creds == NULL, "credentials returned with a failure");
		check(status == S3_PROTOCOL || status == S3_NO_MEMORY, "unexpected status");
		check(err.status == status, "err->status differs from the result");
		check(memchr(err.message, '\0', sizeof(err.message)) != NULL,
		      "message not terminated");
	}
	s3_credentials_unref(status == S3_OK ? creds : NULL);
	return 0;
}
