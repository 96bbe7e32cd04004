/*
 * Metrics primitives and the S3 client's metrics. See metrics.h.
 */
#include "metrics.h"

#include <time.h>

const double metrics_bucket_bounds[METRICS_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct s3_metrics s3_metrics;

const char *const s3_metrics_op_names[S3_METRICS_OPS] = {"ListObjectsV2", "GetObject",
							 "HeadObject"};
const char *const s3_metrics_class_names[S3_METRICS_CLASSES] = {"2xx", "3xx", "4xx", "5xx",
								 "none"};
const char *const s3_metrics_retry_names[S3_METRICS_RETRY_REASONS] = {
	"throttled", "server_error", "timeout", "network", "credentials", "region",
};

uint64_t metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_observe(struct metrics_histogram *h, uint64_t ns)
{
	double s = (double)ns / 1e9;
	int i = 0;

	while (i < METRICS_BUCKETS && s > metrics_bucket_bounds[i])
		i++;
	metrics_add(&h->bucket[i], 1);
	metrics_add(&h->sum_ns, ns);
}
