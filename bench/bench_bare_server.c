/* The floor for moda-server's HTTP throughput: libmicrohttpd configured as
 * moda-server configures it (a thread pool on poll()), reading the whole
 * request body and answering every request with the same fixed 80-byte
 * JSON body. What a request costs here is what the HTTP layer costs.
 *
 *     bench_bare_server PORT [THREADS]
 *
 * Prints "listening on 127.0.0.1:PORT" and serves until SIGTERM or SIGINT. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 80 bytes, about the size of a one-sample top_k answer. */
static const char ANSWER[] = "{\"id\":\"fmnist-lenet5\",\"outputs\":[{\"class\":\"Ankle boot\",\"index\":9}],\"ms\":0.1250}\n";

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **req_cls) {
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    static int first_call_marker;
    if (!*req_cls) { /* the headers: nothing to answer yet */
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size) { /* body bytes: read and dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof ANSWER - 1, (void *)ANSWER, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_bare_server PORT [THREADS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : (unsigned)(cores > 0 ? cores : 1);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL,
                                            NULL, on_access, NULL, MHD_OPTION_THREAD_POOL_SIZE,
                                            threads > 1 ? threads : 0, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                                            MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench_bare_server: cannot listen on port %d\n", port);
        return 1;
    }
    printf("listening on 127.0.0.1:%d (threads %u)\n", port, threads);
    fflush(stdout);
    int sig;
    while (sigwait(&stop, &sig) != 0) {
    }
    MHD_stop_daemon(d);
    return 0;
}
