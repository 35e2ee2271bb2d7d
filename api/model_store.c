#include "model_store.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

/* Slot m filled: its counts and its full-model entry. */
static int slot_finish(model_store *s, api_model *m, char *err, size_t errlen) {
    m->params = graph_param_count(m->rm.g);
    m->macs = graph_macs(m->rm.g);
    atomic_store(&m->retired, false);
    if (!(m->full = entry_new_full(m, s->workers))) {
        snprintf(err, errlen, "%s: out of memory", m->rm.name);
        registry_model_free(&m->rm);
        return -1;
    }
    return 0;
}

int model_store_open(model_store *s, const char *root, const registry_remote_options *remote, int workers,
                     const char *device, const backend_options *backend, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->add_lock, NULL);
    s->workers = workers;
    s->remote = registry_is_url(root);
    s->root = strdup(root);
    if (remote) s->remote_opts = *remote;
    if (!s->root) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
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
        if (slot_finish(s, m, err, errlen)) {
            s->n = i;
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
    free(s->root);
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
        if (slot_finish(s, m, err, errlen) == 0) {
            s->n = n + 1; /* publishes the complete slot */
            rc = 0;
        }
    }
    registry_close(now);
    pthread_mutex_unlock(&s->add_lock);
    return rc;
}

api_model *model_store_find(const model_store *s, const char *name) {
    for (int i = s->n - 1; name && i >= 0; i--)
        if (!atomic_load(&s->models[i].retired) && !strcmp(s->models[i].rm.name, name)) return &s->models[i];
    return NULL;
}

/* Whether the current model `name` must be loaded again: a new manifest,
 * or a patched model whose parent is loaded again. */
static bool changed(const model_store *s, const registry *now, const char *name, int depth) {
    const api_model *m = model_store_find(s, name);
    int i = registry_find(now, name);
    if (!m || i < 0 || depth > 8) return true;
    registry_model fresh;
    char err[256];
    if (registry_read_manifest(now, name, &fresh, err, sizeof err) != MODA_OK) return true;
    bool differs = strcmp(fresh.manifest_sha256, m->rm.manifest_sha256) != 0;
    registry_model_free(&fresh);
    if (!differs && m->rm.patched)
        differs = changed(s, now, m->rm.patch.weak.model, depth + 1) ||
                  changed(s, now, m->rm.patch.strong.model, depth + 1);
    return differs;
}

int model_store_reload(model_store *s, model_store_changes *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->add_lock);
    registry *now = NULL;
    int rc = registry_open(s->root, &s->remote_opts, &now, err, errlen) == MODA_OK ? 0 : -1;
    const int n = s->n, count = rc ? 0 : registry_count(now);
    int loaded = 0;
    /* Load what is new or changed into free slots, unpublished. */
    for (int i = 0; !rc && i < count; i++) {
        const char *name = registry_name(now, i);
        if (!changed(s, now, name, 0)) {
            out->kept++;
            continue;
        }
        if (n + loaded >= s->cap) {
            snprintf(err, errlen, "no room for more models (%d slots used); restart the server", n + loaded);
            rc = -1;
            break;
        }
        api_model *m = &s->models[n + loaded];
        memset(m, 0, sizeof(*m));
        if (registry_load_model(now, name, s->be, &m->rm, err, errlen) != MODA_OK || slot_finish(s, m, err, errlen)) {
            rc = -1;
            break;
        }
        loaded++;
        if (model_store_find(s, name)) out->replaced++;
        else out->added++;
    }
    if (rc) { /* all or nothing: the new slots go, the store is as it was */
        for (int i = 0; i < loaded; i++) {
            entry_free(s->models[n + i].full);
            registry_model_free(&s->models[n + i].rm);
            memset(&s->models[n + i], 0, sizeof(s->models[n + i]));
        }
        memset(out, 0, sizeof(*out));
    } else {
        /* What the new slots replace, and what the registry no longer has,
         * retire once the new ones are visible. */
        out->gone = malloc((size_t)(n > 0 ? n : 1) * sizeof(*out->gone));
        for (int i = 0; out->gone && i < n; i++) {
            api_model *m = &s->models[i];
            if (atomic_load(&m->retired)) continue;
            bool removed = registry_find(now, m->rm.name) < 0, gone = removed;
            for (int j = 0; !gone && j < loaded; j++) gone = !strcmp(s->models[n + j].rm.name, m->rm.name);
            if (gone) out->gone[out->n_gone++] = m;
            out->removed += removed;
        }
        s->n = n + loaded;
        for (int i = 0; i < out->n_gone; i++) atomic_store(&out->gone[i]->retired, true);
    }
    registry_close(now);
    pthread_mutex_unlock(&s->add_lock);
    return rc;
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
