/*
 * Fuzzes the S3 <Error> / STS <ErrorResponse> body parser and status classification.
 *
 * Input: the whole input is the error body for s3_error_parse_body. Its first two bytes also
 * make an HTTP status (100..599) for s3_status_classify, which is called with the parsed code
 * and with the input itself (NUL-terminated) as the code.
 *
 * Checks: code, message, region and request id stay NUL-terminated within their arrays and carry
 * no control characters (the parser folds them to spaces); a body that is not an error document
 * leaves the fields as they were; s3_status_classify returns a named status, S3_OK exactly for
 * 2xx; s3_error_describe terminates its output. Everything is freed for LeakSanitizer.
 */

#include <libxml/parser.h>

#include "tests/fuzz/fuzz.h"
#include "s3/status.h"

static void check_field(const char *field, size_t size, const char *what)
{
	const char *end = memchr(field, '\0', size);

	check(end != NULL, what);
	for (const char *p = field; p < end; p++)
		check((unsigned char)*p >= 0x20, "a control character in an error field");
}

static void check_classify(long http_status, const char *code)
{
	enum s3_status s = s3_status_classify(http_status, code);

	check(strcmp(s3_status_name(s), "unknown") != 0, "classify returned an unnamed status");
	check((s == S3_OK) == (http_status >= 200 && http_status < 300),
	      "S3_OK is not exactly the 2xx statuses");
}

FUZZ_INITIALIZE_LIBXML2()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_error err, before;
	char *code = NULL;
	char describe[256];
	long http_status = 0;
	bool parsed;

	if (size >= 2)
		http_status = 100 + (long)((data[0] << 8 | data[1]) % 500);
	/* Prefilled fields show whether absent ones are left alone. */
	s3_error_set(&err, S3_CLIENT_ERROR, "local message");
	strcpy(err.code, "PreviousCode");
	strcpy(err.region, "eu-west-3");
	err.http_status = http_status;
	before = err;

	parsed = s3_error_parse_body(&err, (const char *)data, size);
	check_field(err.code, sizeof(err.code), "code not terminated");
	check_field(err.message, sizeof(err.message), "message not terminated");
	check_field(err.region, sizeof(err.region), "region not terminated");
	check_field(err.request_id, sizeof(err.request_id), "request id not terminated");
	check(parsed ||
		  (strcmp(err.code, before.code) == 0 && strcmp(err.message, before.message) == 0 &&
		   strcmp(err.region, before.region) == 0 &&
		   strcmp(err.request_id, before.request_id) == 0),
	      "a body that is not an error document changed the error");
	check(err.status == S3_CLIENT_ERROR && err.http_status == http_status,
	      "the parser touched status fields");

	check_classify(http_status, err.code);
	check_classify(http_status, NULL);
	code = malloc(size + 1);
	if (code) {
		memcpy(code, data, size);
		code[size] = '\0';
		check_classify(http_status, code);
	}
	s3_error_describe(&err, describe, sizeof(describe));
	check(memchr(describe, '\0', sizeof(describe)) != NULL, "describe not terminated");
	free(code);
	return 0;
}
