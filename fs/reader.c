/*
 * The read path. See reader.h.
 */
#include "reader.h"

#include <errno.h>
#include <stdlib.h>

#include "errno_map.h"
#include "s3/log.h"

struct fs_file {
	const struct fs_backend *backend;
	struct fs_file_meta meta; /* immutable while open */
};

int fs_file_open(struct fs_tree *tree, const struct fs_backend *backend, uint64_t ino,
		 struct fs_file **out)
{
	struct fs_file *f = calloc(1, sizeof(*f));
	int rc;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	rc = fs_tree_file_meta(tree, ino, &f->meta);
	if (rc) {
		free(f);
		return rc;
	}
	f->backend = backend;
	*out = f;
	return 0;
}

uint64_t fs_file_size(const struct fs_file *f)
{
	return f->meta.size;
}

ssize_t fs_file_read(struct fs_file *f, char *buf, size_t size, uint64_t off)
{
	struct s3_error err;
	enum s3_status status;
	size_t len, got = 0;
	char what[640];

	if (off >= f->meta.size || size == 0)
		return 0;
	len = f->meta.size - off < size ? (size_t)(f->meta.size - off) : size;
	s3_error_clear(&err);
	status = f->backend->read(f->backend->ctx, f->meta.key, f->meta.key_len, f->meta.etag, off,
				  len, buf, &got, &err);
	if (status == S3_OK)
		return (ssize_t)got;
	if (status == S3_ARCHIVED)
		log_error("fs", "cannot read '%s': the object is in an archived storage class "
				"(%s); restore it first",
			  f->meta.key, s3_error_describe(&err, what, sizeof(what)));
	else if (status == S3_PRECONDITION_FAILED)
		log_warn("fs", "'%s' changed in the bucket since it was opened; reopen it",
			 f->meta.key);
	else
		log_warn("fs", "read of '%s' at %llu (+%zu) failed: %s", f->meta.key,
			 (unsigned long long)off, len, s3_error_describe(&err, what, sizeof(what)));
	return -fs_errno_from_status(status);
}

void fs_file_release(struct fs_file *f)
{
	if (!f)
		return;
	fs_file_meta_fini(&f->meta);
	free(f);
}
