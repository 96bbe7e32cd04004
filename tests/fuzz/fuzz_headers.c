/*
 * Fuzzes the response header recorder and the Content-Range parser of the HTTP transport.
 *
 * Input: raw header bytes. They are split after each '\n' into lines (each keeps its "\r\n", as
 * curl's header callback hands them over) and fed in order to http_response_parse_header on one
 * http_response. http_parse_content_range then reads the recorded content_range field and the
 * whole input (as a NUL-terminated copy).
 *
 * Checks: every recorded field stays NUL-terminated within its array; content_length is -1 or
 * a non-negative number; the body is untouched; whenever http_parse_content_range returns true,
 * first <= last < total. http_response_fini releases the response for LeakSanitizer.
 */

#include "tests/fuzz/fuzz.h"
#include "s3/http.h"

static void check_terminated(const char *field, size_t size, const char *what)
{
	check(memchr(field, '\0', size) != NULL, what);
}

static void check_response(const struct http_response *resp)
{
	check_terminated(resp->etag, sizeof(resp->etag), "etag not terminated");
	check_terminated(resp->content_range, sizeof(resp->content_range),
			 "content_range not terminated");
	check_terminated(resp->last_modified, sizeof(resp->last_modified),
			 "last_modified not terminated");
	check_terminated(resp->bucket_region, sizeof(resp->bucket_region),
			 "bucket_region not terminated");
	check_terminated(resp->storage_class, sizeof(resp->storage_class),
			 "storage_class not terminated");
	check_terminated(resp->request_id, sizeof(resp->request_id), "request_id not terminated");
	check(resp->content_length >= -1, "negative content length");
	check(resp->body.len == 0, "a header changed the body");
}

static void check_range(const char *value)
{
	uint64_t first = 0, last = 0, total = 0;

	if (http_parse_content_range(value, &first, &last, &total))
		check(first <= last && last < total, "accepted a range outside its total");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct http_response resp;
	char *copy;

	http_response_init(&resp);
	for (size_t start = 0; start < size;) {
		const char *nl = memchr(in + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - in) + 1 : size;

		http_response_parse_header(&resp, in + start, end - start);
		check_response(&resp);
		start = end;
	}
	check_range(resp.content_range);
	copy = malloc(size + 1);
	if (copy) {
		memcpy(copy, data, size);
		copy[size] = '\0';
		check_range(copy);
	}
	free(copy);
	http_response_fini(&resp);
	return 0;
}
