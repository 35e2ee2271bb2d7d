/* Prometheus metrics, named in the style of Triton's (nv_* there, moda_*
 * here). Thread-safe: any thread may record while another renders.
 *
 * Every series carries a "model" label (the registry model or composed id
 * the request concerned; "" for none). Failures also carry a "reason"
 * label (the error code of the JSON error body).
 *
 * Counters (monotonic):
 *   moda_inference_request_success{model}
 *   moda_inference_request_failure{model,reason}
 *   moda_inference_count{model}            samples inferred
 *   moda_inference_exec_count{model}       forward passes (batches) run
 *   moda_inference_request_duration_us{model}  successful requests end to end, receipt to
 *                                              response (as Triton's: failures not included)
 *   moda_inference_request_failure_duration_us{model}  the same for failed requests
 *   moda_inference_queue_duration_us{model}    waiting for a worker
 *   moda_inference_compute_infer_duration_us{model}
 *   moda_compose_count{model}              compositions actually run
 *   moda_compose_duration_us{model}
 *   moda_cache_hit_count{model}, moda_cache_miss_count{model},
 *   moda_cache_eviction_count{model}
 *   moda_registry_reload_count{model=""}, moda_registry_reload_failure_count{model=""}
 * Gauges:
 *   moda_cache_bytes_used, moda_cache_bytes_limit   (model label "")
 * Histograms (_bucket, _sum, _count; base units, as promtool wants):
 *   moda_http_request_duration_seconds{route}   every request, by route template
 *   moda_inference_duration_seconds{model}      inference requests, end to end
 *   moda_batch_size{model}                      samples per merged engine call
 *   moda_batch_queue_duration_seconds{model}    time a request waited in its batch queue
 * The counters above keep their Triton-style names for compatibility;
 * docs/server.md lists which of them promtool's lint flags and why.
 */
#ifndef MODA_METRICS_H
#define MODA_METRICS_H

typedef struct metrics metrics;

typedef enum metric_id {
    METRIC_REQUEST_SUCCESS,
    METRIC_REQUEST_FAILURE,
    METRIC_INFERENCE_COUNT,
    METRIC_EXEC_COUNT,
    METRIC_REQUEST_DURATION_US,         /* successful requests only */
    METRIC_REQUEST_FAILURE_DURATION_US, /* failed requests only */
    METRIC_QUEUE_DURATION_US,
    METRIC_COMPUTE_DURATION_US,
    METRIC_COMPOSE_COUNT,
    METRIC_COMPOSE_DURATION_US,
    METRIC_CACHE_HIT,
    METRIC_CACHE_MISS,
    METRIC_CACHE_EVICTION,
    METRIC_REGISTRY_RELOAD,
    METRIC_REGISTRY_RELOAD_FAILURE,
    METRIC_CACHE_BYTES_USED,  /* gauge */
    METRIC_CACHE_BYTES_LIMIT, /* gauge */
    METRIC_COUNT_
} metric_id;

metrics *metrics_new(void); /* NULL when out of memory */
void metrics_free(metrics *m); /* accepts NULL */

/* Counter += delta. model may be NULL (""); reason only for
 * METRIC_REQUEST_FAILURE (NULL otherwise). Silently ignores m == NULL so
 * callers need no checks. */
void metrics_add(metrics *m, metric_id id, const char *model, const char *reason, double delta);
/* Gauge = value. */
void metrics_set(metrics *m, metric_id id, const char *model, double value);
/* Current value of one series (0 when absent): for tests. */
double metrics_get(metrics *m, metric_id id, const char *model, const char *reason);

typedef enum histogram_id {
    HISTOGRAM_HTTP_SECONDS,        /* label "route" */
    HISTOGRAM_INFERENCE_SECONDS,   /* label "model" */
    HISTOGRAM_BATCH_SIZE,          /* label "model" */
    HISTOGRAM_BATCH_QUEUE_SECONDS, /* label "model" */
    HISTOGRAM_COUNT_
} histogram_id;

/* One observation of value into histogram id under label (NULL: ""). */
void metrics_observe(metrics *m, histogram_id id, const char *label, double value);
/* Observations so far, and how many were <= le (le = INFINITY: all); for
 * tests. */
double metrics_histogram_count(metrics *m, histogram_id id, const char *label, double le);
double metrics_histogram_sum(metrics *m, histogram_id id, const char *label);

/* Sum of a counter over every reason (METRIC_REQUEST_FAILURE's total). */
double metrics_total(metrics *m, metric_id id, const char *model);
/* Calls fn(ctx, model) once for each model label that any counter carries,
 * in first-recorded order, without the lock held in fn. */
void metrics_each_model(metrics *m, void (*fn)(void *ctx, const char *model), void *ctx);

/* The exposition text (text/plain; version=0.0.4): HELP and TYPE lines and
 * every series, label values escaped. malloc'd; NULL when out of memory. */
char *metrics_render(metrics *m);

#endif
