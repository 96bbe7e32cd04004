/*
 * Percent-encoding: every byte value, both slash modes, and decoding (strict escapes, '+').
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "s3/uri.h"

static bool unreserved(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void test_every_byte(void)
{
	for (int c = 0; c < 256; c++) {
		char in = (char)c, want[4];
		struct buf slash, noslash, back;

		buf_init(&slash);
		buf_init(&noslash);
		buf_init(&back);
		if (unreserved(c))
			snprintf(want, sizeof(want), "%c", c);
		else
			snprintf(want, sizeof(want), "%%%02X", c);
		CHECK(uri_encode(&noslash, &in, 1, false), "encode byte %d", c);
		CHECK_STR(noslash.data, want, "byte %d without keep_slash", c);
		CHECK(uri_encode(&slash, &in, 1, true), "encode byte %d", c);
		CHECK_STR(slash.data, c == '/' ? "/" : want, "byte %d with keep_slash", c);
		CHECK(uri_decode(&back, noslash.data, noslash.len, false) && back.len == 1 &&
			      (unsigned char)back.data[0] == c,
		      "byte %d round-trips", c);
		buf_fini(&slash);
		buf_fini(&noslash);
		buf_fini(&back);
	}
}

static void test_strings(void)
{
	static const struct {
		const char *in;
		bool keep_slash;
		const char *want;
	} cases[] = {
		{"a b", true, "a%20b"},
		{"a+b", true, "a%2Bb"},
		{"dir/sub dir/file.txt", true, "dir/sub%20dir/file.txt"},
		{"dir/sub dir/file.txt", false, "dir%2Fsub%20dir%2Ffile.txt"},
		{"100%", true, "100%25"},
		{"\xC3\xA9t\xC3\xA9", true, "%C3%A9t%C3%A9"},
		{"\xF0\x9F\x92\xA9", true, "%F0%9F%92%A9"},
		{"?#&=*$:\\'\"[]", true, "%3F%23%26%3D%2A%24%3A%5C%27%22%5B%5D"},
		{"", true, ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		buf_init(&b);
		buf_append(&b, "", 0);
		CHECK(uri_encode(&b, cases[i].in, strlen(cases[i].in), cases[i].keep_slash),
		      "encode %zu", i);
		CHECK_STR(b.data, cases[i].want, "encoding of '%s'", cases[i].in);
		buf_fini(&b);
	}
}

static void test_nul_byte(void)
{
	struct buf b;

	buf_init(&b);
	CHECK(uri_encode(&b, "a\0b", 3, true), "encode with NUL");
	CHECK_STR(b.data, "a%00b", "NUL is encoded");
	buf_reset(&b);
	CHECK(uri_decode(&b, "a%00b", 5, false) && b.len == 3 && memcmp(b.data, "a\0b", 3) == 0,
	      "NUL decodes with its length");
	buf_fini(&b);
}

static void test_decode(void)
{
	static const struct {
		const char *in;
		bool plus;
		bool ok;
		const char *want;
	} cases[] = {
		{"a+b", true, true, "a b"},
		{"a+b", false, true, "a+b"},
		{"a%2Bb", true, true, "a+b"},
		{"%e2%82%ac", true, true, "\xE2\x82\xAC"},
		{"%E2%82%AC", true, true, "\xE2\x82\xAC"},
		{"photos/2006/February/sample+1.jpg", true, true, "photos/2006/February/sample 1.jpg"},
		{"100%", true, false, NULL},
		{"%4", true, false, NULL},
		{"%G0", true, false, NULL},
		{"%%", true, false, NULL},
		{"", true, true, ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		bool ok;

		buf_init(&b);
		buf_append(&b, "", 0);
		ok = uri_decode(&b, cases[i].in, strlen(cases[i].in), cases[i].plus);
		CHECK(ok == cases[i].ok, "decode of '%s' %s", cases[i].in,
		      cases[i].ok ? "succeeds" : "fails");
		if (ok && cases[i].ok)
			CHECK_STR(b.data, cases[i].want, "decoding of '%s'", cases[i].in);
		buf_fini(&b);
	}
}

int main(void)
{
	test_every_byte();
	test_strings();
	test_nul_byte();
	test_decode();
	return harness_report("test_uri");
}
