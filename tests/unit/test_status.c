/*
 * Error documents (S3 and STS), status classification and timestamp parsing.
 */
#include <string.h>

#include <libxml/parser.h>

#include "harness.h"
#include "s3/date.h"
#include "s3/status.h"

static void test_error_bodies(void)
{
	struct s3_error err;
	const char *s3 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
			 "<Message>The specified bucket does not exist</Message>"
			 "<BucketName>nope</BucketName><RequestId>R1</RequestId></Error>";
	const char *sts = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
			  "<Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
			  "<Message>Incorrect token audience</Message></Error>"
			  "<RequestId>R2</RequestId></ErrorResponse>";
	const char *region = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region "
			     "'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
			     "<Region>eu-west-1</Region></Error>";

	s3_error_clear(&err);
	CHECK(s3_error_parse_body(&err, s3, strlen(s3)), "S3 error parses");
	CHECK_STR(err.code, "NoSuchBucket", "S3 code");
	CHECK_STR(err.message, "The specified bucket does not exist", "S3 message");
	CHECK_STR(err.request_id, "R1", "S3 request id");
	s3_error_clear(&err);
	CHECK(s3_error_parse_body(&err, sts, strlen(sts)), "STS error parses");
	CHECK_STR(err.code, "InvalidIdentityToken", "STS code");
	CHECK_STR(err.request_id, "R2", "STS request id");
	s3_error_clear(&err);
	CHECK(s3_error_parse_body(&err, region, strlen(region)), "region error parses");
	CHECK_STR(err.region, "eu-west-1", "region named");
	s3_error_clear(&err);
	CHECK(!s3_error_parse_body(&err, "<html>502</html>", 16), "HTML is not an error doc");
	CHECK(!s3_error_parse_body(&err, "", 0), "empty body");
	CHECK(!s3_error_parse_body(&err, "<Error>", 7), "broken XML");
}

static void test_classify(void)
{
	static const struct {
		long http;
		const char *code;
		enum s3_status want;
	} cases[] = {
		{200, NULL, S3_OK},
		{206, NULL, S3_OK},
		{404, "NoSuchKey", S3_NOT_FOUND},
		{404, "NoSuchBucket", S3_NO_SUCH_BUCKET},
		{404, NULL, S3_NOT_FOUND},
		{403, "AccessDenied", S3_ACCESS_DENIED},
		{403, "InvalidAccessKeyId", S3_BAD_CREDENTIALS},
		{403, "SignatureDoesNotMatch", S3_BAD_CREDENTIALS},
		{400, "ExpiredToken", S3_EXPIRED_CREDENTIALS},
		{403, "InvalidToken", S3_EXPIRED_CREDENTIALS},
		{301, "PermanentRedirect", S3_WRONG_REGION},
		{301, NULL, S3_WRONG_REGION},
		{400, "AuthorizationHeaderMalformed", S3_WRONG_REGION},
		{503, "SlowDown", S3_THROTTLED},
		{503, NULL, S3_THROTTLED},
		{500, "InternalError", S3_SERVER_ERROR},
		{502, NULL, S3_SERVER_ERROR},
		{400, "RequestTimeout", S3_TIMEOUT},
		{412, "PreconditionFailed", S3_PRECONDITION_FAILED},
		{416, "InvalidRange", S3_INVALID_RANGE},
		{403, "InvalidObjectState", S3_ARCHIVED},
		{400, "InvalidArgument", S3_CLIENT_ERROR},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum s3_status got = s3_status_classify(cases[i].http, cases[i].code);

		CHECK(got == cases[i].want, "HTTP %ld %s -> %s (got %s)", cases[i].http,
		      cases[i].code ? cases[i].code : "-", s3_status_name(cases[i].want),
		      s3_status_name(got));
	}
	CHECK(s3_status_retryable(S3_THROTTLED) && s3_status_retryable(S3_NETWORK) &&
		      !s3_status_retryable(S3_NOT_FOUND) &&
		      !s3_status_retryable(S3_PRECONDITION_FAILED),
	      "retryable statuses");
}

static void test_dates(void)
{
	int64_t s;
	uint32_t ns;

	CHECK(date_parse_iso8601("1970-01-01T00:00:00Z", &s, &ns) && s == 0, "epoch");
	CHECK(date_parse_iso8601("2026-11-29T07:35:24Z", &s, &ns) && s == 1795937724, "STS form");
	CHECK(date_parse_iso8601("2026-11-29T07:35:24.250Z", &s, &ns) && s == 1795937724 &&
		      ns == 250000000,
	      "S3 form with milliseconds");
	CHECK(date_parse_iso8601("2024-02-29T12:00:00+00:00", &s, &ns) && s == 1709208000,
	      "leap day, +00:00");
	CHECK(!date_parse_iso8601("2023-02-29T12:00:00Z", &s, &ns), "no 29 February in 2023");
	CHECK(date_parse_iso8601("2000-02-29T12:00:00Z", &s, &ns), "29 February 2000");
	CHECK(!date_parse_iso8601("1900-02-29T12:00:00Z", &s, &ns), "before 1970");
	CHECK(!date_parse_iso8601("2026-04-31T12:00:00Z", &s, &ns), "31 April");
	CHECK(!date_parse_iso8601("2026-11-29T07:35:60Z", &s, &ns), "second 60");
	CHECK(!date_parse_http("Thu, 29 Feb 2026 07:35:24 GMT", &s), "HTTP date, 29 Feb 2026");
	CHECK(!date_parse_iso8601("2026-13-01T00:00:00Z", &s, &ns), "month 13");
	CHECK(!date_parse_iso8601("2026-11-29 07:35:24Z", &s, &ns), "space separator");
	CHECK(!date_parse_iso8601("2026-11-29T07:35:24", &s, &ns), "no zone");
	CHECK(!date_parse_iso8601("2026-11-29T07:35:24+02:00", &s, &ns), "other zone");
	CHECK(!date_parse_iso8601("", &s, &ns), "empty");
	CHECK(date_parse_http("Sun, 29 Nov 2026 07:35:24 GMT", &s) && s == 1795937724, "HTTP date");
	CHECK(!date_parse_http("Sun, 29 Foo 2026 07:35:24 GMT", &s), "bad month");
	CHECK(!date_parse_http("29 Nov 2026", &s), "short");
}

int main(void)
{
	xmlInitParser();
	test_error_bodies();
	test_classify();
	test_dates();
	xmlCleanupParser();
	return harness_report("test_status");
}
