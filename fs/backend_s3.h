/*
 * The fs_backend over the S3 client.
 */
#ifndef IRSAFS_FS_BACKEND_S3_H
#define IRSAFS_FS_BACKEND_S3_H

#include "backend.h"
#include "s3/client.h"

/* Fills *backend so that it forwards to client (borrowed; must outlive the backend). */
void fs_backend_s3_init(struct fs_backend *backend, struct s3_client *client);

#endif
