/*
 * Name rules. See names.h.
 */
#include "names.h"

#include <string.h>

bool fs_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

enum fs_name_verdict fs_name_check(const char *name, size_t len)
{
	if (len == 0)
		return FS_NAME_EMPTY;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return FS_NAME_DOT;
	if (len > FS_NAME_MAX)
		return FS_NAME_TOO_LONG;
	if (memchr(name, '\0', len))
		return FS_NAME_NUL;
	if (!fs_utf8_valid(name, len))
		return FS_NAME_BAD_UTF8;
	return FS_NAME_OK;
}

const char *fs_name_verdict_text(enum fs_name_verdict verdict)
{
	switch (verdict) {
	case FS_NAME_OK:
		return "valid";
	case FS_NAME_EMPTY:
		return "empty path component";
	case FS_NAME_DOT:
		return "'.' or '..' component";
	case FS_NAME_TOO_LONG:
		return "component longer than 255 bytes";
	case FS_NAME_NUL:
		return "NUL byte";
	case FS_NAME_BAD_UTF8:
		return "invalid UTF-8";
	}
	return "invalid";
}
