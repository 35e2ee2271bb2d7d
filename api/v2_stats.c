/* GET /v2/models/{name}/stats and /v2/models/stats: Triton's statistics
 * JSON, read from the server's metrics. Durations are cumulative
 * nanoseconds: success is the successful inference requests' time end to
 * end, fail the failed ones' (each counted in its own counter, so a
 * failure never moves success), queue the time spent waiting for a worker
 * and in batch queues, compute_infer the engine's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_state.h"
#include "id.h"
#include "v2_ext.h"

static json_t *duration(double count, double us) {
    return json_pack("{s:I,s:I}", "count", (json_int_t)count, "ns", (json_int_t)(us * 1e3));
}

static json_t *model_stats(metrics *m, const char *id) {
    double ok = metrics_get(m, METRIC_REQUEST_SUCCESS, id, NULL);
    double failed = metrics_total(m, METRIC_REQUEST_FAILURE, id);
    json_t *success = duration(ok, metrics_get(m, METRIC_REQUEST_DURATION_US, id, NULL));
    json_t *fail = duration(failed, metrics_get(m, METRIC_REQUEST_FAILURE_DURATION_US, id, NULL));
    json_t *stats = json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "success", success, "fail", fail, "queue",
        duration(ok, metrics_get(m, METRIC_QUEUE_DURATION_US, id, NULL)), "compute_input", duration(ok, 0),
        "compute_infer",
        duration(metrics_get(m, METRIC_EXEC_COUNT, id, NULL), metrics_get(m, METRIC_COMPUTE_DURATION_US, id, NULL)),
        "compute_output", duration(ok, 0), "cache_hit", duration(metrics_get(m, METRIC_CACHE_HIT, id, NULL), 0),
        "cache_miss", duration(metrics_get(m, METRIC_CACHE_MISS, id, NULL), 0));
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:[]}", "name", id, "version", "1", "last_inference", (json_int_t)0,
                     "inference_count", (json_int_t)metrics_get(m, METRIC_INFERENCE_COUNT, id, NULL),
                     "execution_count", (json_int_t)metrics_get(m, METRIC_EXEC_COUNT, id, NULL), "inference_stats",
                     stats, "batch_stats");
}

typedef struct stats_list {
    api *a;
    metrics *m;
    json_t *arr;
} stats_list;

/* A registry model or a composed id of one: metric labels may also carry
 * names that a refused request made up. */
static bool servable(api *a, const char *id) {
    if (model_store_find(&a->store, id)) return true;
    char model[REGISTRY_NAME_MAX + 1];
    int *classes = NULL, n = 0;
    float tau;
    compose_mode mode;
    api_error e = {0};
    bool ok = !api_id_parse(id, model, &classes, &n, &tau, &mode, &e) && model_store_find(&a->store, model);
    free(classes);
    return ok;
}

static bool listed(const json_t *arr, const char *id) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(json_object_get(v, "name")), id)) return true;
    return false;
}

static void add_model(void *ctx, const char *id) {
    stats_list *l = ctx;
    if (servable(l->a, id) && !listed(l->arr, id)) json_array_append_new(l->arr, model_stats(l->m, id));
}

void v2_model_stats(api *a, const char *id, api_response *resp) {
    stats_list l = {a, api_metrics(a), json_array()};
    if (id) {
        add_model(&l, id);
    } else {
        /* The registry's models first, then every composed id with metrics. */
        for (int i = 0; i < a->store.n; i++)
            if (model_store_at(&a->store, i)) add_model(&l, a->store.models[i].rm.name);
        metrics_each_model(l.m, add_model, &l);
    }
    api_response_json(resp, 200, json_pack("{s:o}", "model_stats", l.arr));
}
