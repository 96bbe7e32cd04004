/*
 * Fuzzes the name rules, percent-encoding and SigV4's canonical path, the code every key from a
 * listing or a lookup goes through.
 *
 * Input: raw bytes, used as a name component, as a key to encode, as text to decode and as a
 * path to canonicalise.
 *
 * Checks: fs_utf8_valid agrees with an independent decoder written from Unicode's table of
 * well-formed sequences; fs_name_check accepts exactly the valid names and gives a reason that
 * holds when it refuses; uri_encode emits only unreserved characters, '%XX' (and '/' when kept)
 * and uri_decode of its output gives back exactly the input, with plus_is_space either way;
 * uri_decode of the raw input never grows it; sigv4_canonical_path without normalising is
 * uri_encode keeping '/', and with normalising starts with '/', has no empty, "." or ".."
 * segment, and is a fixed point. Buffers are freed for LeakSanitizer.
 */

#include "tests/fuzz/fuzz.h"
#include "fs/names.h"
#include "s3/buf.h"
#include "s3/sigv4.h"
#include "s3/uri.h"

/* UTF-8 by Table 3-7 of the Unicode Standard: the allowed range of each byte of a sequence. */
static bool reference_utf8(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i], lo = 0x80, hi = 0xBF;
		size_t n;

		if (c <= 0x7F) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c == 0xE0 || c == 0xED || (c >= 0xE1 && c <= 0xEF))
			n = 2;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3;
		else
			return false;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
		else if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		if (len - i <= n || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return false;
		}
		i += n + 1;
	}
	return true;
}

static void check_name(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	bool utf8 = fs_utf8_valid(s, size);
	bool empty = size == 0;
	bool dot = (size == 1 && s[0] == '.') || (size == 2 && s[0] == '.' && s[1] == '.');
	bool nul = memchr(s, '\0', size) != NULL;
	bool long_name = size > FS_NAME_MAX;

	check(utf8 == reference_utf8(data, size), "fs_utf8_valid disagrees with Unicode");
	switch (fs_name_check(s, size)) {
	case FS_NAME_OK:
		check(!empty && !dot && !nul && !long_name && utf8, "accepted an invalid name");
		break;
	case FS_NAME_EMPTY:
		check(empty, "refused as empty");
		break;
	case FS_NAME_DOT:
		check(dot, "refused as a dot");
		break;
	case FS_NAME_TOO_LONG:
		check(long_name, "refused as too long");
		break;
	case FS_NAME_NUL:
		check(nul, "refused for a NUL");
		break;
	case FS_NAME_BAD_UTF8:
		check(!utf8, "refused as bad UTF-8");
		break;
	}
}

static bool unreserved(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static bool upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool same(const struct buf *b, const void *data, size_t size)
{
	return b->len == size && (size == 0 || memcmp(b->data, data, size) == 0);
}

static void check_uri(const uint8_t *data, size_t size, bool keep_slash)
{
	struct buf enc, dec;

	buf_init(&enc);
	buf_init(&dec);
	if (!uri_encode(&enc, (const char *)data, size, keep_slash))
		goto out;
	for (size_t i = 0; i < enc.len; i++) {
		char c = enc.data[i];

		if (c == '%') {
			check(i + 2 < enc.len && upper_hex(enc.data[i + 1]) &&
				  upper_hex(enc.data[i + 2]),
			      "a bad escape in encoded output");
			i += 2;
		} else {
			check(unreserved(c) || (keep_slash && c == '/'),
			      "a reserved character left unencoded");
		}
	}
	check(uri_decode(&dec, enc.data, enc.len, false) && same(&dec, data, size),
	      "decode(encode(x)) != x");
	buf_reset(&dec);
	check(uri_decode(&dec, enc.data, enc.len, true) && same(&dec, data, size),
	      "decode(encode(x)) != x with plus_is_space");
out:
	buf_fini(&enc);
	buf_fini(&dec);
}

static void check_decode_raw(const uint8_t *data, size_t size, bool plus_is_space)
{
	struct buf dec;

	buf_init(&dec);
	if (uri_decode(&dec, (const char *)data, size, plus_is_space))
		check(dec.len <= size, "decoding made the text longer");
	buf_fini(&dec);
}

static void check_canonical_path(const uint8_t *data, size_t size)
{
	struct buf raw, enc, norm, again, dec;
	const char *p;

	buf_init(&raw);
	buf_init(&enc);
	buf_init(&norm);
	buf_init(&again);
	buf_init(&dec);
	if (!sigv4_canonical_path(&raw, (const char *)data, size, false) ||
	    !uri_encode(&enc, (const char *)data, size, true) ||
	    !sigv4_canonical_path(&norm, (const char *)data, size, true))
		goto out;
	check(size == 0 ? same(&raw, "/", 1) : same(&raw, enc.data, enc.len),
	      "the S3 canonical path is not the path encoded once");
	check(norm.len >= 1 && norm.data[0] == '/', "normalised path without a leading '/'");
	p = norm.data;
	check(!strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../"),
	      "an empty, '.' or '..' segment survived normalising");
	check(!(norm.len >= 2 && strcmp(p + norm.len - 2, "/.") == 0) &&
		  !(norm.len >= 3 && strcmp(p + norm.len - 3, "/..") == 0),
	      "a trailing '.' or '..' segment survived normalising");
	if (!uri_decode(&dec, norm.data, norm.len, false) ||
	    !sigv4_canonical_path(&again, dec.data, dec.len, true))
		goto out;
	check(same(&again, norm.data, norm.len), "normalising is not idempotent");
out:
	buf_fini(&raw);
	buf_fini(&enc);
	buf_fini(&norm);
	buf_fini(&again);
	buf_fini(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_name(data, size);
	check_uri(data, size, false);
	check_uri(data, size, true);
	check_decode_raw(data, size, false);
	check_decode_raw(data, size, true);
	check_canonical_path(data, size);
	return 0;
}
