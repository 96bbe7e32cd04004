/*
 * Lock-free metrics for the Prometheus endpoint (fs/metrics.c renders them).
 *
 * Counters and histograms are relaxed atomics: recording one costs an atomic add, no lock,
 * so every hot path may record. Histograms have fixed buckets in seconds. This file also
 * holds the S3 client's own metrics (requests by operation and status class, latency, bytes,
 * retries by reason); the other layers keep theirs next to their code.
 */
#ifndef IRSAFS_S3_METRICS_H
#define IRSAFS_S3_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#define METRICS_BUCKETS 14

/* Upper bounds of the histogram buckets, in seconds (the last bucket is +Inf). */
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

struct metrics_histogram {
	atomic_uint_fast64_t bucket[METRICS_BUCKETS + 1]; /* not cumulative; last is +Inf */
	atomic_uint_fast64_t sum_ns;
};

/* Monotonic clock in nanoseconds, for durations. */
uint64_t metrics_now_ns(void);

/* Records a duration. */
void metrics_observe(struct metrics_histogram *h, uint64_t ns);

/* Adds n to a counter. */
static inline void metrics_add(atomic_uint_fast64_t *counter, uint64_t n)
{
	atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static inline uint64_t metrics_get(const atomic_uint_fast64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

enum s3_metrics_op {
	S3_METRICS_LIST,
	S3_METRICS_GET,
	S3_METRICS_HEAD,
	S3_METRICS_OPS,
};

enum s3_metrics_class {
	S3_METRICS_2XX,
	S3_METRICS_3XX,
	S3_METRICS_4XX,
	S3_METRICS_5XX,
	S3_METRICS_NO_RESPONSE, /* network error, timeout, cancelled */
	S3_METRICS_CLASSES,
};

enum s3_metrics_retry {
	S3_METRICS_RETRY_THROTTLED,
	S3_METRICS_RETRY_SERVER_ERROR,
	S3_METRICS_RETRY_TIMEOUT,
	S3_METRICS_RETRY_NETWORK,
	S3_METRICS_RETRY_CREDENTIALS, /* signed again after S3 refused the credentials */
	S3_METRICS_RETRY_REGION,      /* sent again to the bucket's real region */
	S3_METRICS_RETRY_REASONS,
};

struct s3_metrics {
	atomic_uint_fast64_t requests[S3_METRICS_OPS][S3_METRICS_CLASSES];
	struct metrics_histogram latency[S3_METRICS_OPS];
	atomic_uint_fast64_t bytes_received; /* object bytes of GET responses */
	atomic_uint_fast64_t retries[S3_METRICS_RETRY_REASONS];
	atomic_uint_fast64_t throttled; /* SlowDown/503 answers */
	atomic_uint_fast64_t gave_up;   /* requests that failed after their retries */
};

/* The process's S3 metrics. */
extern struct s3_metrics s3_metrics;

extern const char *const s3_metrics_op_names[S3_METRICS_OPS];
extern const char *const s3_metrics_class_names[S3_METRICS_CLASSES];
extern const char *const s3_metrics_retry_names[S3_METRICS_RETRY_REASONS];

#endif
