/*
 * What fs/ needs from object storage, as a small interface: list one page of a directory and
 * read a byte range of an object. fs/backend_s3.c implements it over the S3 client; the unit
 * tests implement it over an in-memory bucket, so the inode and directory logic is tested
 * without a network.
 */
#ifndef IRSAFS_FS_BACKEND_H
#define IRSAFS_FS_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "s3/listing.h"
#include "s3/status.h"

struct fs_backend {
	/* Lists one page of the keys under prefix (prefix_len bytes, any bytes) with delimiter
	 * "/". token is NULL for the first page, else the previous page's next_token. *out is
	 * owned by the caller (s3_listing_fini, also after a failure). Thread-safe. */
	enum s3_status (*list)(void *ctx, const char *prefix, size_t prefix_len, const char *token,
			       struct s3_listing *out, struct s3_error *err);
	/* Reads bytes at offset of key into iov, in order (one request for the total length);
	 * *got receives the count (less than the total only at the end of the object). etag,
	 * when not NULL, must still match (else S3_PRECONDITION_FAILED). progress, if not NULL,
	 * is called with the count stored so far as bytes arrive. Thread-safe. */
	enum s3_status (*read)(void *ctx, const char *key, size_t key_len, const char *etag,
			       uint64_t offset, const struct iovec *iov, int iovcnt, size_t *got,
			       void (*progress)(void *pctx, size_t got), void *pctx,
			       struct s3_error *err);
	void *ctx;
};

#endif
