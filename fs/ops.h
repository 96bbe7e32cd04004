/*
 * The FUSE low-level operations: a thin adapter from kernel requests to the inode model
 * (tree.h) and the read path (reader.h). Every operation that would modify anything answers
 * EROFS.
 */
#ifndef IRSAFS_FS_OPS_H
#define IRSAFS_FS_OPS_H

#include <fuse_lowlevel.h>

#include "reader.h"
#include "tree.h"

/* The userdata handed to fuse_session_new with fs_lowlevel_ops. Both pointers are borrowed and
 * must outlive the session. */
struct fs_ops_context {
	struct fs_tree *tree;
	struct fs_reader *reader;
};

extern const struct fuse_lowlevel_ops fs_lowlevel_ops;

#endif
