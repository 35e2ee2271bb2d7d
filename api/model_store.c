#include "model_store.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

int model_store_open(model_store *s, const char *root, const registry_remote_options *remote, int workers,
                     const char *device, const backend_options *backend, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->add_lock, NULL);
    s->workers = workers;
    s->remote = registry_is_url(root);
    if (!(s->be = backend_new(device ? device : "cpu", backend, err, errlen))) return -1;
    if (registry_open(root, remote, &s->reg, err, errlen) != MODA_OK) {
        model_store_close(s);
        return -1;
    }
    int n = registry_count(s->reg);
    s->cap = n + MODEL_STORE_SPARE;
    if (!(s->models = calloc((size_t)s->cap, sizeof(*s->models)))) {
        snprintf(err, errlen, "out of memory");
        model_store_close(s);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        api_model *m = &s->models[i];
        if (registry_load_model(s->reg, registry_name(s->reg, i), s->be, &m->rm, err, errlen) != MODA_OK) {
            model_store_close(s);
            return -1;
        }
        s->n = i + 1;
        m->params = graph_param_count(m->rm.g);
        m->macs = graph_macs(m->rm.g);
        if (!(m->full = entry_new_full(m, workers))) {
            snprintf(err, errlen, "%s: out of memory", m->rm.name);
            model_store_close(s);
            return -1;
        }
    }
    return 0;
}

void model_store_close(model_store *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        entry_free(s->models[i].full);
        registry_model_free(&s->models[i].rm);
    }
    free(s->models);
    registry_close(s->reg);
    backend_free(s->be);
    pthread_mutex_destroy(&s->add_lock);
    memset(s, 0, sizeof(*s));
}

int model_store_add(model_store *s, const char *name, char *err, size_t errlen) {
    pthread_mutex_lock(&s->add_lock);
    int rc = -1, n = s->n;
    registry *now = NULL;
    api_model *m = n < s->cap ? &s->models[n] : NULL;
    if (model_store_find(s, name))
        snprintf(err, errlen, "\"%s\" is already served", name);
    else if (!m)
        snprintf(err, errlen, "no room for more models (%d served); restart the server to serve \"%s\"", n, name);
    else if (registry_open(registry_root(s->reg), NULL, &now, err, errlen) == MODA_OK &&
             registry_load_model(now, name, s->be, &m->rm, err, errlen) == MODA_OK) {
        m->params = graph_param_count(m->rm.g);
        m->macs = graph_macs(m->rm.g);
        if (!(m->full = entry_new_full(m, s->workers))) {
            snprintf(err, errlen, "%s: out of memory", name);
            registry_model_free(&m->rm);
        } else {
            s->n = n + 1; /* publishes the complete slot */
            rc = 0;
        }
    }
    registry_close(now);
    pthread_mutex_unlock(&s->add_lock);
    return rc;
}

api_model *model_store_find(const model_store *s, const char *name) {
    for (int i = 0; name && i < s->n; i++)
        if (!strcmp(s->models[i].rm.name, name)) return &s->models[i];
    return NULL;
}

int model_store_class(const api_model *m, const char *text, api_error *e) {
    int k = m->rm.info.model.num_classes;
    for (int c = 0; c < k; c++)
        if (!strcmp(m->rm.info.class_names[c], text)) return c;
    size_t len = strlen(text);
    bool digits = len > 0 && len <= 9;
    for (size_t i = 0; digits && i < len; i++) digits = isdigit((unsigned char)text[i]);
    if (digits && atoi(text) < k) return atoi(text);
    if (digits)
        return api_error_set(e, "unknown_class", "class index %s is out of range: %s has %d classes (0 to %d)", text,
                             m->rm.name, k, k - 1);
    return api_error_set(e, "unknown_class", "%s has no class \"%.64s\"", m->rm.name, text);
}

int model_store_class_json(const api_model *m, const json_t *v, api_error *e) {
    int k = m->rm.info.model.num_classes;
    if (json_is_string(v)) return model_store_class(m, json_string_value(v), e);
    /* JSON Schema, and so openapi.yaml, counts 3.0 as the integer 3. */
    double r = json_is_real(v) ? json_real_value(v) : 0.5;
    if (json_is_integer(v) || (r == floor(r) && fabs(r) < 1e15)) {
        json_int_t c = json_is_integer(v) ? json_integer_value(v) : (json_int_t)r;
        if (c >= 0 && c < k) return (int)c;
        return api_error_set(e, "unknown_class", "class index %lld is out of range: %s has %d classes (0 to %d)",
                             (long long)c, m->rm.name, k, k - 1);
    }
    return api_error_set(e, "invalid_type", "a class must be a name (string) or an index (integer)");
}
