/*
 * What a running mount exposes: the FUSE operations' own metrics (counts, errors, latency, per
 * operation, recorded lock-free in fs/ops.c) and the Prometheus text rendering of everything:
 * S3 requests (s3/metrics.h), the block cache and fetchers (reader.h), listings (dircache.h),
 * names hidden by the naming rules, and the credentials (through a callback, so fs/ does not
 * depend on auth/).
 */
#ifndef IRSAFS_FS_METRICS_H
#define IRSAFS_FS_METRICS_H

#include <stdint.h>

#include "reader.h"
#include "s3/buf.h"
#include "s3/metrics.h"
#include "tree.h"

enum fs_op {
	FS_OP_LOOKUP,
	FS_OP_FORGET,
	FS_OP_GETATTR,
	FS_OP_OPENDIR,
	FS_OP_READDIR,
	FS_OP_READDIRPLUS,
	FS_OP_RELEASEDIR,
	FS_OP_OPEN,
	FS_OP_READ,
	FS_OP_RELEASE,
	FS_OP_STATFS,
	FS_OP_REFUSED, /* anything that would write: EROFS */
	FS_OPS,
};

struct fs_metrics {
	atomic_uint_fast64_t ops[FS_OPS];
	atomic_uint_fast64_t errors[FS_OPS]; /* answered with an errno (ENOENT included) */
	struct metrics_histogram latency[FS_OPS];
	atomic_uint_fast64_t read_bytes;     /* bytes returned by read */
	atomic_uint_fast64_t hidden_keys;    /* keys listings held that cannot be names */
	atomic_uint_fast64_t shadowed_files; /* files listings held under a same-named dir */
};

/* The process's FUSE metrics. */
extern struct fs_metrics fs_metrics;

/* Records one operation that started at started_ns and ended with err (0 or an errno). */
void fs_metrics_op(enum fs_op op, uint64_t started_ns, int err);

/* What the credentials say, for the metrics; filled by the program's wiring. */
struct fs_credentials_info {
	const char *source;   /* "web-identity", ... or "none" */
	int64_t expires_in_s; /* -1: never */
	uint64_t renewals;
	uint64_t renewal_failures;
};

struct fs_metrics_sources {
	struct fs_reader *reader;
	struct fs_tree *tree;
	const char *bucket;
	const char *prefix;
	/* Fills *out; NULL when the mount runs without credentials. */
	void (*credentials)(void *ctx, struct fs_credentials_info *out);
	void *credentials_ctx;
};

/* Appends the Prometheus text exposition (format 0.0.4) of every metric to out. Returns
 * false when out of memory. Thread-safe. */
bool fs_metrics_render(const struct fs_metrics_sources *src, struct buf *out);

/* Appends a short human summary (a dozen lines) for the log. */
bool fs_metrics_summary(const struct fs_metrics_sources *src, struct buf *out);

#endif
