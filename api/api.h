/* The API layer: one buffered HTTP request in, one buffered response out.
 *
 * The server (server/) owns sockets, bodies, limits, threads and metrics of
 * request timing; the API (api/) parses and validates requests, runs the
 * engine through the composed-model cache, and encodes responses. The API
 * never sees a connection and the server never sees a tensor.
 *
 * Routes (openapi.yaml has the details):
 *   GET    /v1/models                 GET /v1/models/{model}
 *   POST   /v1/compose                DELETE /v1/compose/{id}
 *   POST   /v1/infer
 *   POST   /v1/replace                POST /v1/calibrate     (jobs; admin)
 *   GET    /v1/jobs                   GET, DELETE /v1/jobs/{id}
 *   POST   /v1/registry/reload                               (admin)
 *   GET    /v2                        GET /v2/health/live, /v2/health/ready
 *   GET    /v2/models/{id}            GET /v2/models/{id}/ready
 *   POST   /v2/models/{id}/infer
 *   GET    /, /ui/                    GET /ui/{file}      (the module explorer)
 *
 * A composed model's id is "<model>~<i>-<j>-...~<tau>[~per-layer]": the
 * registry model, the parent class indices in output order, the threshold
 * (%g) and, for a per-layer composition, its mode. '~'
 * cannot occur in a model name and is unreserved in URLs, so an id parses
 * back unambiguously: an id that was evicted from the cache (or never
 * composed) is composed again on use. */
#ifndef MODA_API_H
#define MODA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "metrics.h"
#include "registry.h"

typedef struct api_kv {
    char *key;   /* owned */
    char *value; /* owned; "" for a query flag without '=' */
} api_kv;

typedef struct api_request {
    const char *method; /* "GET", "POST", "DELETE", ... */
    const char *path;   /* URL path, percent-decoded, without the query */
    const api_kv *query; /* (n_query) query arguments, decoded */
    int n_query;
    const api_kv *headers; /* (n_headers) request headers */
    int n_headers;
    const char *body; /* (body_len) bytes; may be NULL when empty; not
                       * NUL-terminated */
    size_t body_len;
    uint64_t deadline_us; /* CLOCK_MONOTONIC µs past which the client no longer waits (the server's
                           * X-Moda-Timeout-Ms); inference still queued for a batch then answers
                           * deadline_exceeded. 0: none */
} api_request;

/* Value of a query argument / header (case-insensitive name), or NULL. */
const char *api_request_query(const api_request *req, const char *key);
const char *api_request_header(const api_request *req, const char *name);

#define API_HEADERS_MAX 4

typedef struct api_response {
    int status;              /* HTTP status */
    char content_type[64];   /* e.g. "application/json" */
    char *body;              /* (body_len), malloc'd, owned; NULL for none */
    size_t body_len;
    api_kv headers[API_HEADERS_MAX]; /* extra response headers, owned */
    int n_headers;
    /* For the server's metrics: */
    char model[160];         /* model or composed id concerned; "" if none */
    bool is_inference;       /* an inference request (v1 or v2 infer) */
    const char *error_code;  /* static string such as "unknown_class"; NULL on success */
} api_response;

void api_response_free(api_response *r); /* accepts NULL; leaves *r zeroed */
/* Add a response header (both strings copied); false when the table is full
 * or out of memory. */
bool api_response_add_header(api_response *resp, const char *key, const char *value);

/* Dynamic batching (api/batcher.h): concurrent inference requests for one
 * model merge into one engine call. Defaults for every model, overridden
 * per registry model (its composed models included). */
typedef struct api_batch_override {
    char model[128];       /* registry model name */
    int max_batch;         /* as below; <= 1: off for this model */
    int max_delay_us;
} api_batch_override;

#define API_BATCH_OVERRIDES_MAX 16

typedef struct api_batching {
    int max_batch;         /* samples merged into one engine call; <= 1: off (the default) */
    int max_delay_us;      /* how long a batch may wait to fill (0: take what is queued) */
    int instances;         /* merged engine calls at once, each on a slot of its own (0: 1) */
    int timeout_us;        /* a request still queued after this long gets queue_timeout; 0: none */
    api_batch_override overrides[API_BATCH_OVERRIDES_MAX];
    int n_overrides;
    /* Slots [0, wait_slots) may wait in a batch queue (the server's
     * workers); the others run their inference at once, unbatched (the
     * connection threads, which must never block). 0: every slot waits. */
    int wait_slots;
} api_batching;

typedef struct api_config {
    const char *registry;  /* registry root directory, or an http(s) URL */
    registry_remote_options remote; /* how a registry URL is fetched; zeroed: the defaults */
    size_t cache_bytes;    /* composed-model cache budget */
    int workers;           /* threads that will call api_handle, 1.. */
    int intra_threads;     /* OpenMP threads per worker inside ops */
    int max_classes;       /* per compose request (0 = no limit beyond K) */
    int max_batch;         /* samples per inference request */
    const char *device;    /* "cpu", "cuda" or "auto" (a GPU when there is one); NULL = "cpu" */
    backend_options backend; /* for every backend the API creates; zeroed: the defaults */
    float default_tau;     /* threshold when a request gives none (0.9) */
    api_batching batching; /* zeroed: no dynamic batching */
    metrics *metrics;      /* not owned; may be NULL */
    const char *admin_token; /* required as "Authorization: Bearer" by replace, calibrate, cancelling a job and
                              * DELETE /v1/compose; NULL: none (copied) */
    int jobs_max;          /* jobs running at once (1) */
    int jobs_queue;        /* jobs waiting, beyond those (4) */
    const char *data_dirs; /* "KIND=DIR[,KIND=DIR...]": where jobs read a dataset kind; NULL: models' records
                            * (copied) */
    int registry_poll_s;   /* reload the registry every this many seconds; 0: never */
} api_config;

typedef struct api api;

/* Open the registry, load every trained model's weights and rates (once,
 * shared by all workers), and create one engine backend per worker.
 * Returns 0, or -1 with a one-line reason in err. */
int api_new(const api_config *cfg, api **out, char *err, size_t errlen);
void api_free(api *a); /* accepts NULL; no api_handle may be running */
/* The backend the models run on: "cpu" or "cuda". */
const char *api_device(const api *a);

/* Handle one request on worker `worker` (0 <= worker < cfg.workers; one
 * thread per worker index at a time). Always fills *resp, errors included,
 * as {"error":{"code","message"}} with the status of the error. */
void api_handle(api *a, int worker, const api_request *req, api_response *resp);

/* Whether req is light enough to run on the thread that received it, where
 * a hand-off to a worker and back would cost more than the work: an
 * inference request of at most API_LIGHT_BODY bytes, not an image (whose
 * decoded size the body does not bound), that, even if every value took
 * the fewest bytes its body type allows (one in raw bodies, two in JSON:
 * "0,") and its model were the registry's most expensive, costs at most
 * API_LIGHT_MACS multiply-adds (a quarter of a millisecond or so; parsing
 * 32 KiB of JSON numbers takes about 50 us), and, when dynamic batching is
 * on, only while nothing is queued or running through the batcher or
 * inline: under load requests then merge instead. With LeNet5 (0.42 M per
 * sample) that admits batch-1 requests in every body type but images;
 * VGG16 (80 M at width 0.5) never qualifies. */
#define API_LIGHT_BODY ((size_t)32 << 10)
#define API_LIGHT_MACS 8e6
bool api_request_is_light(const api *a, const api_request *req);

/* Whether path is an inference route (POST /v1/infer or
 * /v2/models/{name}/infer), with the model it names in model ("" for
 * /v1/infer, whose model is in the body). */
bool api_infer_route(const char *path, char *model, size_t size);

/* The route template of path ("/v1/infer", "/v2/models/{name}/infer",
 * ...; "other" when no route matches): a label of bounded cardinality. */
const char *api_route_template(const char *path);

/* An error answered without api_handle (the server's own refusals: body
 * too large, overloaded, shutting down, /metrics): code's status from the
 * API's one table, the error shape of path's protocol, and the fields the
 * server's metrics read (model, is_inference, error_code). */
void api_response_refusal(api_response *resp, const char *path, const char *code, const char *message);

/* Reload the registry (SIGHUP, POST /v1/registry/reload, --registry-poll):
 * the registry is re-read and every new or changed model loaded; only when
 * all load are they swapped in (requests in flight finish on the models
 * they hold), removed models retired, and composed models of a replaced or
 * removed parent dropped from the cache; those loaded through the
 * repository API are composed again from the new parent and stay loaded
 * (unloaded when their parent is gone). A failure leaves everything as it
 * was. Returns 0 with a one-line summary in msg, or -1 with the reason. */
int api_reload(api *a, char *msg, size_t len);

/* Readiness, as /v2/health/ready reports it: true after api_new, false once
 * the server starts shutting down. */
void api_set_ready(api *a, bool ready);

#endif
