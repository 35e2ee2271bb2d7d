/* The daemon: libmicrohttpd connection threads read requests and write
 * responses; API calls run on the worker queue while their connection is
 * suspended.
 *
 * A request's life: the first access-handler call allocates its state
 * (req_cls) and counts it in flight; upload calls append to a growing body
 * buffer (or discard an oversize one); the final call answers /metrics and
 * server errors inline, or suspends the connection and queues the request.
 * The worker fills the response and resumes the connection; the next call
 * queues the response. The completion callback frees the state and counts
 * the request out. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"
#include "workq.h"

/* An oversize body without a Content-Length (chunked) can only be answered
 * once the upload ends (MHD accepts no response mid-upload), so its bytes
 * are read and dropped; past this many the connection is simply closed. */
#define DISCARD_MAX ((size_t)64 << 20)
#define BODY_INITIAL ((size_t)16 << 10)

typedef struct request {
    server *srv;
    struct MHD_Connection *conn;
    char *method, *path;         /* owned */
    api_kv *query, *headers;     /* (n_query), (n_headers); owned, with their strings */
    int n_query, n_headers;
    char *body;                  /* (body_len) of (body_cap) bytes, owned */
    size_t body_len, body_cap;
    size_t discarded;            /* bytes dropped once the body was too large */
    bool too_large;              /* the body exceeds cfg.max_body */
    bool suspended;              /* handed to a worker, not yet re-entered */
    bool answered;               /* a response was queued */
    atomic_bool done;            /* resp is filled; set before resuming */
    uint64_t t_start, t_enqueue, t_worker; /* µs, monotonic; t_worker 0 = no worker ran */
    uint64_t deadline;           /* µs, monotonic: X-Moda-Timeout-Ms after t_start; 0 = none */
    api_response resp;
    char remote[INET6_ADDRSTRLEN];
} request;

struct server {
    server_config cfg;
    metrics *metrics;            /* owned */
    api *api;                    /* owned */
    workq *q;                    /* owned */
    struct MHD_Daemon *daemon;   /* owned */
    int port;
    pthread_mutex_t log_mu;      /* one log line at a time */
    pthread_mutex_t mu;          /* guards the three fields below */
    pthread_cond_t cv;           /* broadcast when in_flight or n_suspended drops */
    int in_flight;               /* requests started and not completed */
    int n_suspended;             /* connections suspended for a worker */
    atomic_int next_slot;        /* connection threads given an API slot so far */
    bool closing;                /* no more work goes to the queue */
    atomic_bool draining;        /* shutdown began: responses close their connection */
    bool shut_down;
    int shutdown_result;
    char mhd_error[256];         /* MHD's last log message, for start-up errors */
};

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_vline(server *s, const char *fmt, va_list ap) {
    if (!s->cfg.log) return;
    pthread_mutex_lock(&s->log_mu);
    vfprintf(s->cfg.log, fmt, ap);
    fputc('\n', s->cfg.log);
    fflush(s->cfg.log);
    pthread_mutex_unlock(&s->log_mu);
}

static void log_line(server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(server *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vline(s, fmt, ap);
    va_end(ap);
}

/* MHD's own diagnostics go to the same log, and the last one is kept to
 * explain a failed start. */
static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    server *s = cls;
    char msg[sizeof s->mhd_error];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    pthread_mutex_lock(&s->log_mu);
    memcpy(s->mhd_error, msg, n + 1);
    if (s->cfg.log) {
        fprintf(s->cfg.log, "mhd: %s\n", msg);
        fflush(s->cfg.log);
    }
    pthread_mutex_unlock(&s->log_mu);
}

/* Copies text for a log line, with spaces and control bytes as %XX so that
 * a client cannot break the line's fields. */
static void log_escape(char *dst, size_t size, const char *src) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *src && o + 4 < size; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch <= ' ' || ch == 0x7f) {
            dst[o++] = '%';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        } else {
            dst[o++] = (char)ch;
        }
    }
    dst[o] = '\0';
}

/* ---- request state ---- */

typedef struct kv_list {
    api_kv *kv;
    int n, cap;
    bool ok;
} kv_list;

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    kv_list *l = cls;
    if (l->n >= l->cap || !key) return MHD_YES;
    char *k = strdup(key), *v = strdup(value ? value : "");
    if (!k || !v) {
        free(k);
        free(v);
        l->ok = false;
        return MHD_NO;
    }
    l->kv[l->n++] = (api_kv){k, v};
    return MHD_YES;
}

/* Copies of the connection's values of one kind; false when out of memory. */
static bool copy_values(struct MHD_Connection *conn, enum MHD_ValueKind kind, api_kv **out, int *n) {
    int count = MHD_get_connection_values(conn, kind, NULL, NULL);
    *out = NULL;
    *n = 0;
    if (count <= 0) return true;
    kv_list l = {.kv = calloc((size_t)count, sizeof(api_kv)), .cap = count, .ok = true};
    if (!l.kv) return false;
    MHD_get_connection_values(conn, kind, collect_kv, &l);
    *out = l.kv;
    *n = l.n;
    return l.ok;
}

static void free_kv(api_kv *kv, int n) {
    for (int i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void request_free(request *rq) {
    if (!rq) return;
    free(rq->method);
    free(rq->path);
    free_kv(rq->query, rq->n_query);
    free_kv(rq->headers, rq->n_headers);
    free(rq->body);
    api_response_free(&rq->resp);
    free(rq);
}

static request *request_new(server *s, struct MHD_Connection *conn, const char *url, const char *method) {
    request *rq = calloc(1, sizeof(*rq));
    if (!rq) return NULL;
    rq->srv = s;
    rq->conn = conn;
    rq->t_start = now_us();
    atomic_init(&rq->done, false);
    rq->method = strdup(method);
    rq->path = strdup(url);
    bool ok = rq->method && rq->path && copy_values(conn, MHD_GET_ARGUMENT_KIND, &rq->query, &rq->n_query) &&
              copy_values(conn, MHD_HEADER_KIND, &rq->headers, &rq->n_headers);
    if (!ok) {
        request_free(rq);
        return NULL;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, rq->remote, sizeof rq->remote);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, rq->remote,
                  sizeof rq->remote);
    else
        snprintf(rq->remote, sizeof rq->remote, "-");
    return rq;
}

/* Appends upload bytes, or drops them once the body is over the limit.
 * MHD_NO (close the connection) when an oversize body goes on too long. */
static enum MHD_Result body_append(request *rq, const char *data, size_t n) {
    size_t max = rq->srv->cfg.max_body;
    if (!rq->too_large && n > max - rq->body_len) {
        rq->too_large = true;
        free(rq->body);
        rq->body = NULL;
        rq->body_len = rq->body_cap = 0;
    }
    if (rq->too_large) {
        rq->discarded += n;
        return rq->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (rq->body_len + n > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : BODY_INITIAL;
        while (cap < rq->body_len + n) cap = cap > max / 2 ? max : 2 * cap;
        char *b = realloc(rq->body, cap);
        if (!b) return MHD_NO;
        rq->body = b;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
    return MHD_YES;
}

/* ---- responses ---- */

static void record_metrics(server *s, const request *rq, uint64_t t_end) {
    const api_response *r = &rq->resp;
    double seconds = 1e-6 * (double)(t_end - rq->t_start);
    metrics_observe(s->metrics, HISTOGRAM_HTTP_SECONDS, api_route_template(rq->path), seconds);
    if (!r->is_inference) return;
    metrics_observe(s->metrics, HISTOGRAM_INFERENCE_SECONDS, r->model, seconds);
    /* Failures' time apart from successes', as Triton's statistics keep it. */
    double us = (double)(t_end - rq->t_start);
    if (r->error_code) {
        metrics_add(s->metrics, METRIC_REQUEST_FAILURE, r->model, r->error_code, 1);
        metrics_add(s->metrics, METRIC_REQUEST_FAILURE_DURATION_US, r->model, NULL, us);
    } else {
        metrics_add(s->metrics, METRIC_REQUEST_SUCCESS, r->model, NULL, 1);
        metrics_add(s->metrics, METRIC_REQUEST_DURATION_US, r->model, NULL, us);
        /* Queue time is the successes' (Triton's queue statistics count
         * them alone), as the batch queue's is. */
        if (rq->t_worker)
            metrics_add(s->metrics, METRIC_QUEUE_DURATION_US, r->model, NULL,
                        (double)(rq->t_worker - rq->t_enqueue));
    }
}

/* Queues rq->resp on the connection (MHD takes the body), records metrics
 * and logs the request. */
static enum MHD_Result send_response(request *rq) {
    server *s = rq->srv;
    api_response *r = &rq->resp;
    if (r->status < 100 || r->status > 599)
        api_response_refusal(r, rq->path, "internal", "the request produced no valid response");
    struct MHD_Response *mr = NULL;
    if (r->body && r->body_len) {
        mr = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
        if (mr) r->body = NULL; /* now MHD's */
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!mr) return MHD_NO;
    if (r->content_type[0]) MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    for (int i = 0; i < r->n_headers; i++)
        if (r->headers[i].key && r->headers[i].value)
            MHD_add_response_header(mr, r->headers[i].key, r->headers[i].value);
    /* A connection whose body was not read to the end cannot carry another
     * request; during shutdown keep-alive clients are told to go. */
    if (rq->too_large || atomic_load(&s->draining)) MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(rq->conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    rq->answered = true;
    uint64_t t_end = now_us();
    record_metrics(s, rq, t_end);
    if (!s->cfg.quiet) {
        char method[32], path[512];
        log_escape(method, sizeof method, rq->method);
        log_escape(path, sizeof path, rq->path);
        log_line(s, "%s %s %d %" PRIu64 "us %s", method, path, r->status, t_end - rq->t_start, rq->remote);
    }
    return ok;
}

/* Inline answer for /metrics (GET and HEAD). */
static void answer_metrics(request *rq) {
    api_response *r = &rq->resp;
    if (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD")) {
        api_response_refusal(r, rq->path, "method_not_allowed", "/metrics answers GET");
        api_response_add_header(r, "Allow", "GET, HEAD");
        return;
    }
    char *text = metrics_render(rq->srv->metrics);
    if (!text) {
        api_response_refusal(r, rq->path, "internal", "out of memory");
        return;
    }
    api_response_free(r);
    r->status = 200;
    r->body = text;
    r->body_len = strlen(text);
    snprintf(r->content_type, sizeof r->content_type, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- workers ---- */

static void job_finish(request *rq) {
    atomic_store_explicit(&rq->done, true, memory_order_release);
    MHD_resume_connection(rq->conn);
}

static api_request request_view(const request *rq) {
    return (api_request){
        .method = rq->method,
        .path = rq->path,
        .query = rq->query,
        .n_query = rq->n_query,
        .headers = rq->headers,
        .n_headers = rq->n_headers,
        .body = rq->body_len ? rq->body : NULL,
        .body_len = rq->body_len,
        .deadline_us = rq->deadline,
    };
}

static void job_run(void *ctx, int worker, void *job) {
    server *s = ctx;
    request *rq = job;
    rq->t_worker = now_us();
    if (rq->deadline && rq->t_worker > rq->deadline) { /* waited past its deadline: not worth running */
        api_response_refusal(&rq->resp, rq->path, "deadline_exceeded",
                             "the request waited for a worker past its X-Moda-Timeout-Ms");
        job_finish(rq);
        return;
    }
    const api_request req = request_view(rq);
    api_handle(s->api, worker, &req, &rq->resp);
    job_finish(rq);
}

/* A queued request the server will not run: it is shutting down. */
static void job_reject(void *ctx, void *job) {
    (void)ctx;
    request *rq = job;
    api_response_refusal(&rq->resp, rq->path, "not_ready", "the server is shutting down");
    job_finish(rq);
}

/* The API slot of the connection thread running now: the API has one
 * slot per worker and then one per connection thread, handed out on first
 * use. -1 if the slots are used up (not expected). */
static int connection_slot(server *s) {
    static _Thread_local const server *owner;
    static _Thread_local int slot;
    if (owner != s) {
        owner = s;
        slot = s->cfg.api.workers + atomic_fetch_add(&s->next_slot, 1);
    }
    return slot < s->cfg.api.workers + s->cfg.threads ? slot : -1;
}

/* Hands a complete request to the workers, its connection suspended until
 * the response is ready; or, when the API says it is light, runs it here:
 * for a batch-1 request on a small model the two thread hand-offs cost
 * more than the inference. */
static enum MHD_Result dispatch(request *rq) {
    server *s = rq->srv;
    pthread_mutex_lock(&s->mu);
    bool closing = s->closing;
    pthread_mutex_unlock(&s->mu);
    if (closing) {
        api_response_refusal(&rq->resp, rq->path, "not_ready", "the server is shutting down");
        return send_response(rq);
    }
    api_request req = request_view(rq);
    /* An optional deadline: milliseconds from receipt, 1 to 86400000. */
    const char *timeout = api_request_header(&req, "X-Moda-Timeout-Ms");
    if (timeout) {
        char *end = NULL;
        errno = 0;
        long ms = strtol(timeout, &end, 10);
        if (errno || end == timeout || *end || ms < 1 || ms > 86400000L) {
            api_response_refusal(&rq->resp, rq->path, "bad_request",
                                 "X-Moda-Timeout-Ms must be a whole number of milliseconds from 1 to 86400000");
            return send_response(rq);
        }
        rq->deadline = rq->t_start + (uint64_t)ms * 1000u;
        req.deadline_us = rq->deadline;
        /* A body that arrived past the deadline is not run, inline or
         * queued: the same answer a worker gives a request it picks up late. */
        if (now_us() > rq->deadline) {
            api_response_refusal(&rq->resp, rq->path, "deadline_exceeded",
                                 "the request's body arrived past its X-Moda-Timeout-Ms");
            return send_response(rq);
        }
    }
    int slot = api_request_is_light(s->api, &req) ? connection_slot(s) : -1;
    if (slot >= 0) {
        rq->t_enqueue = rq->t_worker = now_us(); /* queued for 0 µs */
        api_handle(s->api, slot, &req, &rq->resp);
        return send_response(rq);
    }
    pthread_mutex_lock(&s->mu);
    closing = s->closing;
    if (!closing) s->n_suspended++;
    pthread_mutex_unlock(&s->mu);
    if (closing) {
        api_response_refusal(&rq->resp, rq->path, "not_ready", "the server is shutting down");
        return send_response(rq);
    }
    /* Suspend before the push: a worker may resume as soon as it has the job. */
    rq->suspended = true;
    rq->t_enqueue = now_us();
    MHD_suspend_connection(rq->conn);
    if (!workq_push(s->q, rq)) {
        api_response_refusal(&rq->resp, rq->path, "overloaded", "too many requests are waiting; retry later");
        job_finish(rq);
    }
    return MHD_YES;
}

static void suspended_dec(server *s) {
    pthread_mutex_lock(&s->mu);
    s->n_suspended--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- MHD callbacks ---- */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **req_cls) {
    (void)version;
    server *s = cls;
    request *rq = *req_cls;
    if (!rq) {
        rq = request_new(s, conn, url, method);
        if (!rq) return MHD_NO;
        *req_cls = rq;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        /* Refuse a declared oversize body before any of it is read (and
         * before "100 Continue"). */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end = NULL;
        errno = 0;
        unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
        if (cl && end != cl && (errno == ERANGE || n > s->cfg.max_body)) {
            rq->too_large = true;
            api_response_refusal(&rq->resp, rq->path, "body_too_large", "the request body exceeds the server's limit");
            return send_response(rq);
        }
        /* A declared length sizes the buffer once (MHD enforces it). */
        if (n > 0) {
            rq->body = malloc((size_t)n);
            rq->body_cap = rq->body ? (size_t)n : 0;
        }
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return body_append(rq, upload_data, n);
    }
    /* The request is complete. */
    if (rq->suspended) { /* re-entered after the worker resumed the connection */
        if (!atomic_load_explicit(&rq->done, memory_order_acquire)) return MHD_YES;
        rq->suspended = false;
        suspended_dec(s);
        return send_response(rq);
    }
    if (rq->too_large) {
        api_response_refusal(&rq->resp, rq->path, "body_too_large", "the request body exceeds the server's limit");
        return send_response(rq);
    }
    if (!strcmp(rq->path, "/metrics")) {
        answer_metrics(rq);
        return send_response(rq);
    }
    return dispatch(rq);
}

static const char *termination_reason(enum MHD_RequestTerminationCode toe) {
    switch (toe) {
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client closed";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
    default: return "error";
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    server *s = cls;
    request *rq = *req_cls;
    if (!rq) return;
    *req_cls = NULL;
    if (!rq->answered && !s->cfg.quiet) {
        char method[32], path[512];
        log_escape(method, sizeof method, rq->method);
        log_escape(path, sizeof path, rq->path);
        log_line(s, "%s %s - %" PRIu64 "us %s (closed before a response: %s)", method, path,
                 now_us() - rq->t_start, rq->remote, termination_reason(toe));
    }
    /* A resumed connection can close before the handler runs again. */
    bool was_suspended = rq->suspended;
    request_free(rq);
    pthread_mutex_lock(&s->mu);
    if (was_suspended) s->n_suspended--;
    s->in_flight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- lifecycle ---- */

static void format_bytes(char *buf, size_t size, size_t n) {
    if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
        snprintf(buf, size, "%zu GiB", n >> 30);
    else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, size, "%zu MiB", n >> 20);
    else if (n >= ((size_t)1 << 10) && n % ((size_t)1 << 10) == 0)
        snprintf(buf, size, "%zu KiB", n >> 10);
    else
        snprintf(buf, size, "%zu bytes", n);
}

static int start_daemon(server *s, char *err, size_t errlen) {
    const server_config *c = &s->cfg;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(c->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", c->host, gai_strerror(gai));
        return -1;
    }
    /* poll(), not epoll: libmicrohttpd's MHD_quiesce_daemon() on an epoll
     * daemon with its own threads races the event loop for removing the
     * listen socket from the epoll set and aborts the process when it loses
     * (an unguarded MHD_PANIC, seen under ASan in test_server). With poll()
     * quiescing is a message to the threads. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_access, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s, /* first, to see every message */
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(c->threads > 1 ? c->threads : 0),
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->conn_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d%s%s", c->host, c->port, s->mhd_error[0] ? ": " : "",
                 s->mhd_error);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : c->port;
    return 0;
}

int server_start(const server_config *cfg, server **out, char *err, size_t errlen) {
    *out = NULL;
    if (errlen) err[0] = '\0';
    if (!cfg->host || !cfg->api.registry || cfg->threads < 1 || cfg->api.workers < 1 || cfg->queue_max < 1 ||
        cfg->max_body < 1 || cfg->port < 0 || cfg->port > 65535 || cfg->conn_timeout_s < 0 || cfg->drain_seconds < 0) {
        snprintf(err, errlen, "invalid server configuration");
        return -1;
    }
    server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = *cfg;
    atomic_init(&s->draining, false);
    atomic_init(&s->next_slot, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->log_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);

    s->metrics = metrics_new();
    if (!s->metrics) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    api_config ac = cfg->api;
    ac.metrics = s->metrics;
    ac.workers = cfg->api.workers + cfg->threads; /* workers' slots, then connection threads' */
    ac.batching.wait_slots = cfg->api.workers;    /* connection threads never wait in a batch */
    if (api_new(&ac, &s->api, err, errlen) != 0) {
        if (errlen && !err[0]) snprintf(err, errlen, "cannot open registry '%s'", cfg->api.registry);
        goto fail;
    }
    s->q = workq_new(cfg->api.workers, cfg->queue_max, job_run, s);
    if (!s->q) {
        snprintf(err, errlen, "cannot start %d worker threads", cfg->api.workers);
        goto fail;
    }
    if (start_daemon(s, err, errlen) != 0) goto fail;

    char cache[32], body[32];
    format_bytes(cache, sizeof cache, cfg->api.cache_bytes);
    format_bytes(body, sizeof body, cfg->max_body);
    bool v6 = strchr(cfg->host, ':') != NULL;
    log_line(s,
             "moda-server listening on http://%s%s%s:%d (device %s, threads %d, workers %d, queue %d, registry %s, "
             "cache %s, body limit %s, timeout %d s, drain %d s, batch max %d delay %d us)",
             v6 ? "[" : "", cfg->host, v6 ? "]" : "", s->port, api_device(s->api), cfg->threads, cfg->api.workers,
             cfg->queue_max, cfg->api.registry, cache, body, cfg->conn_timeout_s, cfg->drain_seconds,
             cfg->api.batching.max_batch, cfg->api.batching.max_delay_us);
    *out = s;
    return 0;
fail:
    server_free(s);
    return -1;
}

int server_port(const server *s) { return s ? s->port : 0; }

metrics *server_metrics(server *s) { return s ? s->metrics : NULL; }

int server_reload(server *s) {
    char msg[512];
    int rc = api_reload(s->api, msg, sizeof msg);
    if (s->cfg.log) {
        fprintf(s->cfg.log, "moda-server: registry %s: %s\n", rc ? "not reloaded, the old one serves on" : "reloaded",
                msg);
        fflush(s->cfg.log);
    }
    return rc;
}

int server_shutdown(server *s) {
    if (!s) return 0;
    if (s->shut_down) return s->shutdown_result;
    s->shut_down = true;
    if (!s->daemon) return 0;
    api_set_ready(s->api, false);
    atomic_store(&s->draining, true);
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    /* MHD no longer accepts, but the kernel would still queue connections on
     * the open socket until it is closed after the drain; stopping it
     * (without closing the descriptor, which MHD's threads may still hold)
     * refuses them now, so clients go elsewhere at once. */
    if (listen_fd != MHD_INVALID_SOCKET) shutdown(listen_fd, SHUT_RDWR);

    pthread_mutex_lock(&s->mu);
    int n = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    log_line(s, "shutting down: draining %d request%s (limit %d s)", n, n == 1 ? "" : "s", s->cfg.drain_seconds);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += s->cfg.drain_seconds;
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) break;
    int remaining = s->in_flight;
    s->closing = true;
    pthread_mutex_unlock(&s->mu);

    /* Nothing may stay suspended when the daemon stops: requests still
     * queued get 503, those running finish, and every connection is resumed. */
    workq_reject_pending(s->q, job_reject, s);
    pthread_mutex_lock(&s->mu);
    while (s->n_suspended > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    workq_free(s->q, job_reject, s);
    s->q = NULL;

    if (remaining)
        log_line(s, "shutdown forced: %d request%s still in flight after %d s", remaining, remaining == 1 ? "" : "s",
                 s->cfg.drain_seconds);
    else
        log_line(s, "drained: no requests in flight");
    log_line(s, "moda-server stopped");
    s->shutdown_result = remaining;
    return remaining;
}

void server_free(server *s) {
    if (!s) return;
    server_shutdown(s);
    workq_free(s->q, job_reject, s);
    api_free(s->api);
    metrics_free(s->metrics);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->log_mu);
    free(s);
}
