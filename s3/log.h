/*
 * Logging for every layer of irsafs.
 *
 * One line per event: "irsafs[<pid>] <level> <component>: <message>" on stderr in the foreground,
 * to syslog (facility daemon) once the process has daemonized, or to a file when asked (the
 * file's lines also carry a UTC timestamp). The level is global and may be
 * changed at any time; reading it is a relaxed atomic load, so a disabled debug line costs one
 * comparison.
 *
 * Secrets never go through here: callers pass key ids at most, never a secret key, a session
 * token, a web-identity token or an Authorization header.
 */
#ifndef IRSAFS_S3_LOG_H
#define IRSAFS_S3_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_TRACE,
};

/* Sets the threshold: messages above it are dropped. Thread-safe. */
void log_set_level(enum log_level level);

/* Current threshold. Thread-safe. */
enum log_level log_get_level(void);

/* Parses "error", "warn", "info", "debug" or "trace". Returns false for anything else. */
bool log_parse_level(const char *name, enum log_level *out);

/* Sends later messages to syslog instead of stderr (after daemonizing), unless a log file is
 * in use. Not thread-safe: call before starting threads. */
void log_use_syslog(bool on);

/* Appends later messages to the file at path (created 0600 if needed) instead of stderr or
 * syslog. Returns false with errno set if it cannot be opened. Call before starting threads. */
bool log_use_file(const char *path);

/* True when a message at `level` would be written. */
bool log_enabled(enum log_level level);

/* Writes one line. `component` is a short name such as "s3", "auth" or "fs". Thread-safe. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(component, ...) log_msg(LOG_LEVEL_ERROR, component, __VA_ARGS__)
#define log_warn(component, ...)  log_msg(LOG_LEVEL_WARN, component, __VA_ARGS__)
#define log_info(component, ...)  log_msg(LOG_LEVEL_INFO, component, __VA_ARGS__)
#define log_debug(component, ...) log_msg(LOG_LEVEL_DEBUG, component, __VA_ARGS__)
#define log_trace(component, ...) log_msg(LOG_LEVEL_TRACE, component, __VA_ARGS__)

#endif
