/*
 * Command-line parsing. See options.h.
 *
 * Each option is described once in `table`; long options (--name value, --name=value) and -o
 * entries (name=value, with '-' or '_' in the name) both go through set_option(). -o entries
 * that are not ours are collected for libfuse, which rejects what it does not know.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum opt_id {
	OPT_PREFIX,
	OPT_REGION,
	OPT_ENDPOINT_URL,
	OPT_FORCE_PATH_STYLE,
	OPT_NO_SIGN_REQUEST,
	OPT_UID,
	OPT_GID,
	OPT_FILE_MODE,
	OPT_DIR_MODE,
	OPT_ALLOW_OTHER,
	OPT_FOREGROUND,
	OPT_DEBUG,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_METADATA_TTL,
	OPT_CACHE_SIZE,
	OPT_READ_AHEAD,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_ATTEMPTS,
	OPT_MAX_RETRY_TIME,
	OPT_STALL_TIMEOUT,
	OPT_LOG_FILE,
	OPT_READY_FILE,
	OPT_METRICS_ADDR,
	OPT_HELP,
	OPT_VERSION,
};

struct opt_desc {
	const char *name; /* long name, with '-' */
	char short_name;  /* 0 if none */
	bool has_value;
	enum opt_id id;
};

static const struct opt_desc table[] = {
	{"prefix", 0, true, OPT_PREFIX},
	{"region", 0, true, OPT_REGION},
	{"endpoint-url", 0, true, OPT_ENDPOINT_URL},
	{"force-path-style", 0, false, OPT_FORCE_PATH_STYLE},
	{"no-sign-request", 0, false, OPT_NO_SIGN_REQUEST},
	{"uid", 0, true, OPT_UID},
	{"gid", 0, true, OPT_GID},
	{"file-mode", 0, true, OPT_FILE_MODE},
	{"dir-mode", 0, true, OPT_DIR_MODE},
	{"allow-other", 0, false, OPT_ALLOW_OTHER},
	{"foreground", 'f', false, OPT_FOREGROUND},
	{"debug", 'd', false, OPT_DEBUG},
	{"log-level", 0, true, OPT_LOG_LEVEL},
	{"log-format", 0, true, OPT_LOG_FORMAT},
	{"metadata-ttl", 0, true, OPT_METADATA_TTL},
	{"cache-size", 0, true, OPT_CACHE_SIZE},
	{"read-ahead", 0, true, OPT_READ_AHEAD},
	{"max-connections", 0, true, OPT_MAX_CONNECTIONS},
	{"max-attempts", 0, true, OPT_MAX_ATTEMPTS},
	{"max-retry-time", 0, true, OPT_MAX_RETRY_TIME},
	{"stall-timeout", 0, true, OPT_STALL_TIMEOUT},
	{"log-file", 0, true, OPT_LOG_FILE},
	{"ready-file", 0, true, OPT_READY_FILE},
	{"metrics-addr", 0, true, OPT_METRICS_ADDR},
	{"help", 'h', false, OPT_HELP},
	{"version", 'V', false, OPT_VERSION},
};

#define NOPTS (sizeof(table) / sizeof(table[0]))

void fs_options_usage(FILE *out)
{
	fputs("Usage: irsafs [OPTIONS] BUCKET MOUNTPOINT\n"
	      "\n"
	      "Mount an S3 bucket (or a prefix of it) read-only at MOUNTPOINT.\n"
	      "\n"
	      "Bucket:\n"
	      "  --prefix PREFIX        mount only the keys under PREFIX (must end in '/')\n"
	      "  --region REGION        bucket region (default: AWS_REGION, AWS_DEFAULT_REGION,\n"
	      "                         else us-east-1)\n"
	      "  --endpoint-url URL     S3 endpoint (default: AWS_ENDPOINT_URL_S3,\n"
	      "                         AWS_ENDPOINT_URL, else https://s3.REGION.amazonaws.com)\n"
	      "  --force-path-style     address the bucket in the path, not the host name\n"
	      "  --no-sign-request      send unsigned requests (public buckets)\n"
	      "\n"
	      "Files:\n"
	      "  --uid N, --gid N       owner of every file (default: the mounting user)\n"
	      "  --file-mode MODE       permission bits of files, octal (default 0444)\n"
	      "  --dir-mode MODE        permission bits of directories, octal (default 0555)\n"
	      "  --allow-other          let other users access the mount\n"
	      "  --metadata-ttl SECS    how long listings and attributes are trusted, or\n"
	      "                         'indefinite' for data that never changes (default 60)\n"
	      "\n"
	      "Reading:\n"
	      "  --cache-size SIZE      memory for object data, prefetch included: a number with\n"
	      "                         an optional K, M or G suffix (default 256M, at least 16M)\n"
	      "  --read-ahead SIZE      the kernel's read-ahead, hence its largest read request\n"
	      "                         (default 1M; 0 keeps the kernel's 128K; needs a\n"
	      "                         writable /sys)\n"
	      "  --max-connections N    parallel requests to S3 (default 16)\n"
	      "  --max-attempts N       tries per S3 request, retries included (default:\n"
	      "                         AWS_MAX_ATTEMPTS, else 6)\n"
	      "  --max-retry-time SECS  no retry starts later than this after the first try\n"
	      "                         (default 30); then the read fails with EIO\n"
	      "  --stall-timeout SECS   a transfer that moves no byte for this long is cut and\n"
	      "                         retried (default 10)\n"
	      "\n"
	      "Process:\n"
	      "  -f, --foreground       stay in the foreground, log to stderr\n"
	      "  -d, --debug            log at debug level (same as --log-level debug)\n"
	      "  --log-level LEVEL      error, warn, info (default), debug or trace\n"
	      "  --log-format FORMAT    text (default) or json: one object per line\n"
	      "  --log-file PATH        append the log to PATH (default: stderr in the\n"
	      "                         foreground, syslog as a daemon)\n"
	      "  --ready-file PATH      create PATH once the mount is live, remove it at exit\n"
	      "                         (for readiness probes)\n"
	      "  --metrics-addr ADDR    serve Prometheus metrics at http://ADDR/metrics;\n"
	      "                         ADDR is [HOST:]PORT, HOST 127.0.0.1 unless given (off)\n"
	      "                         SIGUSR1 logs a one-line summary of them\n"
	      "  -o OPT[=VAL],...       any option above by name (e.g. -o prefix=data/,allow_other),\n"
	      "                         or a FUSE mount option\n"
	      "  -h, --help             show this help\n"
	      "  -V, --version          show the version\n"
	      "\n"
	      "Credentials come from the AWS chain, in this order: AWS_ACCESS_KEY_ID and\n"
	      "AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); web identity (IRSA: AWS_ROLE_ARN and\n"
	      "AWS_WEB_IDENTITY_TOKEN_FILE); container credentials (EKS Pod Identity, ECS);\n"
	      "the EC2 instance role (IMDSv2). They are renewed before they expire.\n"
	      "AWS_CA_BUNDLE names a CA file for https endpoints.\n",
	      out);
}

static bool fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

static bool parse_id(const char *v, uint32_t *out)
{
	char *end;
	unsigned long n;

	if (!*v || !isdigit((unsigned char)*v))
		return false;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n >= UINT32_MAX)
		return false;
	*out = (uint32_t)n;
	return true;
}

static bool parse_mode(const char *v, mode_t *out)
{
	char *end;
	unsigned long n;

	if (!*v || strlen(v) > 5)
		return false;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '7')
			return false;
	}
	n = strtoul(v, &end, 8);
	if (*end || n > 0777)
		return false;
	*out = (mode_t)n;
	return true;
}

static bool parse_ttl(const char *v, int64_t *out)
{
	char *end;
	double s;

	if (strcmp(v, "indefinite") == 0) {
		*out = -1;
		return true;
	}
	if (!*v || !(isdigit((unsigned char)*v) || *v == '.'))
		return false;
	errno = 0;
	s = strtod(v, &end);
	if (errno || *end || !isfinite(s) || s < 0 || s > 1e9)
		return false;
	*out = (int64_t)(s * 1000.0);
	return true;
}

/* "256M", "1G", "65536", "512MiB": bytes, with binary multiples. */
static bool parse_size(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long n;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*v))
		return false;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		return false;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	default:
		return false;
	}
	if (shift) {
		end++;
		if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0)
			end += strlen(end);
	}
	if (*end || n > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)n << shift;
	return true;
}

static bool replace(char **field, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return false;
	free(*field);
	*field = copy;
	return true;
}

static bool set_option(struct fs_options *o, const struct opt_desc *d, const char *v, char *err,
		       size_t errlen)
{
	uint32_t id;

	switch (d->id) {
	case OPT_PREFIX:
		if (*v && v[strlen(v) - 1] != '/')
			return fail(err, errlen, "--prefix '%s' must end with '/' (try '%s/')", v, v);
		if (*v == '/')
			return fail(err, errlen,
				    "--prefix '%s' starts with '/': S3 keys usually do not; give "
				    "it without the leading '/'",
				    v);
		if (strlen(v) > 1024)
			return fail(err, errlen, "--prefix is longer than S3's 1024-byte key limit");
		return replace(&o->prefix, v) || fail(err, errlen, "out of memory");
	case OPT_REGION:
		if (!*v)
			return fail(err, errlen, "--region needs a region name such as us-east-1");
		return replace(&o->region, v) || fail(err, errlen, "out of memory");
	case OPT_ENDPOINT_URL:
		if (!*v)
			return fail(err, errlen, "--endpoint-url needs a URL");
		return replace(&o->endpoint_url, v) || fail(err, errlen, "out of memory");
	case OPT_FORCE_PATH_STYLE:
		o->force_path_style = true;
		return true;
	case OPT_NO_SIGN_REQUEST:
		o->no_sign_request = true;
		return true;
	case OPT_UID:
	case OPT_GID:
		if (!parse_id(v, &id))
			return fail(err, errlen, "--%s '%s' is not a numeric id", d->name, v);
		if (d->id == OPT_UID) {
			o->uid = id;
			o->uid_set = true;
		} else {
			o->gid = id;
			o->gid_set = true;
		}
		return true;
	case OPT_FILE_MODE:
	case OPT_DIR_MODE:
		if (!parse_mode(v, d->id == OPT_FILE_MODE ? &o->file_mode : &o->dir_mode))
			return fail(err, errlen,
				    "--%s '%s' is not an octal permission mode such as 0444", d->name,
				    v);
		return true;
	case OPT_ALLOW_OTHER:
		o->allow_other = true;
		return true;
	case OPT_FOREGROUND:
		o->foreground = true;
		return true;
	case OPT_DEBUG:
		o->log_level = LOG_LEVEL_DEBUG;
		return true;
	case OPT_LOG_LEVEL:
		if (!log_parse_level(v, &o->log_level))
			return fail(err, errlen,
				    "--log-level '%s' is not one of error, warn, info, debug, trace",
				    v);
		return true;
	case OPT_LOG_FORMAT:
		if (!log_parse_format(v, &o->log_format))
			return fail(err, errlen, "--log-format '%s' is not text or json", v);
		return true;
	case OPT_METADATA_TTL:
		if (!parse_ttl(v, &o->metadata_ttl_ms))
			return fail(err, errlen,
				    "--metadata-ttl '%s' is not a number of seconds or 'indefinite'",
				    v);
		return true;
	case OPT_CACHE_SIZE:
		if (!parse_size(v, &o->cache_size))
			return fail(err, errlen,
				    "--cache-size '%s' is not a size such as 512M or 2G", v);
		if (o->cache_size < FS_MIN_CACHE_SIZE)
			return fail(err, errlen, "--cache-size '%s' is below the minimum of 16M", v);
		return true;
	case OPT_READ_AHEAD:
		if (!parse_size(v, &o->read_ahead))
			return fail(err, errlen,
				    "--read-ahead '%s' is not a size such as 1M or 512K", v);
		if (o->read_ahead > FS_MAX_READ_AHEAD)
			return fail(err, errlen, "--read-ahead '%s' is above the maximum of 16M", v);
		o->read_ahead_set = true;
		return true;
	case OPT_MAX_CONNECTIONS:
		if (!parse_id(v, &id) || id < 1 || id > 256)
			return fail(err, errlen, "--max-connections '%s' is not a number from 1 to 256",
				    v);
		o->max_connections = id;
		return true;
	case OPT_MAX_ATTEMPTS:
		if (!parse_id(v, &id) || id < 1 || id > 100)
			return fail(err, errlen, "--max-attempts '%s' is not a number from 1 to 100", v);
		o->max_attempts = id;
		return true;
	case OPT_MAX_RETRY_TIME:
		if (!parse_ttl(v, &o->max_retry_ms) || o->max_retry_ms < 0 ||
		    o->max_retry_ms > 3600 * 1000)
			return fail(err, errlen,
				    "--max-retry-time '%s' is not a number of seconds up to 3600", v);
		if (o->max_retry_ms == 0)
			o->max_retry_ms = 1;
		return true;
	case OPT_STALL_TIMEOUT:
		if (!parse_id(v, &id) || id < 1 || id > 3600)
			return fail(err, errlen,
				    "--stall-timeout '%s' is not a number of seconds from 1 to 3600", v);
		o->stall_timeout_s = id;
		return true;
	case OPT_LOG_FILE:
	case OPT_READY_FILE:
		if (!*v)
			return fail(err, errlen, "--%s needs a path", d->name);
		return replace(d->id == OPT_LOG_FILE ? &o->log_file : &o->ready_file, v) ||
		       fail(err, errlen, "out of memory");
	case OPT_METRICS_ADDR: {
		const char *port = strrchr(v, ':') ? strrchr(v, ':') + 1 : v;

		if (!parse_id(port, &id) || id > 65535)
			return fail(err, errlen,
				    "--metrics-addr '%s' is not [HOST:]PORT (e.g. 9100 or "
				    "0.0.0.0:9100)",
				    v);
		return replace(&o->metrics_addr, v) || fail(err, errlen, "out of memory");
	}
	case OPT_HELP:
		o->help = true;
		return true;
	case OPT_VERSION:
		o->version = true;
		return true;
	}
	return fail(err, errlen, "internal: unhandled option");
}

/* Finds a table entry by name, treating '_' as '-' (fstab style). */
static const struct opt_desc *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const char *n = table[i].name;
		size_t k;

		if (strlen(n) != len)
			continue;
		for (k = 0; k < len; k++) {
			char c = name[k] == '_' ? '-' : name[k];

			if (c != n[k])
				break;
		}
		if (k == len)
			return &table[i];
	}
	return NULL;
}

static bool append_fuse_option(struct fs_options *o, const char *opt, size_t len)
{
	size_t old = o->fuse_options ? strlen(o->fuse_options) : 0;
	char *p = realloc(o->fuse_options, old + len + 2);

	if (!p)
		return false;
	if (old)
		p[old++] = ',';
	memcpy(p + old, opt, len);
	p[old + len] = '\0';
	o->fuse_options = p;
	return true;
}

/* Handles one -o list: "a=b,c,d=e". A '\,' is a literal comma inside a value. */
static bool parse_o(struct fs_options *o, const char *list, char *err, size_t errlen)
{
	char *copy = strdup(list), *item, *next;
	bool ok = true;

	if (!copy)
		return fail(err, errlen, "out of memory");
	for (item = copy; ok && item; item = next) {
		char *w = item, *eq;
		const struct opt_desc *d;
		size_t name_len;

		/* Find the end of this item, unescaping "\," as we go. */
		next = NULL;
		for (char *r = item; *r; r++) {
			if (r[0] == '\\' && r[1] == ',') {
				*w++ = ',';
				r++;
			} else if (*r == ',') {
				next = r + 1;
				break;
			} else {
				*w++ = *r;
			}
		}
		*w = '\0';
		if (!*item)
			continue;
		eq = strchr(item, '=');
		name_len = eq ? (size_t)(eq - item) : strlen(item);
		d = find_long(item, name_len);
		if (!d) {
			/* The mount is read-only whatever mount(8) or fstab says. */
			if (strcmp(item, "rw") == 0 || strcmp(item, "ro") == 0)
				continue;
			ok = append_fuse_option(o, item, strlen(item)) ||
			     fail(err, errlen, "out of memory");
		} else if (d->has_value && !eq) {
			ok = fail(err, errlen, "-o %s needs a value (%s=...)", item, item);
		} else if (!d->has_value && eq) {
			ok = fail(err, errlen, "-o %.*s takes no value", (int)name_len, item);
		} else {
			ok = set_option(o, d, eq ? eq + 1 : NULL, err, errlen);
		}
	}
	free(copy);
	return ok;
}

bool fs_options_parse(int argc, char **argv, struct fs_options *o, char *err, size_t errlen)
{
	const char *positional[2];
	int npositional = 0;
	bool only_positional = false;

	memset(o, 0, sizeof(*o));
	o->file_mode = 0444;
	o->dir_mode = 0555;
	o->log_level = LOG_LEVEL_INFO;
	o->metadata_ttl_ms = 60 * 1000;
	o->cache_size = FS_DEFAULT_CACHE_SIZE;
	o->max_connections = FS_DEFAULT_MAX_CONNECTIONS;
	o->read_ahead = FS_DEFAULT_READ_AHEAD;
	o->prefix = strdup("");
	if (!o->prefix)
		return fail(err, errlen, "out of memory");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct opt_desc *d = NULL;
		const char *value = NULL;

		if (only_positional || a[0] != '-' || a[1] == '\0') {
			if (npositional == 2)
				return fail(err, errlen, "unexpected argument '%s'", a);
			positional[npositional++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_positional = true;
			continue;
		}
		if (strncmp(a, "-o", 2) == 0) {
			const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);

			if (!list)
				return fail(err, errlen, "-o needs a list of options");
			if (!parse_o(o, list, err, errlen))
				return false;
			continue;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

			for (size_t k = 0; k < NOPTS; k++) {
				if (strlen(table[k].name) == len &&
				    strncmp(table[k].name, a + 2, len) == 0)
					d = &table[k];
			}
			if (!d)
				return fail(err, errlen, "unknown option '%.*s'", (int)len + 2, a);
			if (eq && !d->has_value)
				return fail(err, errlen, "option '--%s' takes no value", d->name);
			value = eq ? eq + 1 : NULL;
		} else {
			for (size_t k = 0; k < NOPTS; k++) {
				if (table[k].short_name && table[k].short_name == a[1] && !a[2])
					d = &table[k];
			}
			if (!d)
				return fail(err, errlen, "unknown option '%s'", a);
		}
		if (d->has_value && !value) {
			if (i + 1 >= argc)
				return fail(err, errlen, "option '--%s' needs a value", d->name);
			value = argv[++i];
		}
		if (!set_option(o, d, value, err, errlen))
			return false;
	}
	if (o->help || o->version)
		return true;
	if (npositional < 2)
		return fail(err, errlen, "%s", npositional == 0 ? "missing BUCKET and MOUNTPOINT"
								: "missing MOUNTPOINT");
	if (strncmp(positional[0], "s3://", 5) == 0)
		return fail(err, errlen,
			    "give the bucket name without 's3://' (and a key prefix with --prefix)");
	o->bucket = strdup(positional[0]);
	o->mountpoint = strdup(positional[1]);
	if (!o->bucket || !o->mountpoint)
		return fail(err, errlen, "out of memory");
	return true;
}

static bool from_env(char **field, const char *first, const char *second)
{
	const char *v = getenv(first);

	if ((!v || !*v) && second)
		v = getenv(second);
	if (*field || !v || !*v)
		return true;
	return replace(field, v);
}

bool fs_options_apply_env(struct fs_options *o, char *err, size_t errlen)
{
	const char *attempts = getenv("AWS_MAX_ATTEMPTS");
	uint32_t n;

	if (!from_env(&o->region, "AWS_REGION", "AWS_DEFAULT_REGION") ||
	    !from_env(&o->endpoint_url, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") ||
	    !from_env(&o->ca_bundle, "AWS_CA_BUNDLE", NULL) ||
	    (!o->region && !replace(&o->region, "us-east-1")))
		return fail(err, errlen, "out of memory");
	if (!o->max_attempts && attempts && *attempts) {
		if (!parse_id(attempts, &n) || n < 1 || n > 100)
			return fail(err, errlen, "AWS_MAX_ATTEMPTS '%s' is not a number from 1 to 100",
				    attempts);
		o->max_attempts = n;
	}
	return true;
}

void fs_options_fini(struct fs_options *o)
{
	free(o->bucket);
	free(o->mountpoint);
	free(o->prefix);
	free(o->region);
	free(o->endpoint_url);
	free(o->ca_bundle);
	free(o->fuse_options);
	free(o->log_file);
	free(o->ready_file);
	free(o->metrics_addr);
	memset(o, 0, sizeof(*o));
}
