/*
 * Fuzzes the STS AssumeRoleWithWebIdentity response parser (auth_sts_parse_credentials).
 *
 * Input: the whole input is the response body.
 *
 * Checks: S3_OK comes with credentials that have a non-empty key id, secret and session token,
 * the "web-identity" source and a non-negative expiration; any other result is S3_PROTOCOL or
 * S3_NO_MEMORY, with no credentials, err->status set and a NUL-terminated message. The
 * credentials are released, so LeakSanitizer sees any leak of the document or its copies.
 */

#include <libxml/parser.h>

#include "tests/fuzz/fuzz.h"
#include "auth/source.h"
#include "s3/credentials.h"

FUZZ_INITIALIZE_LIBXML2()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_credentials *creds = (struct s3_credentials *)&creds; /* must be reset */
	struct s3_error err;
	enum s3_status status;

	s3_error_clear(&err);
	status = auth_sts_parse_credentials((const char *)data, size, &creds, &err);
	check_credentials_result(status, creds, &err, "web-identity", true);
	return 0;
}
