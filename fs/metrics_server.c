/*
 * The Prometheus endpoint on libmicrohttpd. See metrics_server.h.
 */
#include "metrics_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "s3/log.h"

struct fs_metrics_server {
	struct fs_metrics_sources sources;
	int fd;
	unsigned port;
	struct MHD_Daemon *daemon;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
			      char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct fs_metrics_server *s = cls;
	struct buf out;
	size_t len;

	(void)version, (void)upload, (void)state;
	if (*upload_size)
		return MHD_NO;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
			      strdup("only GET\n"), 9);
	buf_init(&out);
	if (strcmp(url, "/metrics") == 0) {
		if (!fs_metrics_render(&s->sources, &out)) {
			buf_fini(&out);
			return MHD_NO;
		}
		len = out.len; /* before buf_steal, which empties out */
		return answer(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
			      buf_steal(&out), len);
	}
	if (strcmp(url, "/") == 0) {
		buf_appendf(&out, "irsafs %s: metrics at /metrics\n", IRSAFS_VERSION);
		len = out.len;
		return answer(conn, MHD_HTTP_OK, "text/plain", buf_steal(&out), len);
	}
	buf_fini(&out);
	return answer(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found\n"), 10);
}

/* Fills sa from "[HOST:]PORT". */
static bool parse_addr(const char *addr, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[64] = "127.0.0.1";
	const char *colon = strrchr(addr, ':'), *port_text = addr;
	char *end;
	unsigned long port;

	if (colon) {
		size_t n = (size_t)(colon - addr);

		if (n == 0 || n >= sizeof(host))
			return false;
		memcpy(host, addr, n);
		host[n] = '\0';
		port_text = colon + 1;
	}
	port = strtoul(port_text, &end, 10);
	if (!*port_text || *end || port > 65535)
		return false;
	memset(sa, 0, sizeof(*sa));
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		size_t n = strlen(host);

		if (n < 3 || host[n - 1] != ']')
			return false;
		host[n - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;

	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1;
}

struct fs_metrics_server *fs_metrics_server_create(const char *addr,
						   const struct fs_metrics_sources *sources,
						   char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len;
	struct fs_metrics_server *s;
	int one = 1;

	if (!parse_addr(addr, &sa, &len)) {
		snprintf(err, errlen,
			 "--metrics-addr '%s' is not [HOST:]PORT (e.g. 9100 or 0.0.0.0:9100)", addr);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->sources = *sources;
	s->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(s->fd, (struct sockaddr *)&sa, len) != 0 || listen(s->fd, 16) != 0) {
		snprintf(err, errlen, "cannot listen on %s for metrics: %s", addr, strerror(errno));
		fs_metrics_server_destroy(s);
		return NULL;
	}
	len = sizeof(sa);
	getsockname(s->fd, (struct sockaddr *)&sa, &len);
	s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						 : ((struct sockaddr_in *)&sa)->sin_port);
	return s;
}

bool fs_metrics_server_start(struct fs_metrics_server *s, char *err, size_t errlen)
{
	sigset_t all, old;

	/* libmicrohttpd's thread inherits this mask: signals are for the FUSE threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, s,
				     MHD_OPTION_LISTEN_SOCKET, s->fd,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->daemon) {
		snprintf(err, errlen, "cannot start the metrics server");
		return false;
	}
	log_info("metrics", "serving Prometheus metrics on port %u at /metrics", s->port);
	return true;
}

void fs_metrics_server_destroy(struct fs_metrics_server *s)
{
	if (!s)
		return;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	else if (s->fd >= 0)
		close(s->fd);
	free(s);
}

unsigned fs_metrics_server_port(const struct fs_metrics_server *s)
{
	return s->port;
}
