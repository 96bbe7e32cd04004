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
#include <pthread.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include "fs/readahead.h"
#include "fs/ops.h"
#include "fs/metrics_server.h"
#include "fs/options.h"
#include "fs/reader.h"
#include "fs/tree.h"
#include "s3/client.h"
#include "s3/http.h"
#include "s3/log.h"

#define EXIT_USAGE 2

extern char **environ;

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
	case S3_TLS:
		fprintf(stderr, "irsafs: cannot reach the S3 endpoint %s: %s\n", endpoint, what);
		break;
	default:
		fprintf(stderr, "irsafs: cannot list s3://%s/%s at %s: %s\n", o->bucket, o->prefix,
			endpoint, what);
		break;
	}
}

/* libfuse's own messages, which may arrive in fragments ending with a newline. Until the mount
 * is live the last one is only kept, so that our one-line error can quote it; afterwards they
 * go to our log. */
static char fuse_message[256];
static char fuse_partial[256];
static bool fuse_messages_live;

static void on_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void on_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t used = strlen(fuse_partial), n;
	const char *line = fuse_partial;

	vsnprintf(fuse_partial + used, sizeof(fuse_partial) - used, fmt, ap);
	n = strlen(fuse_partial);
	if (n == 0 || (fuse_partial[n - 1] != '\n' && n < sizeof(fuse_partial) - 1))
		return;
	while (n && (fuse_partial[n - 1] == '\n' || fuse_partial[n - 1] == ' '))
		fuse_partial[--n] = '\0';
	if (strncmp(line, "fuse: ", 6) == 0)
		line += 6;
	if (fuse_messages_live)
		log_msg(level <= FUSE_LOG_ERR	    ? LOG_LEVEL_ERROR
			: level == FUSE_LOG_WARNING ? LOG_LEVEL_WARN
			: level <= FUSE_LOG_INFO    ? LOG_LEVEL_INFO
						    : LOG_LEVEL_DEBUG,
			"fuse", "%s", line);
	else
		snprintf(fuse_message, sizeof(fuse_message), "%s", line);
	fuse_partial[0] = '\0';
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

/* Stopping: SIGTERM (Kubernetes), SIGINT (Ctrl-C) or SIGHUP ends the FUSE loop and cancels
 * every S3 and credential transfer at once, so requests in flight fail instead of keeping the
 * process alive; then the mount is taken down. The handler only stores flags
 * (async-signal-safe); our own threads block these signals so that they reach the FUSE
 * threads, whose blocking reads they interrupt. */
static struct fuse_session *signal_session;
static volatile sig_atomic_t stop_signal;
static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};

static void on_stop_signal(int sig)
{
	stop_signal = sig;
	http_cancel_all();
	fuse_session_exit(signal_session);
}

static int install_signal_handlers(struct fuse_session *se)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	signal_session = se;
	/* No SA_RESTART: the FUSE threads' reads must return EINTR. */
	sa.sa_handler = on_stop_signal;
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++) {
		if (sigaction(stop_signals[i], &sa, NULL) != 0)
			return -1;
	}
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

static void remove_signal_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		sigaction(stop_signals[i], &sa, NULL);
}

/* Everything main() sets up, torn down in reverse by app_fini. */
struct app {
	struct fs_options o;
	char *mountpoint; /* absolute */
	struct fuse_args args;
	struct fuse_session *se;
	bool handlers;
	bool mounted;
	bool ready_written;
	int started_fd; /* daemon child: pipe to the waiting parent, -1 otherwise */
	char failure[256]; /* why the start failed after the mount, for the parent */
	struct auth_chain *chain;
	const char *source; /* of credentials, for messages */
	struct s3_client *client;
	struct fs_backend backend;
	struct fs_tree *tree;
	struct fs_reader *reader;
	struct fs_ops_context ctx;
	struct fs_metrics_sources metrics;
	struct fs_metrics_server *metrics_server;
	pthread_t summary_thread;
	bool summary_running;
};

/* A FUSE mount whose daemon died (killed without SIGTERM) answers ENOTCONN ("Transport
 * endpoint is not connected"): detach it so that this start can mount again. */
static void detach_dead_mount(const char *path)
{
	pid_t pid;
	int status;
	char *const argv[] = {"fusermount3", "-u", "-z", (char *)path, NULL};

	if (umount2(path, MNT_DETACH) == 0) {
		LOG_EVENT(LOG_LEVEL_INFO, "main", "detached a dead mount", {"mountpoint", path});
		return;
	}
	/* Not allowed to unmount ourselves: ask the setuid helper. */
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) == 0 &&
	    waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		LOG_EVENT(LOG_LEVEL_INFO, "main", "detached a dead mount", {"mountpoint", path});
}

static int check_mountpoint(struct app *a)
{
	struct stat st;

	struct statfs sfs;

	/* statfs always reaches a FUSE daemon, where stat may be answered from the kernel's
	 * cache, so it is what tells a dead mount. */
	if (statfs(a->o.mountpoint, &sfs) != 0 && errno == ENOTCONN)
		detach_dead_mount(a->o.mountpoint);
	if (stat(a->o.mountpoint, &st) != 0) {
		int e = errno;

		fprintf(stderr, "irsafs: mount point '%s' %s%s\n", a->o.mountpoint,
			e == ENOENT ? "does not exist" : "cannot be used: ",
			e == ENOENT ? "" : strerror(e));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "irsafs: mount point '%s' is not a directory\n", a->o.mountpoint);
		return 1;
	}
	/* The daemon leaves the working directory; unmounting must not depend on it, nor the
	 * ready file's place. */
	a->mountpoint = realpath(a->o.mountpoint, NULL);
	if (!a->mountpoint) {
		fprintf(stderr, "irsafs: mount point '%s': %s\n", a->o.mountpoint, strerror(errno));
		return 1;
	}
	if (a->o.ready_file && a->o.ready_file[0] != '/') {
		char cwd[PATH_MAX], *abs = NULL;

		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, a->o.ready_file) < 0) {
			fprintf(stderr, "irsafs: cannot resolve the ready file '%s'\n",
				a->o.ready_file);
			return 1;
		}
		free(a->o.ready_file);
		a->o.ready_file = abs;
	}
	return 0;
}

/* Creates the FUSE session (which validates the FUSE options) without mounting. The session's
 * userdata, a->ctx, is filled in later, before the mount. */
static int create_session(struct app *a)
{
	if (build_fuse_args(&a->o, &a->args) != 0) {
		fprintf(stderr, "irsafs: out of memory\n");
		return 1;
	}
	fuse_set_log_func(on_fuse_log);
	a->se = fuse_session_new(&a->args, &fs_lowlevel_ops, sizeof(fs_lowlevel_ops), &a->ctx);
	if (!a->se) {
		fprintf(stderr, "irsafs: invalid FUSE options '%s': %s\n",
			a->o.fuse_options ? a->o.fuse_options : "", fuse_message);
		return EXIT_USAGE;
	}
	return 0;
}

/* Credentials, client, and one listing of the bucket/prefix: a bad key, bucket, region or
 * endpoint stops here, before anything is mounted. */
static int connect_bucket(struct app *a)
{
	struct s3_error err;
	struct s3_listing probe = {0};
	struct s3_client_config cc = {
		.bucket = a->o.bucket,
		.region = a->o.region,
		.endpoint_url = a->o.endpoint_url,
		.force_path_style = a->o.force_path_style,
		.ca_bundle = a->o.ca_bundle,
		/* The fetch workers, plus room for listings and the probe. */
		.max_connections = a->o.max_connections + 4,
		.max_attempts = a->o.max_attempts,
		.max_retry_ms = a->o.max_retry_ms,
		.stall_timeout_s = a->o.stall_timeout_s,
	};
	struct s3_list_params params = {
		.prefix = a->o.prefix,
		.prefix_len = strlen(a->o.prefix),
		.delimiter = "/",
		.max_keys = 1,
	};
	enum s3_status status;

	s3_error_clear(&err);
	/* A bad bucket name, region or endpoint is a usage error: say so before credentials. */
	if (s3_client_config_check(&cc, &err) != S3_OK) {
		fprintf(stderr, "irsafs: %s\n", err.message);
		return err.status == S3_INVALID_ARGUMENT ? EXIT_USAGE : 1;
	}
	a->source = "no credentials (--no-sign-request)";
	if (!a->o.no_sign_request) {
		struct auth_chain_config ac = {.region = a->o.region, .ca_bundle = a->o.ca_bundle};

		a->chain = auth_chain_create(&ac, &err);
		if (!a->chain) {
			fprintf(stderr, "irsafs: %s\n", err.message);
			return 1;
		}
		a->source = auth_chain_source(a->chain);
		cc.credentials = auth_chain_provider(a->chain);
	}
	a->client = s3_client_create(&cc, &err);
	if (!a->client) {
		fprintf(stderr, "irsafs: %s\n", err.message);
		return 1;
	}
	log_debug("main", "endpoint %s, region %s, credentials from %s",
		  s3_client_endpoint(a->client), a->o.region, a->source);
	status = s3_list_objects(a->client, &params, &probe, &err);
	s3_listing_fini(&probe);
	if (status != S3_OK) {
		report_probe_failure(&a->o, a->client, a->source, &err);
		return 1;
	}
	return 0;
}

/* The ready file: written (atomically, by rename) once the mount is live and this process will
 * serve it, removed at exit. */
static bool write_ready_file(struct app *a)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", a->o.ready_file) >= (int)sizeof(tmp))
		return false;
	f = fopen(tmp, "w");
	if (!f)
		return false;
	fprintf(f, "%ld %s\n", (long)getpid(), a->mountpoint);
	if (fclose(f) != 0 || rename(tmp, a->o.ready_file) != 0) {
		unlink(tmp);
		return false;
	}
	a->ready_written = true;
	return true;
}

static void credentials_info(void *ctx, struct fs_credentials_info *out)
{
	struct app *a = ctx;

	out->source = auth_chain_source(a->chain);
	auth_chain_get_stats(a->chain, &out->renewals, &out->renewal_failures,
			     &out->expires_in_s);
}

/* SIGUSR1 logs a summary of the metrics. The signal stays blocked in every thread; this one
 * takes it with sigwait, so the summary is written from an ordinary thread. app_fini stops it
 * with a SIGUSR1 of its own after setting summary_stopping. */
static atomic_bool summary_stopping;

static void *summary_thread(void *arg)
{
	struct app *a = arg;
	sigset_t usr1;
	int sig;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	while (sigwait(&usr1, &sig) == 0 && !atomic_load(&summary_stopping)) {
		struct buf out;

		buf_init(&out);
		if (fs_metrics_summary(&a->metrics, &out))
			log_info("metrics", "%s", out.data);
		buf_fini(&out);
	}
	return NULL;
}

/* Going to the background, once the mount is live: the parent waits until the child has
 * started everything (threads, ready file, metrics) and exits 0, or 1 if the child failed
 * first, so that the command's exit status tells the truth. The child gets a new session, "/"
 * as working directory and /dev/null as standard streams, and logs to syslog (or its log
 * file) from then on. */
static int daemonize(struct app *a)
{
	int fds[2], devnull;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid > 0) {
		char reply[sizeof(a->failure) + 1];
		ssize_t n;

		close(fds[1]);
		while ((n = read(fds[0], reply, sizeof(reply) - 1)) < 0 && errno == EINTR)
			;
		/* The mount belongs to the child now; the parent must not take it down. */
		if (n > 0 && reply[0] == '0')
			_exit(0);
		reply[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "irsafs: %s\n",
			n > 1 ? reply + 1 : "the daemon failed to start (see syslog)");
		_exit(1);
	}
	close(fds[0]);
	a->started_fd = fds[1];
	setsid();
	if (chdir("/") != 0)
		log_debug("main", "cannot change directory to /: %s", strerror(errno));
	if (!a->o.log_file)
		log_use_syslog(true);
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	return 0;
}

/* Tells the waiting parent (if any) how the start went: "0", or "1" and the reason, which
 * the parent prints as its one line. */
static void report_started(struct app *a, bool ok)
{
	char answer[sizeof(a->failure) + 1];
	size_t n;

	if (a->started_fd < 0)
		return;
	n = (size_t)snprintf(answer, sizeof(answer), "%c%s", ok ? '0' : '1',
			     ok ? "" : a->failure);
	if (write(a->started_fd, answer, n < sizeof(answer) ? n : sizeof(answer) - 1) < 0)
		log_debug("main", "the parent is gone: %s", strerror(errno));
	close(a->started_fd);
	a->started_fd = -1;
}

/* A start that fails after the mount: logged, and kept for the parent's one line. */
static int start_failed(struct app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int start_failed(struct app *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->failure, sizeof(a->failure), fmt, ap);
	va_end(ap);
	log_error("main", "%s", a->failure);
	return 1;
}

/* Larger kernel reads, where /sys lets us (see fs/readahead.h). The kernel sends FUSE's INIT
 * first and fixes the mount's read-ahead while it takes in the answer (in the write that
 * carries it), so INIT is answered here, before the worker threads run, and the read-ahead set
 * right after: before any read. Not being able to set it is no reason to fail the mount: reads
 * then come in the kernel's default size. */
static void answer_init_and_set_read_ahead(struct app *a)
{
	struct fuse_buf buf = {.mem = NULL};
	char why[256], kib[24];
	int n;

	do
		n = fuse_session_receive_buf(a->se, &buf);
	while (n == -EINTR && !fuse_session_exited(a->se));
	if (n > 0)
		fuse_session_process_buf(a->se, &buf);
	free(buf.mem);
	if (n <= 0 || a->o.read_ahead == 0 || fuse_session_exited(a->se))
		return;
	snprintf(kib, sizeof(kib), "%llu", (unsigned long long)(a->o.read_ahead / 1024));
	if (fs_set_read_ahead(a->mountpoint, a->o.read_ahead, why, sizeof(why)) == 0) {
		LOG_EVENT(LOG_LEVEL_DEBUG, "main", "kernel read-ahead set", {"kib", kib});
		return;
	}
	/* The default is best effort; an explicit --read-ahead deserves a warning. */
	LOG_EVENT(a->o.read_ahead_set ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "main",
		  "kernel read-ahead left at its default", {"wanted_kib", kib}, {"reason", why});
}

static int serve(struct app *a)
{
	sigset_t usr1;
	char msg[256];
	struct fuse_loop_config *loop = NULL;
	int rc;

	if (!a->o.foreground && daemonize(a) != 0) {
		fprintf(stderr, "irsafs: cannot daemonize: %s\n", strerror(errno));
		return 1;
	}
	/* Threads start only now: they would not survive daemonize's fork. */
	if (a->chain && auth_chain_start(a->chain) != 0)
		return start_failed(a, "cannot start the credential refresher");
	if (fs_reader_start(a->reader) != 0)
		return start_failed(a, "cannot start the fetch workers");
	/* Blocked here before the FUSE threads exist, so that they inherit it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	a->summary_running = pthread_create(&a->summary_thread, NULL, summary_thread, a) == 0;
	if (a->metrics_server && !fs_metrics_server_start(a->metrics_server, msg, sizeof(msg)))
		return start_failed(a, "%s", msg);
	answer_init_and_set_read_ahead(a);
	if (a->o.ready_file && !write_ready_file(a))
		return start_failed(a, "cannot write the ready file %s: %s", a->o.ready_file,
				    strerror(errno));
	loop = fuse_loop_cfg_create();
	if (!loop)
		return start_failed(a, "out of memory");
	/* Everything is in place: the parent may report success. */
	LOG_EVENT(LOG_LEVEL_INFO, "main", "mounted", {"bucket", a->o.bucket},
		  {"prefix", a->o.prefix}, {"mountpoint", a->mountpoint},
		  {"endpoint", s3_client_endpoint(a->client)}, {"region", s3_client_region(a->client)},
		  {"credentials", a->source}, {"version", IRSAFS_VERSION});
	report_started(a, true);
	/* Reads block on the network: allow enough threads that one slow GET does not stall
	 * every other reader. */
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 16);
	rc = fuse_session_loop_mt(a->se, loop);
	fuse_loop_cfg_destroy(loop);
	if (stop_signal)
		LOG_EVENT(LOG_LEVEL_INFO, "main", "stopping", {"signal", strsignal(stop_signal)});
	return rc == 0 ? 0 : 1;
}

/* fuse_session_mount, with whatever fusermount3 (run by libfuse when we may not mount
 * ourselves) prints on stderr taken into fuse_message, so a failure stays one line. */
static int mount_quietly(struct app *a)
{
	int pipefd[2], saved = -1, rc;
	ssize_t n;
	char text[sizeof(fuse_message)];

	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0)
		return fuse_session_mount(a->se, a->mountpoint);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	if (saved >= 0)
		dup2(pipefd[1], STDERR_FILENO);
	rc = fuse_session_mount(a->se, a->mountpoint);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	close(pipefd[1]);
	n = read(pipefd[0], text, sizeof(text) - 1);
	close(pipefd[0]);
	if (n > 0) {
		text[n] = '\0';
		text[strcspn(text, "\n")] = '\0';
		if (rc != 0 && !fuse_message[0])
			snprintf(fuse_message, sizeof(fuse_message), "%s", text);
		else if (rc == 0)
			log_debug("main", "fusermount3 said: %s", text);
	}
	return rc;
}

static int mount_and_serve(struct app *a)
{
	int status;

	fs_backend_s3_init(&a->backend, a->client);
	struct fs_tree_config tc = {
		.prefix = a->o.prefix,
		.uid = a->o.uid_set ? a->o.uid : getuid(),
		.gid = a->o.gid_set ? a->o.gid : getgid(),
		.file_mode = a->o.file_mode,
		.dir_mode = a->o.dir_mode,
		.metadata_ttl_ms = a->o.metadata_ttl_ms,
	};
	struct fs_reader_config rc = {
		.cache_size = a->o.cache_size,
		.max_connections = a->o.max_connections,
	};
	a->tree = fs_tree_create(&tc, &a->backend);
	if (a->tree)
		a->reader = fs_reader_create(a->tree, &a->backend, &rc);
	if (!a->tree || !a->reader) {
		fprintf(stderr, "irsafs: out of memory\n");
		return 1;
	}
	a->metrics = (struct fs_metrics_sources){
		.reader = a->reader,
		.tree = a->tree,
		.bucket = a->o.bucket,
		.prefix = a->o.prefix,
		.credentials = a->chain ? credentials_info : NULL,
		.credentials_ctx = a,
	};
	if (a->o.metrics_addr) {
		char msg[256];

		/* Bound now, so that a busy port fails the start before anything is mounted. */
		a->metrics_server = fs_metrics_server_create(a->o.metrics_addr, &a->metrics, msg,
							     sizeof(msg));
		if (!a->metrics_server) {
			fprintf(stderr, "irsafs: %s\n", msg);
			return 1;
		}
	}
	a->ctx.tree = a->tree;
	a->ctx.reader = a->reader;
	if (install_signal_handlers(a->se) != 0) {
		fprintf(stderr, "irsafs: cannot install signal handlers: %s\n", strerror(errno));
		return 1;
	}
	a->handlers = true;
	if (mount_quietly(a) != 0) {
		fprintf(stderr, "irsafs: cannot mount at '%s': %s\n", a->mountpoint,
			fuse_message[0] ? fuse_message
					: "is /dev/fuse available and the mount point free?");
		return 1;
	}
	a->mounted = true;
	fuse_messages_live = true;
	status = serve(a);
	LOG_EVENT(LOG_LEVEL_INFO, "main", "unmounted", {"mountpoint", a->mountpoint});
	return status;
}

static void app_fini(struct app *a)
{
	report_started(a, false);
	if (a->summary_running) {
		atomic_store(&summary_stopping, true);
		pthread_kill(a->summary_thread, SIGUSR1);
		pthread_join(a->summary_thread, NULL);
	}
	fs_metrics_server_destroy(a->metrics_server);
	if (a->ready_written)
		unlink(a->o.ready_file);
	if (a->mounted)
		fuse_session_unmount(a->se);
	if (a->handlers)
		remove_signal_handlers();
	if (a->se)
		fuse_session_destroy(a->se);
	fuse_opt_free_args(&a->args);
	fs_reader_destroy(a->reader);
	fs_tree_destroy(a->tree);
	s3_client_destroy(a->client);
	auth_chain_destroy(a->chain);
	free(a->mountpoint);
	fs_options_fini(&a->o);
}

int main(int argc, char **argv)
{
	struct app a = {.args = FUSE_ARGS_INIT(0, NULL), .started_fd = -1};
	char msg[700];
	int status;

	if (!fs_options_parse(argc, argv, &a.o, msg, sizeof(msg))) {
		fprintf(stderr, "irsafs: %s (see 'irsafs --help')\n", msg);
		app_fini(&a);
		return EXIT_USAGE;
	}
	if (a.o.help || a.o.version) {
		if (a.o.help)
			fs_options_usage(stdout);
		else
			printf("irsafs %s\n", IRSAFS_VERSION);
		app_fini(&a);
		return 0;
	}
	log_set_level(a.o.log_level);
	log_set_format(a.o.log_format);
	if (a.o.log_file && !log_use_file(a.o.log_file)) {
		fprintf(stderr, "irsafs: cannot open the log file %s: %s\n", a.o.log_file,
			strerror(errno));
		app_fini(&a);
		return 1;
	}
	if (!fs_options_apply_env(&a.o, msg, sizeof(msg))) {
		fprintf(stderr, "irsafs: %s\n", msg);
		app_fini(&a);
		return EXIT_USAGE;
	}
	/* Libraries that must be initialised once, before any thread starts. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "irsafs: cannot initialise libcurl\n");
		app_fini(&a);
		return 1;
	}
	xmlInitParser();

	status = check_mountpoint(&a);
	if (status == 0)
		status = create_session(&a);
	if (status == 0)
		status = connect_bucket(&a);
	if (status == 0)
		status = mount_and_serve(&a);
	app_fini(&a);
	return status;
}
