#include "v1.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_state.h"
#include "id.h"

/* A float as the decimal it was written as (0.9f -> 0.9), so JSON shows
 * the value people typed rather than its binary expansion. */
static double short_real(float v) {
    char text[32];
    snprintf(text, sizeof text, "%g", (double)v);
    return strtod(text, NULL);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static json_t *string_array(const char *const *s, int n) {
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++) json_array_append_new(arr, json_string(s[i]));
    return arr;
}

/* A JSON body: application/json (or no Content-Type), an object. */
int v1_body_object(const api_request *req, json_t **root, api_error *e) {
    return v1_body_object_packed(req, NULL, root, NULL, e);
}

int v1_body_object_packed(const api_request *req, const char *key, json_t **root, json_fast_packed *packed,
                          api_error *e) {
    *root = NULL;
    if (packed) memset(packed, 0, sizeof(*packed));
    if (api_request_header(req, "Content-Type") && !api_request_is_type(req, "application/json"))
        return api_error_set(e, "unsupported_media_type", "Content-Type must be application/json");
    if (api_json_parse_packed(req, key, root, packed, e)) return -1;
    if (!json_is_object(*root)) {
        json_decref(*root);
        json_fast_packed_free(packed);
        *root = NULL;
        return api_error_set(e, "invalid_type", "the body must be a JSON object");
    }
    return 0;
}

/* ---- GET /v1/models[/{model}] --------------------------------------------- */

static const char *model_kind(const registry_model *rm) {
    return rm->patched ? "patched" : rm->composed ? "composed" : "trained";
}

/* A patched model's parents, class, calibration and measured accuracies
 * (fractions, like every accuracy of the API). */
static json_t *patch_json(const registry_patch *p) {
    static const char *const rows[PATCH_ACC_ROWS] = {"weak", "patched", "weak_calibrated", "patched_calibrated",
                                                     "baseline"};
    json_t *acc = json_object();
    for (int i = 0; acc && i < PATCH_ACC_ROWS; i++)
        json_object_set_new(acc, rows[i],
                            json_pack("{s:f,s:f}", "overall", p->acc[i][0] / 100, "class", p->acc[i][1] / 100));
    return json_pack("{s:s,s:s,s:{s:s,s:i,s:i},s:f,s:f,s:{s:s,s:i,s:f,s:i,s:I},s:o}", "weak", p->weak.model, "strong",
                     p->strong.model, "class", "name", p->class_name, "weak_index", p->weak_class, "strong_index",
                     p->strong_class, "tau", short_real(p->tau), "module_params", p->module_params, "calibration",
                     "optimizer", p->optimizer, "epochs", p->epochs, "lr", p->lr, "batch_size", p->batch_size, "seed",
                     (json_int_t)p->seed, "accuracy", acc);
}

static json_t *model_summary(const api_model *m) {
    const registry_model *rm = &m->rm;
    int k = rm->info.model.num_classes;
    json_t *o = json_pack("{s:s,s:s,s:s,s:f,s:i,s:o,s:f,s:f,s:f,s:f,s:b}", "name", rm->name, "kind", model_kind(rm),
                          "arch", model_arch_name(rm->info.model.arch), "width", short_real(rm->info.model.width),
                          "num_classes", k, "classes", string_array((const char *const *)rm->info.class_names, k),
                          "test_accuracy", rm->test_acc, "mean_module_size", rm->stats.mean_size, "mean_overlap",
                          rm->stats.mean_overlap, "tau", short_real(rm->stats.tau), "composed", rm->composed);
    if (o && rm->patched) json_object_set_new(o, "patched", patch_json(&rm->patch));
    return o;
}

void v1_models_list(api *a, api_response *resp) {
    json_t *models = json_array();
    for (int i = 0; models && i < a->store.n; i++)
        if (model_store_at(&a->store, i)) json_array_append_new(models, model_summary(&a->store.models[i]));
    api_response_json(resp, 200, json_pack("{s:o}", "models", models));
}

static void composed_get(api *a, int worker, const char *id, api_response *resp);

void v1_model_get(api *a, int worker, const char *name, api_response *resp) {
    const api_model *m = model_store_find(&a->store, name);
    if (!m && strchr(name, '~')) {
        composed_get(a, worker, name, resp);
        return;
    }
    if (!m) {
        api_response_errorf(resp, "unknown_model", "no model named \"%.80s\"", name);
        return;
    }
    const registry_model *rm = &m->rm;
    const model_info *mi = &rm->info;
    int k = mi->model.num_classes;
    json_t *mean = json_array(), *std = json_array(), *classes = json_array();
    for (int c = 0; c < mi->channels; c++) {
        json_array_append_new(mean, json_real(mi->mean[c]));
        json_array_append_new(std, json_real(mi->std[c]));
    }
    bool sizes = rm->stats.size && rm->stats.num_classes == k;
    for (int c = 0; c < k; c++)
        json_array_append_new(classes, json_pack("{s:i,s:s,s:f}", "index", c, "name", mi->class_names[c],
                                                 "module_size", sizes ? rm->stats.size[c] : 0.0));
    json_t *overlap = json_array(), *layers = json_array();
    for (int r = 0; sizes && rm->stats.overlap && r < k; r++) {
        json_t *row = json_array();
        for (int c = 0; c < k; c++) json_array_append_new(row, json_real(rm->stats.overlap[(size_t)r * k + c]));
        json_array_append_new(overlap, row);
    }
    for (int l = 0; l < rm->stats.n_layers; l++) {
        int node = rm->stats.layer_node[l];
        json_array_append_new(layers, json_pack("{s:i,s:s,s:f}", "node", node, "name", rm->g->nodes[node].name,
                                                "overlap", rm->stats.layer_overlap[l]));
    }
    json_t *root = json_pack(
        "{s:s,s:s,s:f,s:i,s:f,s:f,s:f,s:f,s:I,s:f,s:{s:i,s:i,s:i,s:i,s:o,s:o},s:o,s:o,s:o,s:b}", "name", rm->name, "arch",
        model_arch_name(mi->model.arch), "width", short_real(mi->model.width), "num_classes", k, "test_accuracy",
        rm->test_acc, "tau", short_real(rm->stats.tau), "mean_module_size", rm->stats.mean_size, "mean_overlap",
        rm->stats.mean_overlap, "params", (json_int_t)m->params, "flops", m->macs, "input", "channels", mi->channels,
        "height", rm->g->in_h, "width", rm->g->in_w, "pad", mi->pad, "mean", mean, "std", std, "classes", classes,
        "overlap", overlap, "layers", layers, "composed", rm->composed);
    if (root && rm->composed) {
        json_t *cls = json_array();
        for (int i = 0; i < rm->origin.n_classes; i++) json_array_append_new(cls, json_integer(rm->origin.classes[i]));
        json_object_set_new(root, "origin",
                            json_pack("{s:s,s:o,s:f,s:s}", "model", rm->origin.model, "classes", cls, "tau",
                                      short_real(rm->origin.tau), "mode", compose_mode_name(rm->origin.mode)));
    }
    if (root) json_object_set_new(root, "kind", json_string(model_kind(rm)));
    if (root && rm->patched) json_object_set_new(root, "patched", patch_json(&rm->patch));
    api_response_json(resp, 200, root);
    snprintf(resp->model, sizeof resp->model, "%s", rm->name);
}

/* ---- class lists ---------------------------------------------------------- */

/* Checked before anything is allocated for the list. */
static int class_count_check(const api *a, const api_model *m, size_t n, api_error *e) {
    int k = m->rm.info.model.num_classes;
    int limit = a->cfg.max_classes > 0 && a->cfg.max_classes < k ? a->cfg.max_classes : k;
    if (n == 0) return api_error_set(e, "empty_classes", "the class list is empty");
    if (n > (size_t)limit)
        return api_error_set(e, "too_many_classes", "%zu classes exceed the limit of %d for %s", n, limit, m->rm.name);
    return 0;
}

/* classes: a JSON array of names or indices. *out malloc'd. */
static int classes_json(const api *a, const api_model *m, const json_t *arr, int **out, int *n, api_error *e) {
    *out = NULL;
    if (!json_is_array(arr)) return api_error_set(e, "invalid_type", "\"classes\" must be an array");
    size_t len = json_array_size(arr);
    if (class_count_check(a, m, len, e)) return -1;
    int *cls = malloc(len * sizeof(int));
    if (!cls) return api_error_set(e, "internal", "out of memory");
    for (size_t i = 0; i < len; i++)
        if ((cls[i] = model_store_class_json(m, json_array_get(arr, i), e)) < 0) {
            free(cls);
            return -1;
        }
    *out = cls;
    *n = (int)len;
    return 0;
}

/* classes: "a,b,3" (names or indices, blanks around items ignored). */
static int classes_csv(const api *a, const api_model *m, const char *csv, int **out, int *n, api_error *e) {
    *out = NULL;
    size_t len = 1;
    for (const char *p = csv; *p; p++) len += *p == ',';
    if (class_count_check(a, m, csv[strspn(csv, " \t")] ? len : 0, e)) return -1;
    int *cls = malloc(len * sizeof(int));
    char *copy = strdup(csv);
    if (!cls || !copy) {
        free(cls);
        free(copy);
        return api_error_set(e, "internal", "out of memory");
    }
    int count = 0;
    for (char *item = copy, *next; item; item = next) {
        next = strchr(item, ',');
        if (next) *next++ = '\0';
        while (*item == ' ' || *item == '\t') item++;
        size_t l = strlen(item);
        while (l > 0 && (item[l - 1] == ' ' || item[l - 1] == '\t')) item[--l] = '\0';
        if ((cls[count++] = model_store_class(m, item, e)) < 0) {
            free(cls);
            free(copy);
            return -1;
        }
    }
    free(copy);
    *out = cls;
    *n = count;
    return 0;
}

/* ---- POST /v1/compose, DELETE /v1/compose/{id} ------------------------------ */

static json_t *class_objects(const api_entry_info *mi) {
    json_t *arr = json_array();
    for (int j = 0; arr && j < mi->n_classes; j++)
        json_array_append_new(arr, json_pack("{s:i,s:s}", "index", mi->classes[j], "name", mi->class_names[j]));
    return arr;
}

/* threshold: absent (the default) or a number in [0, 1]. */
static int threshold_json(const api *a, const json_t *v, float *tau, api_error *e) {
    *tau = a->cfg.default_tau;
    if (!v) return 0;
    if (!json_is_number(v)) return api_error_set(e, "invalid_type", "\"threshold\" must be a number");
    if (api_tau_check(json_number_value(v), e)) return -1;
    *tau = (float)json_number_value(v);
    return 0;
}

/* What POST /v1/compose answers, and GET /v1/models/{id} for an id. */
static json_t *composed_json(const api_model *m, const api_entry *entry, bool cached) {
    const api_entry_info *mi = api_entry_info_of(entry);
    return json_pack("{s:s,s:s,s:f,s:s,s:o,s:I,s:f,s:f,s:b,s:f}", "id", mi->id, "model", mi->model, "threshold",
                     short_real(mi->tau), "mode", compose_mode_name(mi->mode), "classes", class_objects(mi), "params",
                     (json_int_t)mi->params, "size_ratio", m->params ? (double)mi->params / (double)m->params : 0.0,
                     "flops_ratio", m->macs > 0 ? mi->macs / m->macs : 0.0, "cached", cached, "compose_ms",
                     cached ? 0.0 : entry->compose_ms);
}

/* GET /v1/models/{id} of a composed id: composed through the cache, like
 * any use of an id, and described as POST /v1/compose describes it. */
static void composed_get(api *a, int worker, const char *id, api_response *resp) {
    char model[REGISTRY_NAME_MAX + 1];
    int *cls = NULL, n = 0;
    float tau;
    compose_mode mode;
    api_error e = {0};
    api_entry *entry = NULL;
    bool cached = false;
    const api_model *m = NULL;
    if (api_id_parse(id, model, &cls, &n, &tau, &mode, &e)) goto fail;
    if (!(m = model_store_find(&a->store, model))) {
        api_error_set(&e, "unknown_model", "no model named \"%s\" (in id \"%.80s\")", model, id);
        goto fail;
    }
    if (api_entry_compose(a, worker, m, cls, n, tau, mode, &entry, &cached, &e)) goto fail;
    api_response_json(resp, 200, composed_json(m, entry, cached));
    snprintf(resp->model, sizeof resp->model, "%s", api_entry_info_of(entry)->id);
    api_entry_release(a, entry);
    free(cls);
    return;
fail:
    api_response_error(resp, &e);
    free(cls);
}

/* mode text: absent (tied) or one of the composer's mode names. */
static int mode_text(const char *text, compose_mode *mode, api_error *e) {
    *mode = COMPOSE_TIED;
    if (text && !compose_mode_parse(text, mode))
        return api_error_set(e, "bad_request", "\"mode\" must be \"%s\" or \"%s\"", compose_mode_name(COMPOSE_TIED),
                             compose_mode_name(COMPOSE_PER_LAYER));
    return 0;
}

/* mode in a JSON body: absent (tied) or a string as for mode_text. */
static int mode_json(const json_t *v, compose_mode *mode, api_error *e) {
    *mode = COMPOSE_TIED;
    if (v && !json_is_string(v)) return api_error_set(e, "invalid_type", "\"mode\" must be a string");
    return mode_text(v ? json_string_value(v) : NULL, mode, e);
}

void v1_compose(api *a, int worker, const api_request *req, api_response *resp) {
    api_error e = {0};
    json_t *root = NULL;
    int *cls = NULL, n = 0;
    float tau;
    compose_mode mode;
    api_entry *entry = NULL;
    bool cached = false;
    if (v1_body_object(req, &root, &e)) goto fail;
    const json_t *jm = json_object_get(root, "model"), *jc = json_object_get(root, "classes");
    if (!jm) {
        api_error_set(&e, "bad_request", "\"model\" is required");
        goto fail;
    }
    if (!json_is_string(jm)) {
        api_error_set(&e, "invalid_type", "\"model\" must be a string");
        goto fail;
    }
    const api_model *m = model_store_find(&a->store, json_string_value(jm));
    if (!m) {
        api_error_set(&e, "unknown_model", "no model named \"%.80s\"", json_string_value(jm));
        goto fail;
    }
    if (!jc) {
        api_error_set(&e, "bad_request", "\"classes\" is required");
        goto fail;
    }
    if (classes_json(a, m, jc, &cls, &n, &e) || threshold_json(a, json_object_get(root, "threshold"), &tau, &e) ||
        mode_json(json_object_get(root, "mode"), &mode, &e) ||
        api_entry_compose(a, worker, m, cls, n, tau, mode, &entry, &cached, &e))
        goto fail;
    api_response_json(resp, 200, composed_json(m, entry, cached));
    snprintf(resp->model, sizeof resp->model, "%s", api_entry_info_of(entry)->id);
    api_entry_release(a, entry);
    json_decref(root);
    free(cls);
    return;
fail:
    api_response_error(resp, &e);
    json_decref(root);
    free(cls);
}

void v1_compose_delete(api *a, const char *id, api_response *resp) {
    api_error e = {0};
    char model[REGISTRY_NAME_MAX + 1], canon[API_ID_MAX];
    int *cls = NULL, n = 0;
    float tau;
    compose_mode mode;
    if (model_store_find(&a->store, id)) {
        api_response_errorf(resp, "invalid_id", "\"%.80s\" is a registry model, not a composed id", id);
        return;
    }
    if (api_id_parse(id, model, &cls, &n, &tau, &mode, &e)) {
        api_response_error(resp, &e);
        return;
    }
    bool fits = api_id_format(canon, sizeof canon, model, cls, n, tau, mode);
    free(cls);
    if (!fits || !compose_cache_delete(a->cache, canon)) {
        api_response_errorf(resp, "not_cached", "\"%.80s\" is not in the cache", id);
        return;
    }
    api_response_json(resp, 200, json_pack("{s:s,s:b}", "id", canon, "deleted", 1));
    snprintf(resp->model, sizeof resp->model, "%s", canon);
}

/* ---- POST /v1/infer ------------------------------------------------------- */

typedef struct infer_request {
    const char *id, *model;  /* exactly one; borrowed (from the query or id_copy) */
    char *id_copy;           /* owned copy of a JSON body's id */
    int *classes;            /* (n_classes) with model, owned; NULL: the full model */
    int n_classes;
    bool has_tau;
    float tau;
    bool has_mode;
    compose_mode mode;       /* how classes compose (tied when not given) */
    api_input input;         /* owned */
    image image;             /* an image body, decoded; fitted into input once the model is known */
    int top_k;               /* 0: all probabilities */
} infer_request;

static void infer_request_free(infer_request *r) {
    free(r->id_copy);
    free(r->classes);
    api_input_free(&r->input);
    image_free(&r->image);
}

/* The id/model/classes/threshold/mode combination; classes resolved later. */
static int target_check(const infer_request *r, bool has_classes, api_error *e) {
    if (r->id && r->model) return api_error_set(e, "invalid_combination", "give \"id\" or \"model\", not both");
    if (!r->id && !r->model) return api_error_set(e, "bad_request", "give \"id\" or \"model\"");
    if (r->id && (has_classes || r->has_tau))
        return api_error_set(e, "invalid_combination", "an id names its classes and threshold already");
    if (r->model && r->has_tau && !has_classes)
        return api_error_set(e, "invalid_combination", "a threshold needs classes to compose");
    if (r->id && r->has_mode) return api_error_set(e, "invalid_combination", "an id names its mode already");
    if (r->model && r->has_mode && !has_classes)
        return api_error_set(e, "invalid_combination", "a mode needs classes to compose");
    return 0;
}

static int top_k_value(long long v, int *top_k, api_error *e) {
    if (v < 1) return api_error_set(e, "bad_request", "\"top_k\" must be at least 1");
    *top_k = v > INT32_MAX ? INT32_MAX : (int)v;
    return 0;
}

/* JSON body: target fields, then dtype, shape, top_k and the inputs. */
static int infer_parse_json(const api *a, const api_request *req, infer_request *r, const api_model **m,
                            api_error *e) {
    json_t *root;
    json_fast_packed packed;
    if (v1_body_object_packed(req, "inputs", &root, &packed, e)) return -1;
    int rc = -1;
    const json_t *jid = json_object_get(root, "id"), *jm = json_object_get(root, "model");
    const json_t *jc = json_object_get(root, "classes"), *jt = json_object_get(root, "threshold");
    const json_t *jin = json_object_get(root, "inputs"), *js = json_object_get(root, "shape");
    const json_t *jd = json_object_get(root, "dtype"), *jk = json_object_get(root, "top_k");
    const json_t *jmode = json_object_get(root, "mode");
    if (jid && !json_is_string(jid)) {
        api_error_set(e, "invalid_type", "\"id\" must be a string");
        goto done;
    }
    if (jm && !json_is_string(jm)) {
        api_error_set(e, "invalid_type", "\"model\" must be a string");
        goto done;
    }
    r->id = jid ? json_string_value(jid) : NULL;
    r->model = jm ? json_string_value(jm) : NULL;
    r->has_tau = jt != NULL;
    r->has_mode = jmode != NULL;
    if (target_check(r, jc != NULL, e) || threshold_json(a, jt, &r->tau, e) || mode_json(jmode, &r->mode, e))
        goto done;
    api_dtype dt = API_DTYPE_FLOAT32;
    if (jd && !json_is_string(jd)) {
        api_error_set(e, "invalid_type", "\"dtype\" must be a string");
        goto done;
    }
    if (jd && !api_dtype_parse(json_string_value(jd), &dt)) {
        api_error_set(e, "bad_request", "\"dtype\" must be \"float32\" or \"uint8\"");
        goto done;
    }
    if (jk && !json_is_integer(jk)) {
        api_error_set(e, "invalid_type", "\"top_k\" must be an integer");
        goto done;
    }
    if (jk && top_k_value(json_integer_value(jk), &r->top_k, e)) goto done;
    int shape[4];
    if (js) {
        size_t nd = json_array_size(js);
        if (!json_is_array(js)) {
            api_error_set(e, "invalid_type", "\"shape\" must be an array of integers");
            goto done;
        }
        if (nd != 3 && nd != 4) {
            api_error_set(e, "invalid_shape", "\"shape\" must be [N,C,H,W] or [C,H,W]");
            goto done;
        }
        shape[0] = 1;
        for (size_t i = 0; i < nd; i++) {
            const json_t *d = json_array_get(js, i);
            if (!json_is_integer(d)) {
                api_error_set(e, "invalid_type", "\"shape\" must be an array of integers");
                goto done;
            }
            json_int_t v = json_integer_value(d);
            if (v < 1 || v > INT32_MAX) {
                api_error_set(e, "invalid_shape", "\"shape\" dimensions must be positive");
                goto done;
            }
            shape[4 - nd + i] = (int)v;
        }
    }
    if (!jin) {
        api_error_set(e, "bad_request", "\"inputs\" is required");
        goto done;
    }
    if (api_input_from_json_packed(jin, &packed, js ? shape : NULL, dt, a->cfg.max_batch, &r->input, e)) goto done;
    if (r->model && !(*m = model_store_find(&a->store, r->model))) {
        api_error_set(e, "unknown_model", "no model named \"%.80s\"", r->model);
        goto done;
    }
    if (jc && classes_json(a, *m, jc, &r->classes, &r->n_classes, e)) goto done;
    rc = 0;
done:
    /* id and model point into root: keep a copy of the id. */
    if (rc == 0 && r->id && !(r->id = r->id_copy = strdup(r->id))) rc = api_error_set(e, "internal", "out of memory");
    if (rc) r->id = NULL;
    r->model = NULL; /* *m holds the model from here on */
    json_decref(root);
    json_fast_packed_free(&packed);
    return rc;
}

/* Binary and image bodies: the target, threshold and top_k from the query
 * string. The model and classes are looked up by infer_query_model once
 * the body has been read. */
static int infer_parse_query(const api *a, const api_request *req, infer_request *r, api_error *e) {
    const char *tq = api_request_query(req, "threshold"), *kq = api_request_query(req, "top_k");
    const char *mq = api_request_query(req, "mode");
    r->id = api_request_query(req, "id");
    r->model = api_request_query(req, "model");
    r->has_tau = tq != NULL;
    r->has_mode = mq != NULL;
    if (target_check(r, api_request_query(req, "classes") != NULL, e) || mode_text(mq, &r->mode, e)) return -1;
    if (tq) {
        char *end;
        errno = 0;
        double v = strtod(tq, &end);
        if (!*tq || *end || errno) return api_error_set(e, "invalid_threshold", "threshold \"%.40s\" is not a number", tq);
        if (api_tau_check(v, e)) return -1;
        r->tau = (float)v;
    } else {
        r->tau = a->cfg.default_tau;
    }
    if (kq) {
        char *end;
        errno = 0;
        long long v = strtoll(kq, &end, 10);
        if (!*kq || *end || errno) return api_error_set(e, "invalid_type", "top_k \"%.40s\" is not an integer", kq);
        if (top_k_value(v, &r->top_k, e)) return -1;
    }
    return 0;
}

static int infer_query_model(const api *a, const api_request *req, infer_request *r, const api_model **m,
                             api_error *e) {
    const char *cls = api_request_query(req, "classes");
    if (r->model && !(*m = model_store_find(&a->store, r->model)))
        return api_error_set(e, "unknown_model", "no model named \"%.80s\"", r->model);
    if (cls && classes_csv(a, *m, cls, &r->classes, &r->n_classes, e)) return -1;
    r->model = NULL;
    return 0;
}

/* Binary body: everything else from the query string (or X-Moda-* headers). */
static int infer_parse_binary(const api *a, const api_request *req, infer_request *r, const api_model **m,
                              api_error *e) {
    const char *sq = api_request_query(req, "shape"), *dq = api_request_query(req, "dtype");
    if (!sq) sq = api_request_header(req, "X-Moda-Shape");
    if (!dq) dq = api_request_header(req, "X-Moda-Dtype");
    if (infer_parse_query(a, req, r, e)) return -1;
    api_dtype dt = API_DTYPE_FLOAT32;
    if (dq && !api_dtype_parse(dq, &dt)) return api_error_set(e, "bad_request", "dtype must be float32 or uint8");
    if (!sq) return api_error_set(e, "invalid_shape", "a binary body needs shape=N,C,H,W (or X-Moda-Shape)");
    int shape[4];
    if (api_shape_parse(sq, shape, e) ||
        api_input_from_binary(req->body, req->body_len, shape, dt, a->cfg.max_batch, &r->input, e))
        return -1;
    return infer_query_model(a, req, r, m, e);
}

/* Image body: one PNG or JPEG, whose pixels say their own shape and type. */
static int infer_parse_image(const api *a, const api_request *req, infer_request *r, const api_model **m,
                             api_error *e) {
    if (api_request_query(req, "shape") || api_request_query(req, "dtype") ||
        api_request_header(req, "X-Moda-Shape") || api_request_header(req, "X-Moda-Dtype"))
        return api_error_set(e, "invalid_combination", "an image body has its own shape and dtype");
    if (infer_parse_query(a, req, r, e) || api_image_decode(req->body, req->body_len, &r->image, e)) return -1;
    return infer_query_model(a, req, r, m, e);
}

/* The shape and dtype parameters (query or X-Moda-* headers) only serve a
 * binary body, but a malformed one is refused whatever the body, as
 * openapi.yaml's patterns say. */
static int infer_check_binary_params(const api_request *req, api_error *e) {
    const char *shapes[] = {api_request_query(req, "shape"), api_request_header(req, "X-Moda-Shape")};
    const char *dtypes[] = {api_request_query(req, "dtype"), api_request_header(req, "X-Moda-Dtype")};
    int shape[4];
    api_dtype dt;
    for (int i = 0; i < 2; i++) {
        if (shapes[i] && api_shape_parse(shapes[i], shape, e)) return -1;
        if (dtypes[i] && !api_dtype_parse(dtypes[i], &dt))
            return api_error_set(e, "bad_request", "dtype must be float32 or uint8");
    }
    return 0;
}

/* One sample's output object. */
static json_t *sample_output(const api_entry_info *mi, const float *p, int top_k) {
    int k = mi->n_classes, best = 0;
    for (int j = 1; j < k; j++)
        if (p[j] > p[best]) best = j;
    json_t *o = json_pack("{s:s,s:i,s:i}", "class", mi->class_names[best], "index", best, "parent_index",
                          mi->classes[best]);
    if (!o) return NULL;
    if (!top_k) {
        json_t *probs = json_array();
        for (int j = 0; probs && j < k; j++) json_array_append_new(probs, json_real(p[j]));
        json_object_set_new(o, "probabilities", probs);
        return o;
    }
    /* Selection of the top_k largest, ties to the lower index. */
    int n = top_k < k ? top_k : k;
    bool *taken = calloc((size_t)k, sizeof(bool));
    json_t *top = json_array();
    for (int t = 0; taken && top && t < n; t++) {
        int arg = -1;
        for (int j = 0; j < k; j++)
            if (!taken[j] && (arg < 0 || p[j] > p[arg])) arg = j;
        taken[arg] = true;
        json_array_append_new(top, json_pack("{s:s,s:i,s:f}", "class", mi->class_names[arg], "index", arg,
                                             "probability", (double)p[arg]));
    }
    free(taken);
    json_object_set_new(o, "top_k", top);
    return o;
}

void v1_infer(api *a, int worker, const api_request *req, api_response *resp) {
    api_error e = {0};
    infer_request r = {0};
    const api_model *m = NULL;
    api_entry *entry = NULL;
    float *x = NULL, *probs = NULL;
    bool cached;
    int rc;
    if (infer_check_binary_params(req, &e))
        rc = -1;
    else if (api_request_is_type(req, "application/octet-stream"))
        rc = infer_parse_binary(a, req, &r, &m, &e);
    else if (api_request_is_image(req))
        rc = infer_parse_image(a, req, &r, &m, &e);
    else if (!api_request_header(req, "Content-Type") || api_request_is_type(req, "application/json"))
        rc = infer_parse_json(a, req, &r, &m, &e);
    else
        rc = api_error_set(&e, "unsupported_media_type",
                           "Content-Type must be application/json, application/octet-stream, image/png or "
                           "image/jpeg");
    if (rc == 0) {
        if (r.id) rc = api_entry_resolve(a, worker, r.id, &entry, &e);
        else if (r.classes)
            rc = api_entry_compose(a, worker, m, r.classes, r.n_classes, r.tau, r.mode, &entry, &cached, &e);
        else entry = m->full;
    }
    const api_entry_info *mi = entry ? api_entry_info_of(entry) : NULL;
    if (mi) snprintf(resp->model, sizeof resp->model, "%s", mi->id);
    if (rc == 0 && r.image.pixels) rc = api_input_from_image(mi, &r.image, &r.input, &e);
    if (rc == 0) rc = api_input_prepare(mi, &r.input, &x, &e);
    if (rc == 0 && !(probs = malloc((size_t)r.input.n * mi->n_classes * sizeof(float))))
        rc = api_error_set(&e, "internal", "out of memory");
    double t0 = now_ms();
    if (rc == 0)
        rc = api_infer_run_until(a, worker, entry, x, r.input.n, NULL, probs, api_metrics(a), req->deadline_us, &e);
    double ms = now_ms() - t0;
    if (rc == 0) {
        json_t *outputs = json_array();
        for (int i = 0; outputs && i < r.input.n; i++)
            json_array_append_new(outputs, sample_output(mi, probs + (size_t)i * mi->n_classes, r.top_k));
        api_response_json(resp, 200,
                          json_pack("{s:s,s:o,s:o,s:f}", "id", mi->id, "classes",
                                    string_array(mi->class_names, mi->n_classes), "outputs", outputs, "compute_ms", ms));
    } else {
        api_response_error(resp, &e);
    }
    resp->is_inference = true;
    api_entry_release(a, entry);
    free(probs);
    free(x);
    infer_request_free(&r);
}
