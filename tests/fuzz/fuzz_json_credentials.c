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

#include "tests/fuzz/fuzz.h"
#include "auth/source.h"
#include "s3/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_credentials *creds = (struct s3_credentials *)&creds; /* must be reset */
	struct s3_error err;
	enum s3_status status;

	s3_error_clear(&err);
	status = auth_parse_json_credentials((const char *)data, size, "container", &creds, &err);
	check_credentials_result(status, creds, &err, "container", false);
	return 0;
}
