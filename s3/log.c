/*
 * Logging: a global level and format, a sink (stderr, syslog or a file), and rate limiting of
 * repeated warnings and errors. See log.h.
 *
 * Rate limiting keeps a small table of recent warning/error message keys (the message or format
 * string's address: they are literals) with the start of their minute and a count; `limit_lock`
 * guards it. Only warnings and errors take the lock, never the read path's debug lines.
 */
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define LIMIT_SLOTS 64
#define LIMIT_WINDOW_S 60

static atomic_int current_level = LOG_LEVEL_INFO;
static enum log_format format = LOG_FORMAT_TEXT;
static bool to_syslog;
static FILE *to_file;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

struct limit_slot {
	const void *key;
	time_t window_start;
	unsigned count;      /* messages of this key in the window */
	unsigned suppressed; /* beyond LOG_BURST */
};

static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct limit_slot limits[LIMIT_SLOTS]; /* protected by limit_lock */

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&current_level, memory_order_relaxed);
}

bool log_parse_level(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return true;
	}
	return false;
}

bool log_parse_format(const char *name, enum log_format *out)
{
	if (strcmp(name, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(name, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return false;
	return true;
}

void log_set_format(enum log_format f)
{
	format = f;
}

void log_use_syslog(bool on)
{
	if (on && !to_syslog)
		openlog("irsafs", LOG_PID, LOG_DAEMON);
	to_syslog = on;
}

bool log_use_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	to_file = f;
	return true;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

/* Decides whether a warning or error may be written; *suppressed receives how many of the same
 * were dropped in the window that just ended, to be reported with this one. */
static bool allowed(enum log_level level, const void *key, unsigned *suppressed)
{
	size_t h = ((uintptr_t)key >> 3) % LIMIT_SLOTS;
	time_t now = time(NULL);
	struct limit_slot *slot;
	bool ok;

	*suppressed = 0;
	if (level > LOG_LEVEL_WARN)
		return true;
	pthread_mutex_lock(&limit_lock);
	slot = &limits[h];
	if (slot->key != key || now - slot->window_start >= LIMIT_WINDOW_S) {
		*suppressed = slot->key == key ? slot->suppressed : 0;
		*slot = (struct limit_slot){key, now, 0, 0};
	}
	ok = ++slot->count <= LOG_BURST;
	if (!ok)
		slot->suppressed++;
	pthread_mutex_unlock(&limit_lock);
	return ok;
}

/* A value as text: bare when plain, else quoted with '"' and '\' escaped. Control bytes become
 * spaces, so a line stays one harmless line whatever a key name holds. */
static void text_value(struct buf *b, const char *v)
{
	bool quote = !*v || strpbrk(v, " \"=\\") != NULL;

	if (quote)
		buf_append_char(b, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, *p < 0x20 || *p == 0x7f ? ' ' : (char)*p);
	}
	if (quote)
		buf_append_char(b, '"');
}

/* Length of the valid UTF-8 sequence at p (no overlong forms or surrogates), or 0. */
static size_t utf8_length(const unsigned char *p)
{
	unsigned cp;
	size_t n;

	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 2;
		cp = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		n = 3;
		cp = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD. */
static void json_string(struct buf *b, const char *v)
{
	buf_append_char(b, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p;) {
		size_t n;

		if (*p == '"' || *p == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)*p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			buf_appendf(b, "\\u%04x", *p++);
		} else if (*p < 0x80) {
			buf_append_char(b, (char)*p++);
		} else if ((n = utf8_length(p)) != 0) {
			buf_append(b, p, n);
			p += n;
		} else {
			buf_append_str(b, "\\ufffd");
			p++;
		}
	}
	buf_append_char(b, '"');
}

static void emit(enum log_level level, const char *component, const char *message,
		 const struct log_field *fields, size_t nfields, unsigned suppressed)
{
	static const int syslog_priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};
	char when[40], count[16];
	struct timespec ts;
	struct tm tm;
	struct buf b;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ",
		 ts.tv_nsec / 1000000);
	snprintf(count, sizeof(count), "%u", suppressed);
	buf_init(&b);
	buf_set_limit(&b, 16384);
	if (format == LOG_FORMAT_JSON) {
		buf_appendf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", when,
			    level_names[level]);
		json_string(&b, component);
		buf_appendf(&b, ",\"pid\":%ld,\"msg\":", (long)getpid());
		json_string(&b, message);
		for (size_t i = 0; i < nfields; i++) {
			buf_append_char(&b, ',');
			json_string(&b, fields[i].key);
			buf_append_char(&b, ':');
			json_string(&b, fields[i].value ? fields[i].value : "");
		}
		if (suppressed)
			buf_appendf(&b, ",\"suppressed_before\":%u", suppressed);
		buf_append_char(&b, '}');
	} else {
		for (const char *p = message; *p; p++)
			buf_append_char(&b, (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p);
		for (size_t i = 0; i < nfields; i++) {
			buf_appendf(&b, " %s=", fields[i].key);
			text_value(&b, fields[i].value ? fields[i].value : "");
		}
		if (suppressed)
			buf_appendf(&b, " suppressed_before=%s", count);
	}
	if (!b.data)
		return;
	if (format == LOG_FORMAT_JSON && !to_syslog && !to_file)
		fprintf(stderr, "%s\n", b.data);
	else if (to_file && format == LOG_FORMAT_JSON)
		fprintf(to_file, "%s\n", b.data);
	else if (to_file)
		fprintf(to_file, "%s irsafs[%ld] %s %s: %s\n", when, (long)getpid(),
			level_names[level], component, b.data);
	else if (to_syslog && format == LOG_FORMAT_JSON)
		syslog(syslog_priority[level], "%s", b.data);
	else if (to_syslog)
		syslog(syslog_priority[level], "%s %s: %s", level_names[level], component, b.data);
	else
		fprintf(stderr, "irsafs[%ld] %s %s: %s\n", (long)getpid(), level_names[level],
			component, b.data);
	buf_fini(&b);
}

void log_event(enum log_level level, const char *component, const char *message,
	       const struct log_field *fields, size_t nfields)
{
	unsigned suppressed;

	if (log_enabled(level) && allowed(level, message, &suppressed))
		emit(level, component, message, fields, nfields, suppressed);
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
	char line[2048];
	unsigned suppressed;
	va_list ap;

	if (!log_enabled(level) || !allowed(level, fmt, &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(level, component, line, NULL, 0, suppressed);
}
