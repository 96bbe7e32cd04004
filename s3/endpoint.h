/*
 * Where S3 requests go: the endpoint URL, the addressing style and the signing region of one
 * bucket, resolved once into an immutable, reference-counted value. The client swaps in a new
 * one when S3 says the bucket lives in another region; requests in flight keep theirs.
 *
 * Addressing: virtual-hosted (BUCKET.host) unless path-style is forced, or cannot work: an IP
 * address as host, a bucket name that is not a DNS label, a bucket with dots over TLS.
 */
#ifndef IRSAFS_S3_ENDPOINT_H
#define IRSAFS_S3_ENDPOINT_H

#include <stdbool.h>

#include "status.h"

struct s3_endpoint {
	char *region;    /* signing region */
	char *base_url;  /* "https://bucket.s3.us-east-1.amazonaws.com", "http://127.0.0.1:9000" */
	char *host;      /* the Host header: host[:port] as in base_url */
	char *path_root; /* "" (virtual-hosted) or "/bucket" (path-style) */
	char *describe;  /* "http://127.0.0.1:9000 (path-style)", for messages */
	bool https;
	bool aws_default; /* built from the region (no endpoint URL given) */
};

/* True for 3 to 255 letters, digits, '.', '-', '_'. */
bool s3_bucket_name_valid(const char *bucket);

/* True for a region name: lower-case letters, digits and '-'. */
bool s3_region_valid(const char *region);

/* Resolves bucket, region and endpoint URL (NULL: https://s3.REGION.amazonaws.com). Returns
 * S3_OK with *out (one reference), S3_INVALID_ARGUMENT with a message naming the bad URL, or
 * S3_NO_MEMORY. */
enum s3_status s3_endpoint_create(const char *bucket, const char *region,
				  const char *endpoint_url, bool force_path_style,
				  struct s3_endpoint **out, struct s3_error *err);

struct s3_endpoint *s3_endpoint_ref(struct s3_endpoint *ep);

/* Accepts NULL. */
void s3_endpoint_unref(struct s3_endpoint *ep);

#endif
