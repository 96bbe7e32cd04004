/*
 * Timestamp parsing. See date.h. Days are counted with the civil-from-days algorithm so that
 * no libc time zone state is involved.
 */
#include "date.h"

#include <ctype.h>
#include <string.h>

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool valid_civil(int y, int mo, int d, int h, int mi, int s)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && leap))
		return false;
	return h <= 23 && mi <= 59 && s <= 59;
}

bool date_parse_iso8601(const char *s, int64_t *sec, uint32_t *nsec)
{
	int y, mo, d, h, mi, se;
	uint32_t frac = 0;
	const char *p;

	if (!s || strlen(s) < 20)
		return false;
	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
		return false;
	p = s + 19;
	if (*p == '.') {
		int n = 0;
		uint32_t scale = 100000000;

		for (p++; isdigit((unsigned char)*p); p++, n++) {
			frac += (uint32_t)(*p - '0') * scale;
			scale /= 10;
		}
		if (n == 0 || n > 9)
			return false;
	}
	if (!(strcmp(p, "Z") == 0 || strcmp(p, "z") == 0 || strcmp(p, "+00:00") == 0))
		return false;
	if (!valid_civil(y, mo, d, h, mi, se))
		return false;
	*sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
	if (nsec)
		*nsec = frac;
	return true;
}

bool date_parse_http(const char *s, int64_t *sec)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int d, y, h, mi, se, mo = 0;

	/* "Sun, 29 Nov 2026 07:35:24 GMT" */
	if (!s || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || !digits(s + 5, 2, &d) ||
	    s[7] != ' ' || s[11] != ' ' || !digits(s + 12, 4, &y) || s[16] != ' ' ||
	    !digits(s + 17, 2, &h) || s[19] != ':' || !digits(s + 20, 2, &mi) || s[22] != ':' ||
	    !digits(s + 23, 2, &se) || strcmp(s + 25, " GMT") != 0)
		return false;
	for (int i = 0; i < 12; i++) {
		if (strncmp(s + 8, months + 3 * i, 3) == 0)
			mo = i + 1;
	}
	if (!mo || !valid_civil(y, mo, d, h, mi, se))
		return false;
	*sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
	return true;
}
