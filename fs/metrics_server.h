/*
 * The Prometheus endpoint: GET /metrics on --metrics-addr, served by libmicrohttpd from its own
 * thread. The listening socket is opened before the mount (so a busy port fails the start in
 * one line) and served only once the process has daemonized (threads do not survive fork).
 */
#ifndef IRSAFS_FS_METRICS_SERVER_H
#define IRSAFS_FS_METRICS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

struct fs_metrics_server;

/* Parses "[HOST:]PORT" (HOST an IPv4 address, "localhost" or "[IPv6]"; 127.0.0.1 when absent)
 * and binds and listens on it. sources is copied (its pointers borrowed). Returns NULL with a
 * one-line reason in err. */
struct fs_metrics_server *fs_metrics_server_create(const char *addr,
						   const struct fs_metrics_sources *sources,
						   char *err, size_t errlen);

/* Starts serving (a thread of libmicrohttpd's). Returns false with a reason in err. */
bool fs_metrics_server_start(struct fs_metrics_server *s, char *err, size_t errlen);

/* Stops serving and closes the socket. Accepts NULL. */
void fs_metrics_server_destroy(struct fs_metrics_server *s);

/* The port actually bound (useful with port 0). */
unsigned fs_metrics_server_port(const struct fs_metrics_server *s);

#endif
