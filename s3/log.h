/*
 * Logging for every layer of irsafs.
 *
 * One line per event, with its level, its component ("s3", "auth", "fs", "main", ...), a short
 * message and key=value fields:
 *   text: irsafs[<pid>] warn fs: read failed key="data/a b.bin" range=0-8388607 error="..."
 *   json: {"time":"...","level":"warn","component":"fs","pid":7,"msg":"read failed",
 *          "key":"data/a b.bin","range":"0-8388607","error":"..."}
 * on stderr in the foreground, to syslog once the process has daemonized, or to a file (whose
 * text lines also carry a UTC timestamp). Warnings and errors are rate-limited per message: at
 * most LOG_BURST of one kind a minute, then a line saying how many were suppressed.
 *
 * The level is a relaxed atomic: a disabled debug line costs one comparison. Secrets never go
 * through here: callers pass key ids at most, never a secret key, a session token, a
 * web-identity token or an Authorization header.
 */
#ifndef IRSAFS_S3_LOG_H
#define IRSAFS_S3_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_TRACE,
};

enum log_format {
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
};

/* Warnings and errors of one message allowed per minute before suppression. */
#define LOG_BURST 10

/* Sets the threshold: messages above it are dropped. Thread-safe. */
void log_set_level(enum log_level level);

/* Current threshold. Thread-safe. */
enum log_level log_get_level(void);

/* Parses "error", "warn", "info", "debug" or "trace". Returns false for anything else. */
bool log_parse_level(const char *name, enum log_level *out);

/* Parses "text" or "json". */
bool log_parse_format(const char *name, enum log_format *out);

/* Call before starting threads. */
void log_set_format(enum log_format format);

/* Sends later messages to syslog instead of stderr (after daemonizing), unless a log file is
 * in use. Not thread-safe: call before starting threads. */
void log_use_syslog(bool on);

/* Appends later messages to the file at path (created 0600 if needed) instead of stderr or
 * syslog. Returns false with errno set if it cannot be opened. Call before starting threads. */
bool log_use_file(const char *path);

/* True when a message at `level` would be written. */
bool log_enabled(enum log_level level);

/* A field of an event. Values may hold any text; they are quoted and escaped as needed. */
struct log_field {
	const char *key;
	const char *value;
};

/* Writes one event: message (a fixed string, which is also the rate limit's key) and fields.
 * Thread-safe. */
void log_event(enum log_level level, const char *component, const char *message,
	       const struct log_field *fields, size_t nfields);

#define LOG_EVENT(level, component, message, ...)                                          \
	log_event(level, component, message, (const struct log_field[]){__VA_ARGS__},      \
		  sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field))

/* Writes one line of free text (printf format; the format is the rate limit's key).
 * Thread-safe. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(component, ...) log_msg(LOG_LEVEL_ERROR, component, __VA_ARGS__)
#define log_warn(component, ...)  log_msg(LOG_LEVEL_WARN, component, __VA_ARGS__)
#define log_info(component, ...)  log_msg(LOG_LEVEL_INFO, component, __VA_ARGS__)
#define log_debug(component, ...) log_msg(LOG_LEVEL_DEBUG, component, __VA_ARGS__)
#define log_trace(component, ...) log_msg(LOG_LEVEL_TRACE, component, __VA_ARGS__)

#endif
