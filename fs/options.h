/*
 * The command line: `irsafs [OPTIONS] BUCKET MOUNTPOINT`, with Mountpoint for S3's option
 * names, the same options as `-o name[=value]` for fstab, and the AWS environment variables.
 * Pure parsing: no I/O besides reading the environment in fs_options_apply_env.
 */
#ifndef IRSAFS_FS_OPTIONS_H
#define IRSAFS_FS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "s3/log.h"

#define FS_DEFAULT_CACHE_SIZE (256ull * 1024 * 1024)
#define FS_MIN_CACHE_SIZE (16ull * 1024 * 1024)
#define FS_DEFAULT_MAX_CONNECTIONS 16
#define FS_DEFAULT_READ_AHEAD (1024ull * 1024)
#define FS_MAX_READ_AHEAD (16ull * 1024 * 1024)

struct fs_options {
	char *bucket;
	char *mountpoint;
	char *prefix;       /* "" or ending in '/' */
	char *region;       /* NULL until fs_options_apply_env */
	char *endpoint_url; /* NULL: AWS's endpoint */
	char *ca_bundle;    /* from AWS_CA_BUNDLE */
	bool force_path_style;
	bool no_sign_request;
	bool uid_set, gid_set;
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
	mode_t dir_mode;
	bool allow_other;
	bool foreground;
	enum log_level log_level;
	enum log_format log_format;
	int64_t metadata_ttl_ms; /* negative: indefinite */
	uint64_t cache_size;      /* bytes of object data held at most */
	unsigned max_connections; /* concurrent GETs */
	uint64_t read_ahead;      /* kernel read-ahead in bytes; 0: the kernel's own */
	bool read_ahead_set;      /* given by the user, not the default */
	unsigned max_attempts;    /* per S3 request; 0: AWS_MAX_ATTEMPTS or the default */
	int64_t max_retry_ms;     /* no retry starts later than this; 0: the default */
	unsigned stall_timeout_s; /* a transfer without a byte for this long is retried; 0: 10 */
	char *fuse_options; /* comma-separated options passed to libfuse, or NULL */
	char *log_file;     /* log here instead of stderr/syslog, or NULL */
	char *ready_file;   /* created once the mount is live, removed at exit, or NULL */
	char *metrics_addr; /* [HOST:]PORT of the Prometheus endpoint, or NULL */
	bool help;
	bool version;
};

/* Parses argv into *opts (which the caller owns; fs_options_fini releases it, also after a
 * failure). Returns true, or false with a one-line reason in err. --help and --version set
 * their flags and skip the positional check. */
bool fs_options_parse(int argc, char **argv, struct fs_options *opts, char *err, size_t errlen);

/* Fills what the command line left open from the environment, as the AWS SDKs do: region from
 * AWS_REGION then AWS_DEFAULT_REGION (else us-east-1), endpoint from AWS_ENDPOINT_URL_S3 then
 * AWS_ENDPOINT_URL, the CA bundle from AWS_CA_BUNDLE, attempts from AWS_MAX_ATTEMPTS. Returns
 * false with a reason in err for a bad value or when out of memory. */
bool fs_options_apply_env(struct fs_options *opts, char *err, size_t errlen);

void fs_options_fini(struct fs_options *opts);

/* Prints the usage text. */
void fs_options_usage(FILE *out);

#endif
