/*
 * fs_backend over s3_client: a direct forward, listing with delimiter "/" and 1000 keys a page.
 */
#include "backend_s3.h"

static enum s3_status s3_list(void *ctx, const char *prefix, size_t prefix_len, const char *token,
			      struct s3_listing *out, struct s3_error *err)
{
	struct s3_list_params params = {
		.prefix = prefix,
		.prefix_len = prefix_len,
		.delimiter = "/",
		.continuation_token = token,
	};

	return s3_list_objects(ctx, &params, out, err);
}

static enum s3_status s3_read(void *ctx, const char *key, size_t key_len, const char *etag,
			      uint64_t offset, const struct iovec *iov, int iovcnt, size_t *got,
			      void (*progress)(void *pctx, size_t got), void *pctx,
			      struct s3_error *err)
{
	struct s3_get_params params = {
		.key = key,
		.key_len = key_len,
		.if_match = etag,
		.offset = offset,
		.progress = progress,
		.progress_ctx = pctx,
	};

	return s3_get_object(ctx, &params, iov, iovcnt, got, NULL, err);
}

void fs_backend_s3_init(struct fs_backend *backend, struct s3_client *client)
{
	backend->list = s3_list;
	backend->read = s3_read;
	backend->ctx = client;
}
