/* api_new/api_free, routing, and the server-level routes (/v2 metadata and
 * health). The v1 handlers live in v1.c, the v2 model routes in v2.c, the
 * module explorer's page in ui.c. */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api_state.h"
#include "ui.h"
#include "v1.h"
#include "v2.h"
#include "v2_proto.h"

#ifndef MODA_VERSION
#define MODA_VERSION "0.0.0"
#endif

#define API_DEFAULT_MAX_BATCH 256

/* On a GPU a process's first pass loads cuDNN's kernels (174 ms of the
 * first request on an H100): pay for it here, with one pass of each full
 * model on slot 0, and not in a request. Not counted in the metrics; a
 * failure shows again, with its reason, on the first request. */
static void warm_up(api *a) {
    if (backend_host_memory(a->store.be)) return;
    for (int i = 0; i < a->store.n; i++) {
        api_entry *e = a->store.models[i].full;
        size_t per = (size_t)e->info.channels * e->info.height * e->info.width;
        float *x = calloc(per, sizeof(float)), *z = malloc((size_t)e->info.n_classes * sizeof(float));
        api_error ignored = {0};
        if (x && z) (void)api_infer_run(a, 0, e, x, 1, z, NULL, NULL, &ignored);
        free(x);
        free(z);
    }
}

int api_reload(api *a, char *msg, size_t len) {
    model_store_changes ch;
    int before = a->store.n;
    if (model_store_reload(&a->store, &ch, msg, len)) {
        metrics_add(a->cfg.metrics, METRIC_REGISTRY_RELOAD_FAILURE, NULL, NULL, 1);
        return -1;
    }
    int dropped = 0, recomposed, unloaded;
    for (int i = 0; i < ch.n_gone; i++) dropped += compose_cache_drop_parent(a->cache, ch.gone[i]);
    v2_loaded_reload(a, ch.gone, ch.n_gone, &recomposed, &unloaded);
    free(ch.gone);
    for (int i = before; i < a->store.n; i++) api_note_model(a, &a->store.models[i]);
    metrics_add(a->cfg.metrics, METRIC_REGISTRY_RELOAD, NULL, NULL, 1);
    int o = snprintf(msg, len, "%d added, %d replaced, %d removed, %d unchanged; %d composed model(s) dropped",
                     ch.added, ch.replaced, ch.removed, ch.kept, dropped);
    if (recomposed + unloaded && o >= 0 && (size_t)o < len)
        snprintf(msg + o, len - (size_t)o, "; %d loaded model(s) composed again, %d unloaded", recomposed, unloaded);
    return 0;
}

/* --registry-poll: a reload every registry_poll_s seconds until api_free. */
static void *poll_registry(void *arg) {
    api *a = arg;
    pthread_mutex_lock(&a->poll_lock);
    while (!a->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += a->cfg.registry_poll_s;
        while (!a->stopping && pthread_cond_timedwait(&a->poll_stop, &a->poll_lock, &until) == 0) {
        }
        if (a->stopping) break;
        pthread_mutex_unlock(&a->poll_lock);
        char msg[512];
        (void)api_reload(a, msg, sizeof msg); /* a failure keeps the old models and shows in /metrics */
        pthread_mutex_lock(&a->poll_lock);
    }
    pthread_mutex_unlock(&a->poll_lock);
    return NULL;
}

int api_new(const api_config *cfg, api **out, char *err, size_t errlen) {
    *out = NULL;
    if (!cfg || !cfg->registry || cfg->workers < 1 || !(cfg->default_tau >= 0 && cfg->default_tau <= 1)) {
        snprintf(err, errlen, "api_new: a registry, at least one worker and a default threshold in [0, 1] are needed");
        return -1;
    }
    api *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->cfg = *cfg;
    a->cfg.registry = NULL; /* not kept: the caller's strings */
    a->cfg.remote = (registry_remote_options){0};
    if (a->cfg.max_batch < 1) a->cfg.max_batch = API_DEFAULT_MAX_BATCH;
    if (a->cfg.intra_threads < 1) a->cfg.intra_threads = 1;
    a->chunk = a->cfg.max_batch < API_CHUNK_MAX ? a->cfg.max_batch : API_CHUNK_MAX;
    /* The batcher's instances are slots of their own, after the workers'. */
    a->slots = cfg->workers;
    if (api_batching_open(a, err, errlen)) {
        api_free(a);
        return -1;
    }
    if (a->batcher) a->slots += a->cfg.batching.instances > 0 ? a->cfg.batching.instances : 1;
    if (model_store_open(&a->store, cfg->registry, &cfg->remote, a->slots, cfg->device, &cfg->backend, err,
                         errlen)) {
        api_free(a);
        return -1;
    }
    for (int i = 0; i < a->store.n; i++) api_note_model(a, &a->store.models[i]);
    pthread_mutex_init(&a->save_lock, NULL);
    a->cache = compose_cache_new(cfg->cache_bytes, cfg->metrics);
    a->be = calloc((size_t)a->slots, sizeof(*a->be));
    a->loaded = v2_loaded_new();
    a->jobs = job_queue_new(cfg->jobs_max > 0 ? cfg->jobs_max : 1, cfg->jobs_queue >= 0 ? cfg->jobs_queue : 4);
    a->admin_token = cfg->admin_token ? strdup(cfg->admin_token) : NULL;
    a->data_dirs = cfg->data_dirs ? strdup(cfg->data_dirs) : NULL;
    a->cfg.admin_token = a->cfg.data_dirs = NULL; /* not kept: the caller's strings */
    if (!a->cache || !a->be || !a->loaded || !a->jobs || (cfg->admin_token && !a->admin_token) ||
        (cfg->data_dirs && !a->data_dirs)) {
        snprintf(err, errlen, "out of memory creating the cache");
        api_free(a);
        return -1;
    }
    /* The workers run on the store's kind of backend: on a GPU the weights
     * stay where they were loaded and every worker reads them there. */
    for (int w = 0; w < a->slots; w++) {
        if (!(a->be[w] = backend_new(backend_name(a->store.be), &a->cfg.backend, err, errlen))) {
            api_free(a);
            return -1;
        }
        backend_set_threads(a->be[w], a->cfg.intra_threads);
    }
    warm_up(a);
    pthread_mutex_init(&a->poll_lock, NULL);
    pthread_cond_init(&a->poll_stop, NULL);
    if (cfg->registry_poll_s > 0) {
        if (pthread_create(&a->poller, NULL, poll_registry, a) != 0) {
            snprintf(err, errlen, "cannot start the registry poller");
            api_free(a);
            return -1;
        }
        a->polling = true;
    }
    atomic_store(&a->ready, true);
    *out = a;
    return 0;
}

void api_note_model(api *a, const api_model *m) {
    if (!a || !m) return;
    const model_info *mi = &m->rm.info;
    size_t side_h = (size_t)(m->rm.g->in_h - 2 * mi->pad), side_w = (size_t)(m->rm.g->in_w - 2 * mi->pad);
    size_t bytes = (size_t)mi->channels * side_h * side_w;
    if (m->macs > a->max_macs) a->max_macs = m->macs;
    if (!a->min_sample_bytes || bytes < a->min_sample_bytes) a->min_sample_bytes = bytes;
}

bool api_admin_check(const api *a, const api_request *req, api_response *resp) {
    if (!a->admin_token) return true;
    const char *h = api_request_header(req, "Authorization");
    const char *given = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : NULL;
    /* Compared in time that depends on the lengths only. */
    size_t n = strlen(a->admin_token), m = given ? strlen(given) : 0;
    unsigned char diff = (unsigned char)(n != m || !given);
    for (size_t i = 0; given && i < n && i < m; i++) diff |= (unsigned char)(a->admin_token[i] ^ given[i]);
    if (!diff) return true;
    api_response_errorf(resp, "unauthorized", "%s", given ? "the bearer token is not the admin token"
                                                          : "this route needs \"Authorization: Bearer <admin token>\"");
    api_response_add_header(resp, "WWW-Authenticate", "Bearer realm=\"moda-server\"");
    return false;
}

void api_free(api *a) {
    if (!a) return;
    if (a->polling) {
        pthread_mutex_lock(&a->poll_lock);
        a->stopping = true;
        pthread_cond_signal(&a->poll_stop);
        pthread_mutex_unlock(&a->poll_lock);
        pthread_join(a->poller, NULL);
    }
    /* Jobs read the store's models and write through it: stop them first. */
    job_queue_free(a->jobs);
    /* Composed graphs and handles use the worker backends: free them first. */
    v2_loaded_free(a, a->loaded);
    compose_cache_free(a->cache);
    model_store_close(&a->store);
    for (int w = 0; a->be && w < a->slots; w++) backend_free(a->be[w]);
    backend_free(a->reload_be);
    free(a->be);
    batcher_free(a->batcher);
    free(a->admin_token);
    free(a->data_dirs);
    pthread_mutex_destroy(&a->save_lock);
    pthread_mutex_destroy(&a->poll_lock);
    pthread_cond_destroy(&a->poll_stop);
    free(a);
}

const char *api_device(const api *a) { return a ? backend_name(a->store.be) : ""; }

bool api_infer_route(const char *path, char *model, size_t size) {
    if (size) model[0] = '\0';
    if (!strcmp(path, "/v1/infer")) return true;
    const char *prefix = "/v2/models/", *suffix = "/infer";
    size_t np = strlen(prefix), ns = strlen(suffix), n = strlen(path);
    if (n <= np + ns || strncmp(path, prefix, np) || strcmp(path + n - ns, suffix)) return false;
    const char *name = path + np;
    if (size) snprintf(model, size, "%.*s", (int)strcspn(name, "/"), name);
    return true;
}

/* The fewest body bytes an input value takes: a number and a comma ("0,")
 * in JSON, one byte in raw bodies and in v2's binary extension. */
static size_t bytes_per_value(const api_request *req) {
    if (!strncmp(req->path, "/v2/", 4)) return api_request_header(req, V2_HEADER_LENGTH) ? 1 : 2;
    return !api_request_header(req, "Content-Type") || api_request_is_type(req, "application/json") ? 2 : 1;
}

bool api_request_is_light(const api *a, const api_request *req) {
    if (!a || !req || !req->method || !req->path || strcmp(req->method, "POST") ||
        !api_infer_route(req->path, NULL, 0))
        return false;
    /* A small image body may still decode to millions of pixels. */
    if (req->body_len > API_LIGHT_BODY || !a->min_sample_bytes || api_request_is_image(req)) return false;
    if (a->batcher && (batcher_busy(a->batcher) > 0 || atomic_load_explicit(&a->inline_busy, memory_order_relaxed) > 0))
        return false;
    double samples = ceil((double)req->body_len / (double)(bytes_per_value(req) * a->min_sample_bytes));
    return samples * a->max_macs <= API_LIGHT_MACS;
}

void api_set_ready(api *a, bool ready) { atomic_store(&a->ready, ready); }

/* ---- server-level routes -------------------------------------------------- */

static void v2_server_metadata(api_response *resp) {
    json_t *root = json_pack("{s:s,s:s,s:[s,s,s,s]}", "name", "moda-server", "version", MODA_VERSION, "extensions",
                             "binary_tensor_data", "model_configuration", "statistics", "model_repository");
    api_response_json(resp, 200, root);
}

static void v2_health(api *a, bool ready_route, api_response *resp) {
    if (!ready_route) {
        api_response_json(resp, 200, json_pack("{s:b}", "live", 1));
        return;
    }
    bool ready = atomic_load(&a->ready);
    api_response_json(resp, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
    if (!ready) resp->error_code = "not_ready";
}

static void reload_route(api *a, api_response *resp) {
    char msg[API_ERROR_MSG_MAX - 32];
    if (api_reload(a, msg, sizeof msg)) {
        api_response_errorf(resp, "reload_failed", "the registry was not reloaded, the old one serves on: %s", msg);
        return;
    }
    api_response_json(resp, 200, json_pack("{s:b,s:s}", "reloaded", 1, "summary", msg));
}

/* ---- routing -------------------------------------------------------------- */

typedef enum route_id {
    ROUTE_MODELS,
    ROUTE_MODEL,
    ROUTE_COMPOSE,
    ROUTE_COMPOSE_ID,
    ROUTE_INFER,
    ROUTE_REPLACE,
    ROUTE_CALIBRATE,
    ROUTE_JOBS,
    ROUTE_JOB,
    ROUTE_JOB_CANCEL,
    ROUTE_RELOAD,
    ROUTE_V2,
    ROUTE_V2_LIVE,
    ROUTE_V2_READY,
    ROUTE_UI_PAGE,
    ROUTE_UI_FILE,
} route_id;

typedef struct route {
    const char *path;   /* exact path, or the prefix of a path with one more segment */
    bool prefix;
    const char *method;
    route_id id;
} route;

static const route ROUTES[] = {
    {"/v1/models", false, "GET", ROUTE_MODELS},
    {"/v1/models/", true, "GET", ROUTE_MODEL},
    {"/v1/compose", false, "POST", ROUTE_COMPOSE},
    {"/v1/compose/", true, "DELETE", ROUTE_COMPOSE_ID},
    {"/v1/infer", false, "POST", ROUTE_INFER},
    {"/v1/replace", false, "POST", ROUTE_REPLACE},
    {"/v1/calibrate", false, "POST", ROUTE_CALIBRATE},
    {"/v1/jobs", false, "GET", ROUTE_JOBS},
    {"/v1/jobs/", true, "GET", ROUTE_JOB},
    {"/v1/jobs/", true, "DELETE", ROUTE_JOB_CANCEL},
    {"/v1/registry/reload", false, "POST", ROUTE_RELOAD},
    {"/v2", false, "GET", ROUTE_V2},
    {"/v2/health/live", false, "GET", ROUTE_V2_LIVE},
    {"/v2/health/ready", false, "GET", ROUTE_V2_READY},
    {"/", false, "GET", ROUTE_UI_PAGE},
    {"/ui/", false, "GET", ROUTE_UI_PAGE},
    {"/ui/", true, "GET", ROUTE_UI_FILE},
};

static bool route_matches(const route *r, const char *path, const char **rest) {
    size_t n = strlen(r->path);
    if (!r->prefix) return !strcmp(path, r->path);
    if (strncmp(path, r->path, n) || !path[n] || strchr(path + n, '/')) return false;
    *rest = path + n;
    return true;
}

/* The route of path and method (rest: its last segment for a prefix
 * route). NULL when no route has the path; when routes have it but not
 * the method, NULL with their methods in allow ("GET, DELETE"). */
static const route *route_find(const char *path, const char *method, const char **rest, char *allow, size_t len) {
    allow[0] = '\0';
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        const route *r = &ROUTES[i];
        if (!route_matches(r, path, rest)) continue;
        if (!strcmp(method, r->method)) return r;
        size_t used = strlen(allow);
        snprintf(allow + used, len - used, "%s%s", used ? ", " : "", !strcmp(r->method, "GET") ? "GET, HEAD" : r->method);
    }
    return NULL;
}

static bool is_v2(const char *path) { return !strcmp(path, "/v2") || !strncmp(path, "/v2/", 4); }

static void route_error(api_response *resp, const char *path, const char *code, const char *msg) {
    api_error e;
    api_error_set(&e, code, "%s", msg);
    if (is_v2(path)) api_response_error_v2(resp, &e);
    else api_response_error(resp, &e);
}

void api_response_refusal(api_response *resp, const char *path, const char *code, const char *message) {
    api_response_free(resp);
    route_error(resp, path, code, message);
    resp->is_inference = api_infer_route(path, resp->model, sizeof resp->model);
}

void api_handle(api *a, int worker, const api_request *req, api_response *resp) {
    memset(resp, 0, sizeof(*resp));
    /* HEAD is GET without the body, which the HTTP layer leaves out. */
    api_request head_as_get;
    if (req && req->method && !strcmp(req->method, "HEAD")) {
        head_as_get = *req;
        head_as_get.method = "GET";
        req = &head_as_get;
    }
    const char *path = req && req->path ? req->path : "";
    const char *method = req && req->method ? req->method : "";
    if (!a || !req || worker < 0 || worker >= a->cfg.workers) {
        route_error(resp, path, "internal", "bad worker index or request");
        return;
    }
    if (!strcmp(path, "/v2/models/stats")) {
        if (strcmp(method, "GET")) {
            route_error(resp, path, "method_not_allowed", "this route takes GET");
            api_response_add_header(resp, "Allow", "GET, HEAD");
        } else {
            v2_model_stats(a, NULL, resp);
        }
        return;
    }
    if (!strncmp(path, "/v2/repository/", 15)) {
        v2_repository_route(a, worker, req, path + 15, resp);
        return;
    }
    if (!strncmp(path, "/v2/models/", 11)) {
        api_v2_model_route(a, worker, req, path + 11, resp);
        return;
    }
    const char *rest = NULL;
    char allow[64];
    const route *r = route_find(path, method, &rest, allow, sizeof allow);
    if (!r && !allow[0]) {
        route_error(resp, path, "not_found", "no such route");
        return;
    }
    if (!r) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s is not allowed here; use %s", method[0] ? method : "this method", allow);
        route_error(resp, path, "method_not_allowed", msg);
        api_response_add_header(resp, "Allow", allow);
        return;
    }
    /* Routes that change what is served, or spend a core for minutes. */
    bool admin = r->id == ROUTE_REPLACE || r->id == ROUTE_CALIBRATE || r->id == ROUTE_JOB_CANCEL ||
                 r->id == ROUTE_COMPOSE_ID || r->id == ROUTE_RELOAD;
    if (admin && !api_admin_check(a, req, resp)) return;
    switch (r->id) {
    case ROUTE_MODELS: v1_models_list(a, resp); break;
    case ROUTE_MODEL: v1_model_get(a, worker, rest, resp); break;
    case ROUTE_COMPOSE: v1_compose(a, worker, req, resp); break;
    case ROUTE_COMPOSE_ID: v1_compose_delete(a, rest, resp); break;
    case ROUTE_INFER: v1_infer(a, worker, req, resp); break;
    case ROUTE_REPLACE: v1_replace(a, req, resp); break;
    case ROUTE_CALIBRATE: v1_calibrate(a, req, resp); break;
    case ROUTE_JOBS: v1_jobs_list(a, resp); break;
    case ROUTE_JOB: v1_job_get(a, rest, resp); break;
    case ROUTE_JOB_CANCEL: v1_job_cancel(a, rest, resp); break;
    case ROUTE_RELOAD: reload_route(a, resp); break;
    case ROUTE_V2: v2_server_metadata(resp); break;
    case ROUTE_V2_LIVE: v2_health(a, false, resp); break;
    case ROUTE_V2_READY: v2_health(a, true, resp); break;
    case ROUTE_UI_PAGE: ui_file(req, UI_PAGE, resp); break;
    case ROUTE_UI_FILE: ui_file(req, rest, resp); break;
    }
}
