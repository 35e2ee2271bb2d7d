/* Triton's model repository extension over the registry: the index lists
 * the registry's models and the composed ids loaded here; load composes a
 * composed id (through the cache) and pins it so that it is never evicted;
 * unload unpins it and drops it from the cache. A registry model is always
 * loaded: loading it succeeds, unloading it is refused. At most 64 are
 * loaded at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_state.h"
#include "id.h"
#include "v2_ext.h"

/* Loaded models are pinned, out of the cache's reach: a bound keeps a
 * client from holding memory without limit. */
#define LOADED_MAX 64

struct v2_loaded {
    pthread_mutex_t mu;
    api_entry **pins; /* (n) of (cap), each pinned once */
    int n, cap;
};

v2_loaded *v2_loaded_new(void) {
    v2_loaded *l = calloc(1, sizeof(*l));
    if (l) pthread_mutex_init(&l->mu, NULL);
    return l;
}

void v2_loaded_free(api *a, v2_loaded *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) api_entry_release(a, l->pins[i]);
    free(l->pins);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static bool retired(const api_entry *e, api_model *const *gone, int n_gone) {
    for (int i = 0; i < n_gone; i++)
        if (e->parent == gone[i]) return true;
    return false;
}

void v2_loaded_reload(api *a, api_model *const *gone, int n_gone, int *recomposed, int *unloaded) {
    *recomposed = *unloaded = 0;
    v2_loaded *l = a->loaded;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n;) {
        api_entry *old = l->pins[i], *fresh = NULL;
        if (!retired(old, gone, n_gone)) {
            i++;
            continue;
        }
        /* Its own backend: a reload runs on no worker's slot. */
        char err[256];
        if (!a->reload_be && (a->reload_be = backend_new(backend_name(a->store.be), &a->cfg.backend, err, sizeof err)))
            backend_set_threads(a->reload_be, a->cfg.intra_threads);
        api_error e = {0};
        if (a->reload_be && !api_entry_resolve_on(a, a->reload_be, old->id, &fresh, &e) && fresh->info.composed &&
            fresh != old) {
            l->pins[i++] = fresh;
            (*recomposed)++;
        } else {
            api_entry_release(a, fresh); /* accepts NULL */
            l->pins[i] = l->pins[--l->n];
            (*unloaded)++;
        }
        api_entry_release(a, old); /* dropped from the cache by the reload: freed here, or by its last request */
    }
    pthread_mutex_unlock(&l->mu);
}

/* The JSON body of a repository request: empty (tritonclient sends none
 * for the index) or an object, whose "parameters" (if any) is an object and
 * "ready" a boolean, as openapi.yaml says for every repository route. */
static int body_object(const api_request *req, json_t **root, api_error *e) {
    *root = NULL;
    if (!req->body_len) {
        *root = json_object();
        return *root ? 0 : api_error_set(e, "internal", "out of memory");
    }
    if (api_json_parse(req, root, e)) return -1;
    const char *why = !json_is_object(*root) ? "the body must be a JSON object"
                      : json_object_get(*root, "parameters") && !json_is_object(json_object_get(*root, "parameters"))
                          ? "\"parameters\" must be an object"
                      : json_object_get(*root, "ready") && !json_is_boolean(json_object_get(*root, "ready"))
                          ? "\"ready\" must be a boolean"
                          : NULL;
    if (why) {
        json_decref(*root);
        *root = NULL;
        return api_error_set(e, "invalid_type", "%s", why);
    }
    return 0;
}

/* Every model listed is ready, so {"ready": true} lists them all too. */
static void index_route(api *a, api_response *resp) {
    json_t *arr = json_array();
    for (int i = 0; i < a->store.n; i++) {
        const api_model *m = model_store_at(&a->store, i); /* NULL: retired by a reload */
        if (m) json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", m->rm.name, "version", "1", "state", "READY"));
    }
    v2_loaded *l = a->loaded;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", api_entry_info_of(l->pins[i])->id, "version",
                                             "1", "state", "READY"));
    pthread_mutex_unlock(&l->mu);
    api_response_json(resp, 200, arr);
}

/* The canonical id of a composed name; -1 with the error otherwise. */
static int canonical_id(api *a, const char *name, char id[API_ID_MAX], api_error *e) {
    char model[REGISTRY_NAME_MAX + 1];
    int *classes = NULL, n = 0;
    float tau;
    compose_mode mode;
    if (api_id_parse(name, model, &classes, &n, &tau, &mode, e)) return -1;
    int rc = 0;
    if (!model_store_find(&a->store, model))
        rc = api_error_set(e, "unknown_model", "no model named \"%s\" (in id \"%.80s\")", model, name);
    else if (!api_id_format(id, API_ID_MAX, model, classes, n, tau, mode))
        rc = api_error_set(e, "invalid_id", "the id \"%.80s\" is too long", name);
    free(classes);
    return rc;
}

static void load_route(api *a, int worker, const char *name, const json_t *body, api_response *resp) {
    const json_t *params = json_object_get(body, "parameters");
    if (params && json_object_size(params) > 0) {
        api_response_errorf_v2(resp, "bad_request",
                               "load takes no parameters: a model's configuration and files come from the registry");
        return;
    }
    api_entry *e = NULL;
    api_error err = {0};
    if (api_entry_resolve(a, worker, name, &e, &err)) {
        api_response_error_v2(resp, &err);
        return;
    }
    const api_entry_info *mi = api_entry_info_of(e);
    snprintf(resp->model, sizeof resp->model, "%s", mi->id);
    v2_loaded *l = a->loaded;
    bool keep = mi->composed;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; keep && i < l->n; i++) keep = strcmp(api_entry_info_of(l->pins[i])->id, mi->id) != 0;
    bool full = keep && l->n >= LOADED_MAX;
    keep = keep && !full;
    if (keep && l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        api_entry **p = realloc(l->pins, (size_t)cap * sizeof(*p));
        if (p) {
            l->pins = p;
            l->cap = cap;
        }
        keep = p != NULL;
    }
    if (keep) l->pins[l->n++] = e;
    pthread_mutex_unlock(&l->mu);
    if (!keep) api_entry_release(a, e); /* a registry model, or loaded already */
    if (full) {
        api_response_errorf_v2(resp, "bad_request", "%d models are loaded already; unload one first", LOADED_MAX);
        return;
    }
    api_response_json(resp, 200, json_pack("{s:s,s:s}", "name", mi->id, "state", "READY"));
}

static void unload_route(api *a, const char *name, api_response *resp) {
    api_error err = {0};
    char id[API_ID_MAX];
    if (model_store_find(&a->store, name)) {
        api_response_errorf_v2(resp, "bad_request", "\"%.80s\" is a registry model: it is always loaded", name);
        return;
    }
    if (!strchr(name, '~')) {
        api_response_errorf_v2(resp, "unknown_model", "no model named \"%.80s\"", name);
        return;
    }
    if (canonical_id(a, name, id, &err)) {
        api_response_error_v2(resp, &err);
        return;
    }
    api_entry *pin = NULL;
    v2_loaded *l = a->loaded;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n && !pin; i++)
        if (!strcmp(api_entry_info_of(l->pins[i])->id, id)) {
            pin = l->pins[i];
            l->pins[i] = l->pins[--l->n];
        }
    pthread_mutex_unlock(&l->mu);
    /* Dropped now, or on the last release of a request still using it. */
    compose_cache_delete(a->cache, id);
    api_entry_release(a, pin);
    snprintf(resp->model, sizeof resp->model, "%s", id);
    api_response_json(resp, 200, json_pack("{s:s,s:s}", "name", id, "state", "UNAVAILABLE"));
}

void v2_repository_route(api *a, int worker, const api_request *req, const char *rest, api_response *resp) {
    const char *models = "models/";
    const char *action = NULL;
    char name[API_ID_MAX];
    if (strcmp(rest, "index") != 0) {
        const char *slash = strncmp(rest, models, strlen(models)) ? NULL : strrchr(rest, '/');
        size_t len = slash ? (size_t)(slash - rest) - strlen(models) : 0;
        if (!slash || !len || len >= sizeof name || memchr(rest + strlen(models), '/', len) ||
            (strcmp(slash, "/load") && strcmp(slash, "/unload"))) {
            api_response_errorf_v2(resp, "not_found", "no such route: /v2/repository/%.128s", rest);
            return;
        }
        memcpy(name, rest + strlen(models), len);
        name[len] = '\0';
        action = slash + 1;
    }
    if (!req->method || strcmp(req->method, "POST")) {
        api_response_errorf_v2(resp, "method_not_allowed", "this route takes POST");
        api_response_add_header(resp, "Allow", "POST");
        return;
    }
    json_t *body = NULL;
    api_error e = {0};
    if (body_object(req, &body, &e)) {
        api_response_error_v2(resp, &e);
        return;
    }
    if (!action) index_route(a, resp);
    else if (!strcmp(action, "load")) load_route(a, worker, name, body, resp);
    else unload_route(a, name, resp);
    json_decref(body);
}
