/*
 * The one place where an S3 or credential status becomes an errno for the kernel.
 */
#ifndef IRSAFS_FS_ERRNO_MAP_H
#define IRSAFS_FS_ERRNO_MAP_H

#include "s3/status.h"

/* Returns a positive errno for status (0 for S3_OK):
 *   not found / no such bucket         ENOENT
 *   access denied, bad or expired or
 *   missing credentials                EACCES
 *   archived storage class             EACCES (restore the object first; logged with the key)
 *   object changed since open (412)    ESTALE
 *   range past the end                 EINVAL (never asked for by fs/)
 *   throttled, timeout, network        EIO    (after retries)
 *   cancelled (shutting down)          EIO
 *   server error, protocol, wrong region, other client errors   EIO
 *   no memory                          ENOMEM
 *   invalid argument                   EINVAL */
int fs_errno_from_status(enum s3_status status);

#endif
