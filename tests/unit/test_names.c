/*
 * Name rules: which key components can be file names.
 */
#include <string.h>

#include "fs/names.h"
#include "harness.h"

static void test_verdicts(void)
{
	char long_name[300];
	static const struct {
		const char *name;
		size_t len;
		enum fs_name_verdict want;
	} cases[] = {
		{"file.txt", 8, FS_NAME_OK},
		{"with space", 10, FS_NAME_OK},
		{"+%?#&=~'\"[]*$\\:", 15, FS_NAME_OK},
		{"\xC3\xA9t\xC3\xA9", 5, FS_NAME_OK},
		{"\xF0\x9F\x98\x80", 4, FS_NAME_OK},
		{"...", 3, FS_NAME_OK},
		{".hidden", 7, FS_NAME_OK},
		{"", 0, FS_NAME_EMPTY},
		{".", 1, FS_NAME_DOT},
		{"..", 2, FS_NAME_DOT},
		{"a\0b", 3, FS_NAME_NUL},
		{"\xFF", 1, FS_NAME_BAD_UTF8},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum fs_name_verdict v = fs_name_check(cases[i].name, cases[i].len);

		CHECK(v == cases[i].want, "case %zu: got %s, want %s", i, fs_name_verdict_text(v),
		      fs_name_verdict_text(cases[i].want));
	}
	memset(long_name, 'n', sizeof(long_name));
	CHECK(fs_name_check(long_name, 255) == FS_NAME_OK, "255 bytes is allowed");
	CHECK(fs_name_check(long_name, 256) == FS_NAME_TOO_LONG, "256 bytes is too long");
}

static void test_utf8(void)
{
	static const struct {
		const char *s;
		bool valid;
	} cases[] = {
		{"ascii", true},
		{"\xC2\x80", true},                  /* U+0080 */
		{"\xDF\xBF", true},                  /* U+07FF */
		{"\xE0\xA0\x80", true},              /* U+0800 */
		{"\xEF\xBF\xBF", true},              /* U+FFFF */
		{"\xF0\x90\x80\x80", true},          /* U+10000 */
		{"\xF4\x8F\xBF\xBF", true},          /* U+10FFFF */
		{"\xC0\x80", false},                 /* overlong NUL */
		{"\xC1\xBF", false},                 /* overlong */
		{"\xE0\x80\x80", false},             /* overlong */
		{"\xF0\x80\x80\x80", false},         /* overlong */
		{"\xED\xA0\x80", false},             /* surrogate U+D800 */
		{"\xF4\x90\x80\x80", false},         /* U+110000 */
		{"\xF5\x80\x80\x80", false},         /* lead byte past F4 */
		{"\x80", false},                     /* stray continuation */
		{"\xE2\x82", false},                 /* truncated */
		{"\xE2\x28\xA1", false},             /* bad continuation */
		{"ok\xF0\x9F\x98", false},           /* truncated at the end */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(fs_utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].valid,
		      "utf8 case %zu should be %s", i, cases[i].valid ? "valid" : "invalid");
}

int main(void)
{
	test_verdicts();
	test_utf8();
	return harness_report("test_names");
}
