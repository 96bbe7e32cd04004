/*
 * What every harness shares: the libFuzzer entry points, check() for invariants, and the
 * verdict on a credential parser's result. Included once, by the harness's own .c file.
 */
#ifndef IRSAFS_TESTS_FUZZ_H
#define IRSAFS_TESTS_FUZZ_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/credentials.h"
#include "s3/status.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The LLVMFuzzerInitialize of a harness that only needs libxml2 set up before the first input. */
#define FUZZ_INITIALIZE_LIBXML2()                                                                  \
	int LLVMFuzzerInitialize(int *argc, char ***argv)                                          \
	{                                                                                          \
		(void)argc;                                                                        \
		(void)argv;                                                                        \
		xmlInitParser();                                                                   \
		return 0;                                                                          \
	}

/* An invariant: when it does not hold, say which and abort, so libFuzzer keeps the input. */
static inline void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "%s: invariant broken: %s\n", program_invocation_short_name, what);
		abort();
	}
}

/*
 * The contract of a credential parser: S3_OK comes with credentials that have a non-empty key
 * id and secret (and session token if want_token), the given source and a non-negative
 * expiration; any other result is S3_PROTOCOL or S3_NO_MEMORY with no credentials, err->status
 * set and a NUL-terminated message. Releases the credentials, so LeakSanitizer sees any leak.
 */
static inline void check_credentials_result(enum s3_status status, struct s3_credentials *creds,
					    const struct s3_error *err, const char *source,
					    bool want_token)
{
	if (status == S3_OK) {
		const char *token;

		check(creds != NULL, "S3_OK without credentials");
		token = s3_credentials_session_token(creds);
		check(*s3_credentials_access_key_id(creds) != '\0', "empty access key id");
		check(*s3_credentials_secret_access_key(creds) != '\0', "empty secret");
		check(!want_token || (token && *token), "no session token");
		check(s3_credentials_expiration(creds) >= 0, "negative expiration");
		check(strcmp(s3_credentials_source(creds), source) == 0, "wrong source");
		s3_credentials_unref(creds);
	} else {
		check(creds == NULL, "credentials returned with a failure");
		check(status == S3_PROTOCOL || status == S3_NO_MEMORY, "unexpected status");
		check(err->status == status, "err->status differs from the result");
		check(memchr(err->message, '\0', sizeof(err->message)) != NULL,
		      "message not terminated");
	}
}

#endif
