/*
 * Status to errno. See errno_map.h.
 */
#include "errno_map.h"

#include <errno.h>

int fs_errno_from_status(enum s3_status status)
{
	switch (status) {
	case S3_OK:
		return 0;
	case S3_NOT_FOUND:
	case S3_NO_SUCH_BUCKET:
		return ENOENT;
	case S3_ACCESS_DENIED:
	case S3_BAD_CREDENTIALS:
	case S3_EXPIRED_CREDENTIALS:
	case S3_NO_CREDENTIALS:
	case S3_ARCHIVED:
		return EACCES;
	case S3_PRECONDITION_FAILED:
		return ESTALE;
	case S3_INVALID_RANGE:
	case S3_INVALID_ARGUMENT:
		return EINVAL;
	case S3_NO_MEMORY:
		return ENOMEM;
	case S3_THROTTLED:
	case S3_TIMEOUT:
	case S3_NETWORK:
	case S3_TLS:
	case S3_SERVER_ERROR:
	case S3_PROTOCOL:
	case S3_WRONG_REGION:
	case S3_CLIENT_ERROR:
	case S3_CANCELLED:
		return EIO;
	}
	return EIO;
}
