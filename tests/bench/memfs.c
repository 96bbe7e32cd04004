/*
 * memfs: a do-nothing FUSE 3 low-level filesystem for the irsafs benchmark.
 *
 * It serves one read-only file, /NAME (default "big.bin"), of SIZE bytes, straight from a
 * static pattern buffer with fuse_reply_buf: no allocation, no copy beyond libfuse's own, no
 * I/O. Whatever a FUSE filesystem does on top of that costs time, so a sequential read of this
 * file is the ceiling for any FUSE read on the machine. It uses the same libfuse settings as
 * irsafs (multi-threaded loop, async reads, the kernel's default readahead; open sets
 * keep_cache, so a re-read on the same mount is served from the page cache, as irsafs's
 * warm re-read is).
 *
 *   memfs [-s SIZE] [-n NAME] [-o FUSE_OPTIONS] MOUNTPOINT
 *
 * SIZE takes a K, M or G suffix (powers of 1024; default 1G). It always runs in the
 * foreground; SIGINT, SIGTERM or `fusermount3 -u MOUNTPOINT` end it. The content is
 * byte i = i mod 256.
 *
 * Build: cc -O2 $(pkg-config --cflags fuse3) -DFUSE_USE_VERSION=312 memfs.c \
 *            $(pkg-config --libs fuse3) -o memfs
 */

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define FILE_INO  2
#define PERIOD	  (1u << 20)  /* the pattern repeats every PERIOD bytes */
#define MAX_REPLY (16u << 20) /* larger than any read the kernel sends */

static unsigned char pattern[PERIOD + MAX_REPLY];
static uint64_t file_size = 1ull << 30;
static const char *file_name = "big.bin";
static time_t mount_time;

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_atime = st->st_mtime = st->st_ctime = mount_time;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)file_size;
		st->st_blksize = 4096;
		st->st_blocks = (blkcnt_t)((file_size + 511) / 512);
	}
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* What irsafs asks for (fs/ops.c). */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, file_name) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.generation = 1;
	e.attr_timeout = 3600;
	e.entry_timeout = 3600;
	fill_stat(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if (off < 0 || (uint64_t)off >= file_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > file_size - (uint64_t)off)
		size = (size_t)(file_size - (uint64_t)off);
	if (size > MAX_REPLY)
		size = MAX_REPLY;
	fuse_reply_buf(req, (const char *)pattern + ((uint64_t)off % PERIOD), size);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	char buf[4096];
	size_t used = 0;
	struct stat st;
	const char *names[] = {".", "..", file_name};
	fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, FILE_INO};

	(void)ino;
	(void)fi;
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (off_t i = off; i < 3; i++) {
		size_t len;

		fill_stat(inos[i], &st);
		len = fuse_add_direntry(req, buf + used, size - used, names[i], &st, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = file_size / 4096;
	sv.f_files = 2;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .statfs = op_statfs,
};

static int parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text)
		return -1;
	switch (*end) {
	case 'G':
	case 'g':
		value <<= 30;
		end++;
		break;
	case 'M':
	case 'm':
		value <<= 20;
		end++;
		break;
	case 'K':
	case 'k':
		value <<= 10;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0')
		return -1;
	*out = value;
	return 0;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: memfs [-s SIZE] [-n NAME] [-o FUSE_OPTIONS] MOUNTPOINT\n");
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	struct fuse_loop_config *loop;
	const char *mountpoint = NULL;
	int opt, rc = 1;

	fuse_opt_add_arg(&args, argv[0]);
	while ((opt = getopt(argc, argv, "s:n:o:h")) != -1) {
		switch (opt) {
		case 's':
			if (parse_size(optarg, &file_size) != 0) {
				fprintf(stderr, "memfs: bad size '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (!*optarg || strchr(optarg, '/')) {
				fprintf(stderr, "memfs: bad name '%s'\n", optarg);
				return 2;
			}
			file_name = optarg;
			break;
		case 'o':
			fuse_opt_add_arg(&args, "-o");
			fuse_opt_add_arg(&args, optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	mountpoint = argv[optind];
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, "ro,fsname=memfs,subtype=memfs,default_permissions");
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)i; /* PERIOD is a multiple of 256 */
	mount_time = time(NULL);

	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		goto out_args;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, mountpoint) != 0)
		goto out_signals;
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 16);
	rc = fuse_session_loop_mt(se, loop) == 0 ? 0 : 1;
	fuse_loop_cfg_destroy(loop);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_args:
	fuse_opt_free_args(&args);
	return rc;
}
