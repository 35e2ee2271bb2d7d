/* From a name in a request to a pinned servable model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_state.h"
#include "id.h"

int api_classes_check(const api *a, const api_model *m, const int *classes, int n, api_error *e) {
    int k = m->rm.info.model.num_classes;
    int limit = a->cfg.max_classes > 0 && a->cfg.max_classes < k ? a->cfg.max_classes : k;
    if (n < 1) return api_error_set(e, "empty_classes", "the class list is empty");
    if (n > limit)
        return api_error_set(e, "too_many_classes", "%d classes exceed the limit of %d for %s", n, limit, m->rm.name);
    for (int i = 0; i < n; i++) {
        if (classes[i] < 0 || classes[i] >= k)
            return api_error_set(e, "unknown_class", "class index %d is out of range: %s has %d classes (0 to %d)",
                                 classes[i], m->rm.name, k, k - 1);
        for (int j = 0; j < i; j++)
            if (classes[j] == classes[i])
                return api_error_set(e, "duplicate_class", "class \"%s\" (index %d) is given more than once",
                                     m->rm.info.class_names[classes[i]], classes[i]);
    }
    return 0;
}

int api_tau_check(double tau, api_error *e) {
    if (!(tau >= 0.0 && tau <= 1.0))
        return api_error_set(e, "invalid_threshold", "threshold %g is not in [0, 1]", tau);
    return 0;
}

/* A model composed per layer reads its residual adds through channel maps:
 * the engine composes it again per layer only. */
static bool composed_per_layer(const graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (graph_add_is_mapped(&g->nodes[i])) return true;
    return false;
}

static int compose_on(api *a, moda_backend *be, const api_model *m, const int *classes, int n, float tau,
                      compose_mode mode, api_entry **out, bool *cached, api_error *e) {
    *out = NULL;
    *cached = false;
    if (m->rm.patched)
        return api_error_set(e, "invalid_combination",
                             "\"%s\" is a patched model: it has no modules of its own to compose; serve it whole, "
                             "or compose its parents", m->rm.name);
    if (mode == COMPOSE_TIED && composed_per_layer(m->rm.g))
        return api_error_set(e, "invalid_combination",
                             "\"%s\" was composed per layer: it composes again only per layer (\"mode\": \"%s\")",
                             m->rm.name, compose_mode_name(COMPOSE_PER_LAYER));
    if (api_classes_check(a, m, classes, n, e) || api_tau_check(tau, e)) return -1;
    return compose_cache_acquire(a->cache, m, classes, n, api_tau_canonical(tau), mode, be, a->slots, out, cached,
                                 e);
}

int api_entry_compose(api *a, int worker, const api_model *m, const int *classes, int n, float tau,
                      compose_mode mode, api_entry **out, bool *cached, api_error *e) {
    return compose_on(a, a->be[worker], m, classes, n, tau, mode, out, cached, e);
}

int api_entry_resolve(api *a, int worker, const char *name, api_entry **out, api_error *e) {
    return api_entry_resolve_on(a, a->be[worker], name, out, e);
}

int api_entry_resolve_on(api *a, moda_backend *be, const char *name, api_entry **out, api_error *e) {
    *out = NULL;
    if (!name || !*name) return api_error_set(e, "invalid_id", "the model id is empty");
    api_model *m = model_store_find(&a->store, name);
    if (m) {
        *out = m->full;
        return 0;
    }
    if (!strchr(name, '~')) return api_error_set(e, "unknown_model", "no model named \"%.80s\"", name);
    char model[REGISTRY_NAME_MAX + 1];
    int *classes = NULL, n = 0;
    float tau = 0;
    compose_mode mode;
    if (api_id_parse(name, model, &classes, &n, &tau, &mode, e)) return -1;
    int rc;
    bool cached;
    if (!(m = model_store_find(&a->store, model)))
        rc = api_error_set(e, "unknown_model", "no model named \"%s\" (in id \"%.80s\")", model, name);
    else
        rc = compose_on(a, be, m, classes, n, tau, mode, out, &cached, e);
    free(classes);
    return rc;
}

void api_entry_release(api *a, api_entry *e) { compose_cache_release(a->cache, e); }

const api_entry_info *api_entry_info_of(const api_entry *e) { return &e->info; }

const api_config *api_config_of(const api *a) { return &a->cfg; }
int api_max_batch(const api *a) { return a->cfg.max_batch; }
metrics *api_metrics(const api *a) { return a->cfg.metrics; }
