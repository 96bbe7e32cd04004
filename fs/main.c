/*
 * irsafs entry point: the wiring.
 *
 *   options (fs/options.c) -> credentials (auth/chain.c) -> S3 client (s3/client.c)
 *   -> check that the bucket/prefix can be listed -> inode model (fs/tree.c) over the S3
 *   backend (fs/backend_s3.c) -> FUSE session (fs/ops.c) -> mount -> daemonize -> serve.
 *
 * Every failure before the mount is live ends the process with one line on stderr and a
 * non-zero status (2 for a usage error, 1 otherwise), and nothing mounted. Without -f the
 * process forks only after the mount is live, so the parent's exit status tells the truth.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <libxml/parser.h>

#include "auth/chain.h"
#include "fs/backend_s3.h"
#include "fs/ops.h"
#include "fs/options.h"
#include "fs/tree.h"
#include "s3/client.h"
#include "s3/log.h"

#define EXIT_USAGE 2

/* Explains a failed pre-mount listing in one line, naming the cause and the S3 error code. */
static void report_probe_failure(const struct fs_options *o, const struct s3_client *client,
				 const char *source, const struct s3_error *err)
{
	char what[700];
	const char *endpoint = s3_client_endpoint(client);

	s3_error_describe(err, what, sizeof(what));
	switch (err->status) {
	case S3_NO_SUCH_BUCKET:
		fprintf(stderr, "irsafs: bucket '%s' does not exist at %s (%s)\n", o->bucket,
			endpoint, what);
		break;
	case S3_BAD_CREDENTIALS:
		fprintf(stderr,
			"irsafs: S3 rejected the credentials from %s for bucket '%s' (%s); check the "
			"access key and secret\n",
			source, o->bucket, what);
		break;
	case S3_EXPIRED_CREDENTIALS:
		fprintf(stderr,
			"irsafs: S3 says the credentials from %s have expired or are invalid (%s)\n",
			source, what);
		break;
	case S3_ACCESS_DENIED:
		fprintf(stderr,
			"irsafs: access denied listing s3://%s/%s (%s); the credentials from %s need "
			"s3:ListBucket on the bucket\n",
			o->bucket, o->prefix, what, source);
		break;
	case S3_WRONG_REGION:
		if (err->region[0])
			fprintf(stderr,
				"irsafs: bucket '%s' is in region %s, not %s (%s); use --region "
				"%s\n",
				o->bucket, err->region, o->region, what, err->region);
		else
			fprintf(stderr,
				"irsafs: bucket '%s' is not in region %s (%s); set --region to the "
				"bucket's region\n",
				o->bucket, o->region, what);
		break;
	case S3_NETWORK:
	case S3_TIMEOUT:
		fprintf(stderr, "irsafs: cannot reach the S3 endpoint %s: %s\n", endpoint, what);
		break;
	default:
		fprintf(stderr, "irsafs: cannot list s3://%s/%s at %s: %s\n", o->bucket, o->prefix,
			endpoint, what);
		break;
	}
}

/* Builds the libfuse arguments: read-only, kernel permission checks, names for mount(8). */
static int build_fuse_args(const struct fs_options *o, struct fuse_args *args)
{
	char *base = NULL;
	int rc;

	if (asprintf(&base, "ro,default_permissions,fsname=irsafs:%s,subtype=irsafs%s", o->bucket,
		     o->allow_other ? ",allow_other" : "") < 0)
		return -1;
	rc = fuse_opt_add_arg(args, "irsafs");
	if (rc == 0)
		rc = fuse_opt_add_arg(args, "-o");
	if (rc == 0)
		rc = fuse_opt_add_arg(args, base);
	if (rc == 0 && o->fuse_options) {
		rc = fuse_opt_add_arg(args, "-o");
		if (rc == 0)
			rc = fuse_opt_add_arg(args, o->fuse_options);
	}
	free(base);
	return rc;
}

static int serve(struct fuse_session *se, const struct fs_options *o)
{
	struct fuse_loop_config *loop = NULL;
	int rc;

	if (fuse_daemonize(o->foreground) != 0) {
		fprintf(stderr, "irsafs: cannot daemonize: %s\n", strerror(errno));
		return 1;
	}
	if (!o->foreground)
		log_use_syslog(true);
	loop = fuse_loop_cfg_create();
	if (!loop) {
		log_error("main", "out of memory");
		return 1;
	}
	/* Reads block on the network: allow enough threads that one slow GET does not stall
	 * every other reader. */
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 16);
	rc = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct fs_options o;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct auth_chain *chain = NULL;
	struct s3_client *client = NULL;
	struct fs_tree *tree = NULL;
	struct fuse_session *se = NULL;
	struct fs_backend backend;
	struct fs_ops_context ctx;
	struct s3_error err;
	struct s3_listing probe = {0};
	char msg[700];
	const char *source = "no credentials (--no-sign-request)";
	struct stat st;
	int status = 1;
	bool mounted = false, handlers = false;

	if (!fs_options_parse(argc, argv, &o, msg, sizeof(msg))) {
		fprintf(stderr, "irsafs: %s\nTry 'irsafs --help' for more information.\n", msg);
		fs_options_fini(&o);
		return EXIT_USAGE;
	}
	if (o.help || o.version) {
		if (o.help)
			fs_options_usage(stdout);
		else
			printf("irsafs %s\n", IRSAFS_VERSION);
		fs_options_fini(&o);
		return 0;
	}
	log_set_level(o.log_level);
	if (!fs_options_apply_env(&o)) {
		fprintf(stderr, "irsafs: out of memory\n");
		goto out;
	}
	if (stat(o.mountpoint, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "irsafs: mount point '%s' %s\n", o.mountpoint,
			errno == ENOENT ? "does not exist" : "is not a directory");
		goto out;
	}

	/* Libraries that must be initialised once, before any thread starts. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "irsafs: cannot initialise libcurl\n");
		goto out;
	}
	xmlInitParser();

	s3_error_clear(&err);
	struct s3_client_config cc = {
		.bucket = o.bucket,
		.region = o.region,
		.endpoint_url = o.endpoint_url,
		.force_path_style = o.force_path_style,
		.ca_bundle = o.ca_bundle,
	};
	/* A bad bucket name, region or endpoint is a usage error: say so before anything else. */
	if (s3_client_config_check(&cc, &err) != S3_OK) {
		fprintf(stderr, "irsafs: %s\n", err.message);
		status = err.status == S3_INVALID_ARGUMENT ? EXIT_USAGE : 1;
		goto out;
	}
	if (!o.no_sign_request) {
		chain = auth_chain_create(&err);
		if (!chain) {
			fprintf(stderr, "irsafs: %s\n", err.message);
			goto out;
		}
		source = auth_chain_source(chain);
		cc.credentials = auth_chain_provider(chain);
	}
	client = s3_client_create(&cc, &err);
	if (!client) {
		fprintf(stderr, "irsafs: %s\n", err.message);
		status = err.status == S3_INVALID_ARGUMENT ? EXIT_USAGE : 1;
		goto out;
	}
	log_debug("main", "endpoint %s, region %s, credentials from %s", s3_client_endpoint(client),
		  o.region, source);

	/* Mount only what can be listed: a bad key, bucket, region or endpoint stops here. */
	struct s3_list_params probe_params = {
		.prefix = o.prefix,
		.prefix_len = strlen(o.prefix),
		.delimiter = "/",
		.max_keys = 1,
	};
	if (s3_list_objects(client, &probe_params, &probe, &err) != S3_OK) {
		report_probe_failure(&o, client, source, &err);
		goto out;
	}

	fs_backend_s3_init(&backend, client);
	struct fs_tree_config tc = {
		.prefix = o.prefix,
		.uid = o.uid_set ? o.uid : getuid(),
		.gid = o.gid_set ? o.gid : getgid(),
		.file_mode = o.file_mode,
		.dir_mode = o.dir_mode,
		.metadata_ttl_ms = o.metadata_ttl_ms,
	};
	tree = fs_tree_create(&tc, &backend);
	if (!tree || build_fuse_args(&o, &args) != 0) {
		fprintf(stderr, "irsafs: out of memory\n");
		goto out;
	}
	ctx.tree = tree;
	ctx.backend = &backend;
	se = fuse_session_new(&args, &fs_lowlevel_ops, sizeof(fs_lowlevel_ops), &ctx);
	if (!se) {
		fprintf(stderr, "irsafs: invalid FUSE options '%s'\n",
			o.fuse_options ? o.fuse_options : "");
		status = EXIT_USAGE;
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "irsafs: cannot install signal handlers\n");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, o.mountpoint) != 0) {
		fprintf(stderr, "irsafs: cannot mount at '%s' (is /dev/fuse available, and the "
				"mount point not already in use?)\n",
			o.mountpoint);
		goto out;
	}
	mounted = true;
	log_info("main", "mounted s3://%s/%s at %s (%s, credentials from %s)", o.bucket, o.prefix,
		 o.mountpoint, s3_client_endpoint(client), source);
	status = serve(se, &o);
	log_info("main", "unmounting %s", o.mountpoint);
out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	fs_tree_destroy(tree);
	s3_listing_fini(&probe);
	s3_client_destroy(client);
	auth_chain_destroy(chain);
	fs_options_fini(&o);
	return status;
}
