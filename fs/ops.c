/*
 * FUSE low-level operations. See ops.h.
 *
 * Lookups answer from directory listings; a missing name is answered with a negative entry
 * (inode 0) that the kernel caches for the metadata TTL. readdirplus hands out attributes with
 * every name so `ls -l` needs no further requests. Open files pin their ETag (reader.h).
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "metrics.h"
#include "names.h"
#include "reader.h"
#include "s3/log.h"

static struct fs_ops_context *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always readdirplus: attributes come with the listing for free. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
}

static void fill_entry(struct fs_tree *tree, const struct stat *st, struct fuse_entry_param *e)
{
	double ttl = fs_tree_ttl_seconds(tree);

	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->generation = 1;
	e->attr = *st;
	e->attr_timeout = ttl;
	e->entry_timeout = ttl;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t t0 = metrics_now_ns();
	struct fs_tree *tree = ctx_of(req)->tree;
	struct fuse_entry_param e;
	struct stat st;
	int rc = fs_tree_lookup(tree, parent, name, &st);

	fs_metrics_op(FS_OP_LOOKUP, t0, -rc);
	if (rc == -ENOENT) {
		/* A negative entry: the kernel remembers the miss for the TTL. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs_tree_ttl_seconds(tree);
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_entry(tree, &st, &e);
	if (fuse_reply_entry(req, &e) != 0)
		fs_tree_forget(tree, e.ino, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	uint64_t t0 = metrics_now_ns();

	fs_tree_forget(ctx_of(req)->tree, ino, nlookup);
	fs_metrics_op(FS_OP_FORGET, t0, 0);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	uint64_t t0 = metrics_now_ns();

	for (size_t i = 0; i < count; i++)
		fs_tree_forget(ctx_of(req)->tree, forgets[i].ino, forgets[i].nlookup);
	fs_metrics_op(FS_OP_FORGET, t0, 0);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = metrics_now_ns();
	struct fs_tree *tree = ctx_of(req)->tree;
	struct stat st;
	int rc = fs_tree_getattr(tree, ino, &st);

	(void)fi;
	fs_metrics_op(FS_OP_GETATTR, t0, -rc);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fs_tree_ttl_seconds(tree));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = metrics_now_ns();
	struct fs_dirlist *list;
	int rc = fs_tree_opendir(ctx_of(req)->tree, ino, &list);

	fs_metrics_op(FS_OP_OPENDIR, t0, -rc);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* The handle is the listing snapshot: offsets stay stable however the bucket changes. */
	fi->fh = (uint64_t)(uintptr_t)list;
	if (fuse_reply_open(req, fi) != 0)
		fs_dirlist_unref(list);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = metrics_now_ns();

	(void)ino;
	fs_dirlist_unref((struct fs_dirlist *)(uintptr_t)fi->fh);
	fs_metrics_op(FS_OP_RELEASEDIR, t0, 0);
	fuse_reply_err(req, 0);
}

/* Offsets: 0 is ".", 1 is "..", 2 + i is entry i; each entry's offset is that of the next. */
static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	uint64_t t0 = metrics_now_ns();
	struct fs_tree *tree = ctx_of(req)->tree;
	struct fs_dirlist *list = (struct fs_dirlist *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;
	int err = 0;

	if (!buf) {
		fs_metrics_op(plus ? FS_OP_READDIRPLUS : FS_OP_READDIR, t0, ENOMEM);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t o = off < 0 ? 0 : off;; o++) {
		const struct fs_dirent *entry = NULL;
		const char *name;
		struct fuse_entry_param e;
		size_t need;

		memset(&e, 0, sizeof(e));
		if (o == 0 || o == 1) {
			name = o == 0 ? "." : "..";
			e.attr.st_mode = S_IFDIR;
			e.attr.st_ino = ino;
		} else if ((size_t)(o - 2) < list->n) {
			entry = &list->entries[o - 2];
			name = entry->name;
		} else {
			break;
		}
		need = plus ? fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0)
			    : fuse_add_direntry(req, NULL, 0, name, NULL, 0);
		if (pos + need > size)
			break;
		if (entry && plus) {
			struct stat st;
			int rc = fs_tree_lookup_entry(tree, ino, entry, &st);

			if (rc) {
				err = -rc;
				break;
			}
			fill_entry(tree, &st, &e);
		} else if (entry) {
			fs_tree_entry_stat(tree, entry, &e.attr);
		}
		if (plus)
			pos += fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, o + 1);
		else
			pos += fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr, o + 1);
	}
	fs_metrics_op(plus ? FS_OP_READDIRPLUS : FS_OP_READDIR, t0, pos == 0 ? err : 0);
	if (err && pos == 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = metrics_now_ns();
	struct fs_ops_context *ctx = ctx_of(req);
	struct fs_file *file;
	bool keep_cache;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fs_metrics_op(FS_OP_REFUSED, t0, EROFS);
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = fs_file_open(ctx->reader, ino, &file, &keep_cache);
	fs_metrics_op(FS_OP_OPEN, t0, -rc);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)file;
	fi->keep_cache = keep_cache;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0)
		fs_file_release(file);
}

/* One read's answer. After fuse_reply_* the request is gone, even when sending failed, so
 * `sent` keeps op_read from answering it twice. */
struct read_reply {
	fuse_req_t req;
	uint64_t t0;
	bool sent;
};

/* Sends the data straight from the cache blocks (fuse_reply_iov writes them with writev). The
 * read is counted first: a reader must never see data whose read the metrics do not show. */
static int reply_read(void *ctx, const struct iovec *iov, int count)
{
	struct read_reply *rr = ctx;
	uint64_t bytes = 0;

	for (int i = 0; i < count; i++)
		bytes += iov[i].iov_len;
	fs_metrics_op(FS_OP_READ, rr->t0, 0);
	metrics_add(&fs_metrics.read_bytes, bytes);
	rr->sent = true;
	return count ? fuse_reply_iov(rr->req, iov, count) : fuse_reply_buf(rr->req, NULL, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct read_reply rr = {req, metrics_now_ns(), false};
	struct fs_file *file = (struct fs_file *)(uintptr_t)fi->fh;
	ssize_t n = -EINVAL;

	(void)ino;
	if (off >= 0)
		n = fs_file_read(file, size, (uint64_t)off, reply_read, &rr);
	if (!rr.sent) {
		int err = n < 0 ? (int)-n : EIO;

		fs_metrics_op(FS_OP_READ, rr.t0, err);
		fuse_reply_err(req, err);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t t0 = metrics_now_ns();

	(void)ino;
	fs_file_release((struct fs_file *)(uintptr_t)fi->fh);
	fs_metrics_op(FS_OP_RELEASE, t0, 0);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	uint64_t t0 = metrics_now_ns();
	struct statvfs sv;

	(void)ino;
	fs_metrics_op(FS_OP_STATFS, t0, 0);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = FS_NAME_MAX;
	sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	fuse_reply_statfs(req, &sv);
}

/* Everything that would change the bucket. */
static void erofs(fuse_req_t req)
{
	fs_metrics_op(FS_OP_REFUSED, metrics_now_ns(), EROFS);
	fuse_reply_err(req, EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	erofs(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	erofs(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	erofs(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	erofs(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	erofs(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	erofs(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	erofs(req);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	erofs(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	erofs(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	erofs(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	erofs(req);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	erofs(req);
}

const struct fuse_lowlevel_ops fs_lowlevel_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.statfs = op_statfs,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
};
