/* moda-server's HTTP daemon: libmicrohttpd with a thread pool on poll() for
 * connections, and a queue of worker threads that run API calls, so that
 * inference never holds a connection thread (MHD suspend/resume).
 *
 * The daemon enforces the body limit (413 from Content-Length before any
 * upload, and while a chunked body streams in), times out idle
 * connections, logs one line per request, and records request and queue
 * durations. Graceful shutdown: readiness goes false, the listener stops
 * accepting, requests in flight drain for up to drain_seconds, then the
 * daemon and workers stop. */
#ifndef MODA_SERVER_H
#define MODA_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "api.h"
#include "metrics.h"

typedef struct server_config {
    const char *host;       /* bind address ("127.0.0.1"; "0.0.0.0" for all) */
    int port;               /* 0 = an ephemeral port (see server_port) */
    int threads;            /* MHD connection threads (default: cores) */
    size_t max_body;        /* request body limit in bytes (64 MiB) */
    int conn_timeout_s;     /* idle connection timeout (30) */
    int drain_seconds;      /* graceful shutdown limit (30) */
    int queue_max;          /* queued requests before 503 (1024) */
    FILE *log;              /* request and lifecycle log; NULL = silent */
    bool quiet;             /* lifecycle lines only, no line per request */
    api_config api;         /* registry, cache, workers, limits */
    const char *admin_token_file; /* --admin-token-file; its token goes to api.admin_token */
    char admin_token[1024]; /* the token read from it */
} server_config;

/* Defaults as above; api: cache 256 MiB, workers = cores, intra_threads 1,
 * max_classes 0, max_batch 1024, default_tau 0.9. */
server_config server_config_default(void);

/* Parse moda-server's command line into cfg (starting from the defaults).
 * Returns 0 to run, 1 when --help was printed (exit 0), 2 on a usage error
 * (message printed to stderr; exit 2). */
int server_config_parse(int argc, char **argv, server_config *cfg);

typedef struct server server;

/* Load the API (registry, models), start workers and the daemon. Returns 0,
 * or -1 with a one-line reason in err. */
int server_start(const server_config *cfg, server **out, char *err, size_t errlen);
int server_port(const server *s);  /* the bound port */
metrics *server_metrics(server *s);
/* Reload the registry (api_reload), logging the outcome; 0 or -1. */
int server_reload(server *s);

/* Graceful shutdown as described above; returns the number of requests
 * still in flight when the drain limit was reached (0 = clean). Safe to
 * call once; server_free calls it if needed. */
int server_shutdown(server *s);
void server_free(server *s); /* accepts NULL */

#endif
