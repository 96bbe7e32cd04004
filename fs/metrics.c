/*
 * Rendering the metrics. See metrics.h. Metric names carry their units (_seconds, _bytes,
 * _total) as Prometheus recommends.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>

struct fs_metrics fs_metrics;

static const char *const op_names[FS_OPS] = {
	"lookup", "forget", "getattr", "opendir", "readdir",  "readdirplus",
	"releasedir", "open", "read", "release", "statfs", "refused",
};

void fs_metrics_op(enum fs_op op, uint64_t started_ns, int err)
{
	metrics_add(&fs_metrics.ops[op], 1);
	if (err)
		metrics_add(&fs_metrics.errors[op], 1);
	metrics_observe(&fs_metrics.latency[op], metrics_now_ns() - started_ns);
}

static bool header(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static bool histogram(struct buf *out, const char *name, const char *label,
		      const struct metrics_histogram *h)
{
	uint64_t cumulative = 0;

	for (int i = 0; i <= METRICS_BUCKETS; i++) {
		char le[32];

		cumulative += metrics_get(&h->bucket[i]);
		if (i < METRICS_BUCKETS)
			snprintf(le, sizeof(le), "%g", metrics_bucket_bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (!buf_appendf(out, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", name, label, le,
				 cumulative))
			return false;
	}
	return buf_appendf(out, "%s_sum{%s} %.9f\n%s_count{%s} %" PRIu64 "\n", name, label,
			   (double)metrics_get(&h->sum_ns) / 1e9, name, label, cumulative);
}

static bool render_s3(struct buf *out)
{
	bool ok = header(out, "irsafs_s3_requests_total", "counter",
			 "S3 requests by operation and HTTP status class (none: no answer)");
	char label[64];

	for (int op = 0; op < S3_METRICS_OPS; op++) {
		for (int c = 0; c < S3_METRICS_CLASSES; c++)
			ok = ok && buf_appendf(out,
					       "irsafs_s3_requests_total{operation=\"%s\","
					       "class=\"%s\"} %" PRIu64 "\n",
					       s3_metrics_op_names[op], s3_metrics_class_names[c],
					       metrics_get(&s3_metrics.requests[op][c]));
	}
	ok = ok && header(out, "irsafs_s3_request_duration_seconds", "histogram",
			  "Time from sending an S3 request to its end, retries counted apart");
	for (int op = 0; op < S3_METRICS_OPS; op++) {
		snprintf(label, sizeof(label), "operation=\"%s\"", s3_metrics_op_names[op]);
		ok = ok && histogram(out, "irsafs_s3_request_duration_seconds", label,
				     &s3_metrics.latency[op]);
	}
	ok = ok && header(out, "irsafs_s3_retries_total", "counter", "S3 requests sent again, by reason");
	for (int r = 0; r < S3_METRICS_RETRY_REASONS; r++)
		ok = ok && buf_appendf(out, "irsafs_s3_retries_total{reason=\"%s\"} %" PRIu64 "\n",
				       s3_metrics_retry_names[r],
				       metrics_get(&s3_metrics.retries[r]));
	ok = ok && header(out, "irsafs_s3_throttled_total", "counter",
			  "S3 answers asking to slow down (503 SlowDown, 429)") &&
	     buf_appendf(out, "irsafs_s3_throttled_total %" PRIu64 "\n",
			 metrics_get(&s3_metrics.throttled));
	ok = ok && header(out, "irsafs_s3_failed_requests_total", "counter",
			  "S3 requests that failed once their retries ran out") &&
	     buf_appendf(out, "irsafs_s3_failed_requests_total %" PRIu64 "\n",
			 metrics_get(&s3_metrics.gave_up));
	ok = ok && header(out, "irsafs_s3_received_bytes_total", "counter",
			  "Object bytes received from S3") &&
	     buf_appendf(out, "irsafs_s3_received_bytes_total %" PRIu64 "\n",
			 metrics_get(&s3_metrics.bytes_received));
	return ok;
}

static bool gauge(struct buf *out, const char *name, const char *help, const char *type,
		  double value)
{
	return header(out, name, type, help) && buf_appendf(out, "%s %.0f\n", name, value);
}

static bool render_cache(struct buf *out, struct fs_reader *reader)
{
	struct fs_reader_stats st;

	fs_reader_get_stats(reader, &st);
	return gauge(out, "irsafs_cache_hits_total", "Block claims that found the block cached or loading", "counter",
		     (double)st.cache.hits) &&
	       gauge(out, "irsafs_cache_misses_total", "Block claims that had to fetch the block",
		     "counter", (double)st.cache.misses) &&
	       gauge(out, "irsafs_cache_evictions_total", "Blocks dropped to make room", "counter",
		     (double)st.cache.evictions) &&
	       gauge(out, "irsafs_cache_bytes", "Bytes held in blocks now", "gauge",
		     (double)st.cache.bytes_held) &&
	       gauge(out, "irsafs_cache_capacity_bytes", "The cache's hard cap (--cache-size)",
		     "gauge", (double)st.cache.capacity) &&
	       gauge(out, "irsafs_prefetch_unused_bytes_total",
		     "Prefetched bytes evicted without ever being read", "counter",
		     (double)st.cache.prefetched_unused_bytes) &&
	       gauge(out, "irsafs_fetch_requests_total", "Ranged GETs sent by the fetch workers",
		     "counter", (double)st.get_requests) &&
	       gauge(out, "irsafs_fetch_failures_total", "Ranged GETs that failed", "counter",
		     (double)st.fetch_failures);
}

static bool render_fuse(struct buf *out)
{
	bool ok = header(out, "irsafs_fuse_operations_total", "counter",
			 "FUSE operations answered, by type");
	char label[48];

	for (int op = 0; op < FS_OPS; op++)
		ok = ok && buf_appendf(out, "irsafs_fuse_operations_total{op=\"%s\"} %" PRIu64 "\n",
				       op_names[op], metrics_get(&fs_metrics.ops[op]));
	ok = ok && header(out, "irsafs_fuse_errors_total", "counter",
			  "FUSE operations answered with an error (ENOENT included), by type");
	for (int op = 0; op < FS_OPS; op++)
		ok = ok && buf_appendf(out, "irsafs_fuse_errors_total{op=\"%s\"} %" PRIu64 "\n",
				       op_names[op], metrics_get(&fs_metrics.errors[op]));
	ok = ok && header(out, "irsafs_fuse_operation_duration_seconds", "histogram",
			  "Time irsafs took to answer FUSE operations, by type");
	for (int op = 0; op < FS_OPS; op++) {
		snprintf(label, sizeof(label), "op=\"%s\"", op_names[op]);
		ok = ok && histogram(out, "irsafs_fuse_operation_duration_seconds", label,
				     &fs_metrics.latency[op]);
	}
	return ok && gauge(out, "irsafs_fuse_read_bytes_total", "Bytes returned to readers",
			   "counter", (double)metrics_get(&fs_metrics.read_bytes));
}

static bool render_listings(struct buf *out, struct fs_tree *tree)
{
	struct fs_dircache_stats st;

	fs_tree_get_dircache_stats(tree, &st);
	return gauge(out, "irsafs_listings_total", "Directory listings fetched", "counter",
		     (double)st.fetches) &&
	       gauge(out, "irsafs_listing_pages_total", "ListObjectsV2 pages fetched for them",
		     "counter", (double)st.list_requests) &&
	       gauge(out, "irsafs_listings_cached", "Directory listings held now", "gauge",
		     (double)st.listings) &&
	       gauge(out, "irsafs_listing_entries_cached", "Entries in the listings held now",
		     "gauge", (double)st.entries) &&
	       gauge(out, "irsafs_hidden_keys_total",
		     "Keys seen in listings that cannot be file names (hidden)", "counter",
		     (double)metrics_get(&fs_metrics.hidden_keys)) &&
	       gauge(out, "irsafs_shadowed_files_total",
		     "Files seen in listings hidden by a directory of the same name", "counter",
		     (double)metrics_get(&fs_metrics.shadowed_files)) &&
	       gauge(out, "irsafs_inodes", "Inodes the kernel holds", "gauge",
		     (double)fs_tree_inode_count(tree));
}

static bool render_credentials(struct buf *out, const struct fs_metrics_sources *src)
{
	struct fs_credentials_info info = {"none", -1, 0, 0};

	if (src->credentials)
		src->credentials(src->credentials_ctx, &info);
	return header(out, "irsafs_credentials_info", "gauge",
		      "Where the credentials come from (the value is always 1)") &&
	       buf_appendf(out, "irsafs_credentials_info{source=\"%s\"} 1\n", info.source) &&
	       header(out, "irsafs_credentials_expiry_seconds", "gauge",
		      "Seconds until the current credentials expire (-1: never)") &&
	       buf_appendf(out, "irsafs_credentials_expiry_seconds %" PRId64 "\n",
			   info.expires_in_s) &&
	       gauge(out, "irsafs_credential_renewals_total", "Credentials renewed", "counter",
		     (double)info.renewals) &&
	       gauge(out, "irsafs_credential_renewal_failures_total", "Renewals that failed",
		     "counter", (double)info.renewal_failures);
}

bool fs_metrics_render(const struct fs_metrics_sources *src, struct buf *out)
{
	return header(out, "irsafs_info", "gauge", "The mount (the value is always 1)") &&
	       buf_appendf(out, "irsafs_info{version=\"%s\",bucket=\"%s\",prefix=\"%s\"} 1\n",
			   IRSAFS_VERSION, src->bucket, src->prefix) &&
	       render_s3(out) && render_cache(out, src->reader) && render_fuse(out) &&
	       render_listings(out, src->tree) && render_credentials(out, src);
}

static uint64_t sum_classes(int op)
{
	uint64_t n = 0;

	for (int c = 0; c < S3_METRICS_CLASSES; c++)
		n += metrics_get(&s3_metrics.requests[op][c]);
	return n;
}

bool fs_metrics_summary(const struct fs_metrics_sources *src, struct buf *out)
{
	struct fs_reader_stats rs;
	struct fs_dircache_stats ds;
	struct fs_credentials_info ci = {"none", -1, 0, 0};
	uint64_t retries = 0, errors = 0;
	double claims;

	fs_reader_get_stats(src->reader, &rs);
	fs_tree_get_dircache_stats(src->tree, &ds);
	if (src->credentials)
		src->credentials(src->credentials_ctx, &ci);
	for (int r = 0; r < S3_METRICS_RETRY_REASONS; r++)
		retries += metrics_get(&s3_metrics.retries[r]);
	for (int c = S3_METRICS_4XX; c < S3_METRICS_CLASSES; c++)
		for (int op = 0; op < S3_METRICS_OPS; op++)
			errors += metrics_get(&s3_metrics.requests[op][c]);
	claims = (double)(rs.cache.hits + rs.cache.misses);
	return buf_appendf(out,
			   "summary: s3://%s/%s: S3 requests list=%" PRIu64 " get=%" PRIu64
			   " head=%" PRIu64 " errors=%" PRIu64 " retries=%" PRIu64
			   " throttled=%" PRIu64 "; received %.1f MiB; cache %.1f/%.1f MiB, "
			   "hit ratio %.1f%%, evictions %" PRIu64 "; reads %" PRIu64 " (%.1f MiB); "
			   "listings %" PRIu64 " cached %zu (%zu entries), hidden keys %" PRIu64
			   "; credentials %s, renewals %" PRIu64 " (failed %" PRIu64
			   "), expire in %" PRId64 " s",
			   src->bucket, src->prefix, sum_classes(S3_METRICS_LIST),
			   sum_classes(S3_METRICS_GET), sum_classes(S3_METRICS_HEAD), errors,
			   retries, metrics_get(&s3_metrics.throttled),
			   (double)metrics_get(&s3_metrics.bytes_received) / 1048576.0,
			   (double)rs.cache.bytes_held / 1048576.0,
			   (double)rs.cache.capacity / 1048576.0,
			   claims > 0 ? 100.0 * (double)rs.cache.hits / claims : 0.0,
			   rs.cache.evictions, metrics_get(&fs_metrics.ops[FS_OP_READ]),
			   (double)metrics_get(&fs_metrics.read_bytes) / 1048576.0, ds.fetches,
			   ds.listings, ds.entries, metrics_get(&fs_metrics.hidden_keys), ci.source,
			   ci.renewals, ci.renewal_failures, ci.expires_in_s);
}
