/* The api the request fuzz targets share: opened once per process on the
 * bundled registry, and made read-only through its own state so that no
 * replacement job can ever be queued (the fuzzer must not write models/). */
#ifndef MODA_FUZZ_API_H
#define MODA_FUZZ_API_H

#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "api_state.h"

static api *fuzz_api;

static inline int fuzz_api_open(void) {
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 4u << 20, .workers = 1, .intra_threads = 1,
                      .max_batch = 8, .default_tau = 0.9f, .jobs_max = 1, .jobs_queue = 1};
    char err[1024];
    if (api_new(&cfg, &fuzz_api, err, sizeof err)) {
        fprintf(stderr, "api_new(%s): %s\n", MODA_MODELS_DIR, err);
        abort();
    }
    /* As for a registry served from a URL: replace and calibrate answer 409
     * before anything is queued or written. */
    fuzz_api->store.remote = true;
    return 0;
}

/* One request through api_handle; the response is checked for the shape
 * every answer has, then freed. */
static inline void fuzz_api_request(const api_request *req) {
    const char *path = req->path;
    api_response resp = {0};
    api_handle(fuzz_api, 0, req, &resp);
    /* MODA_FUZZ_PRINT=1: each answer's status and start, to see what a
     * seed or a crash input reaches. */
    if (getenv("MODA_FUZZ_PRINT"))
        fprintf(stderr, "%s -> %d %.*s\n", path, resp.status, resp.body_len < 200 ? (int)resp.body_len : 200,
                resp.body ? resp.body : "");
    if (resp.status < 200 || resp.status > 599 || (resp.body_len && !resp.body)) abort();
    /* A server error on any input is a bug: bad input is a 4xx. */
    if (resp.status >= 500 && resp.status != 503) {
        fprintf(stderr, "%s answered %d: %.*s\n", path, resp.status, (int)resp.body_len, resp.body);
        abort();
    }
    api_response_free(&resp);
}

/* A POST of body to path with these headers. */
static inline void fuzz_api_post(const char *path, const api_kv *headers, int n_headers, const void *body, size_t len) {
    api_request req = {.method = "POST", .path = path, .headers = headers, .n_headers = n_headers,
                       .body = body, .body_len = len};
    fuzz_api_request(&req);
}

#endif
