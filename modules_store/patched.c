/* Patched models (see registry.h): the joined graph, the manifest's
 * "patched" object, and loading a patched model from its parents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "json_check.h"
#include "registry_internal.h"

#define PATCH_MAX_DEPTH 8 /* parents that are patched models themselves, nested */

static const char *const ACC_KEYS[PATCH_ACC_ROWS] = {"weak", "patched", "weak_calibrated", "patched_calibrated",
                                                     "baseline"};

moda_status registry_patched_graph(const graph *weak, const graph *module, int t, const float *w, const float *b,
                                   moda_backend *be, graph **out) {
    *out = NULL;
    if (!weak || !module || !w || !b || !be) return MODA_ERR_NULL;
    const int k = graph_output((graph *)weak)->c;
    if (graph_output((graph *)module)->c != 1 || t < 0 || t >= k) return MODA_ERR_ARG;
    if (weak->in_c != module->in_c || weak->in_h != module->in_h || weak->in_w != module->in_w)
        return MODA_ERR_SHAPE;
    graph *g = graph_new(be, weak->in_c, weak->in_h, weak->in_w);
    int *map = malloc((size_t)(weak->n_nodes > module->n_nodes ? weak->n_nodes : module->n_nodes) * sizeof(int));
    if (!g || !map) {
        graph_free(g);
        free(map);
        return MODA_ERR_NOMEM;
    }
    int wo = graph_extend(g, weak, 0, "weak.", map);
    int mo = wo >= 0 ? graph_extend(g, module, 0, "module.", map) : -1;
    free(map);
    int a = mo >= 0 ? graph_linear(g, "calibration.logits", wo, k, true) : -1;
    int c = a >= 0 ? graph_linear(g, "calibration.module", mo, k, false) : -1;
    if (c >= 0) graph_add(g, a, c);
    moda_status s = c >= 0 ? graph_finalize(g) : (g->err != MODA_OK ? g->err : MODA_ERR_ARG);
    if (s == MODA_OK) s = graph_copy_params(g, weak, "weak.");
    if (s == MODA_OK) s = graph_copy_params(g, module, "module.");
    if (s == MODA_OK) {
        float *lw = g->params[graph_find_param(g, "calibration.logits.weight")].data;
        float *lb = g->params[graph_find_param(g, "calibration.logits.bias")].data;
        float *mw = g->params[graph_find_param(g, "calibration.module.weight")].data;
        for (int o = 0; o < k; o++) {
            for (int j = 0; j < k; j++) lw[o * k + j] = j == t ? 0.0f : w[o * k + j];
            mw[o] = w[o * k + t];
            lb[o] = b[o];
        }
    }
    if (s != MODA_OK) {
        graph_free(g);
        return s;
    }
    *out = g;
    return MODA_OK;
}

static json_t *parent_json(const registry_parent *p) {
    return json_pack("{ss,ss}", "model", p->model, "manifest_sha256", p->manifest_sha256);
}

json_t *registry_patch_json(const registry_patch *p) {
    json_t *acc = json_object();
    for (int i = 0; acc && i < PATCH_ACC_ROWS; i++)
        json_object_set_new(acc, ACC_KEYS[i],
                            json_pack("{sf,sf}", "overall", p->acc[i][0] / 100, "class", p->acc[i][1] / 100));
    return json_pack("{so,so,s{ss,si,si},sf,sf,s{ss,si,sf,si,sI,s{si,ss}},so}", "weak", parent_json(&p->weak), "strong",
                     parent_json(&p->strong), "class", "name", p->class_name, "weak_index", p->weak_class,
                     "strong_index", p->strong_class, "tau", (double)p->tau, "module_params", p->module_params,
                     "calibration", "optimizer", p->optimizer, "epochs", p->epochs, "lr", p->lr, "batch_size",
                     p->batch_size, "seed", (json_int_t)p->seed, "data", "train_samples", p->train_samples,
                     "train_sha256", p->train_sha256, "accuracy", acc);
}

static void parse_parent(jcheck *c, json_t *obj, const char *key, registry_parent *out) {
    char where[32];
    snprintf(where, sizeof where, "patched.%s", key);
    json_t *o = jc_get(c, obj, "patched", key, JK_OBJECT);
    const char *name = jc_string(c, o, where, "model");
    const char *sha = jc_string(c, o, where, "manifest_sha256");
    if (!jc_ok(c)) return;
    if (!registry_name_valid(name)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s.model\" is \"%s\", not a valid model name", where, name);
        return;
    }
    if (!registry_is_sha256_hex(sha)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s.manifest_sha256\" is not 64 hex digits", where);
        return;
    }
    snprintf(out->model, sizeof out->model, "%s", name);
    snprintf(out->manifest_sha256, sizeof out->manifest_sha256, "%s", sha);
}

void registry_patch_parse(jcheck *c, json_t *root, registry_model *m) {
    registry_patch *p = &m->patch;
    const int k = m->info.model.num_classes;
    json_t *o = jc_get(c, root, "", "patched", JK_OBJECT);
    parse_parent(c, o, "weak", &p->weak);
    parse_parent(c, o, "strong", &p->strong);
    json_t *cls = jc_get(c, o, "patched", "class", JK_OBJECT);
    const char *name = jc_string(c, cls, "patched.class", "name");
    long long wi = 0, si = 0, epochs = 0, batch = 0, seed = 0, samples = 0;
    jc_int(c, cls, "patched.class", "weak_index", 0, k - 1, &wi);
    jc_int(c, cls, "patched.class", "strong_index", 0, REGISTRY_MAX_CLASSES - 1, &si);
    double tau = 0;
    jc_number(c, o, "patched", "tau", 0, 1, &tau);
    jc_number(c, o, "patched", "module_params", 0, 1, &p->module_params);
    json_t *cal = jc_get(c, o, "patched", "calibration", JK_OBJECT);
    const char *opt = jc_string(c, cal, "patched.calibration", "optimizer");
    jc_int(c, cal, "patched.calibration", "epochs", 1, 1 << 20, &epochs);
    jc_number(c, cal, "patched.calibration", "lr", 0, 1e6, &p->lr);
    jc_int(c, cal, "patched.calibration", "batch_size", 1, 1 << 30, &batch);
    jc_int(c, cal, "patched.calibration", "seed", 0, INT64_MAX, &seed);
    json_t *data = jc_get(c, cal, "patched.calibration", "data", JK_OBJECT);
    jc_int(c, data, "patched.calibration.data", "train_samples", 0, 1 << 30, &samples);
    const char *sha = jc_string(c, data, "patched.calibration.data", "train_sha256");
    json_t *acc = jc_get(c, o, "patched", "accuracy", JK_OBJECT);
    for (int i = 0; jc_ok(c) && i < PATCH_ACC_ROWS; i++) {
        char where[64];
        snprintf(where, sizeof where, "patched.accuracy.%s", ACC_KEYS[i]);
        json_t *row = jc_get(c, acc, "patched.accuracy", ACC_KEYS[i], JK_OBJECT);
        /* Fractions in the file, like every accuracy of a manifest. */
        if (jc_number(c, row, where, "overall", 0, 1, &p->acc[i][0])) p->acc[i][0] *= 100;
        if (jc_number(c, row, where, "class", 0, 1, &p->acc[i][1])) p->acc[i][1] *= 100;
    }
    if (!jc_ok(c)) return;
    if (strcmp(opt, "adam") && strcmp(opt, "sgd")) {
        jc_fail(c, MODA_ERR_FORMAT, "\"patched.calibration.optimizer\" is \"%s\", not adam or sgd", opt);
        return;
    }
    if (sha[0] && !registry_is_sha256_hex(sha)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"patched.calibration.data.train_sha256\" is not 64 hex digits");
        return;
    }
    if (strlen(name) >= sizeof p->class_name || strcmp(name, m->info.class_names[wi]) != 0) {
        jc_fail(c, MODA_ERR_FORMAT, "\"patched.class.name\" is not class %lld of \"classes\"", wi);
        return;
    }
    snprintf(p->class_name, sizeof p->class_name, "%s", name);
    snprintf(p->optimizer, sizeof p->optimizer, "%s", opt);
    snprintf(p->train_sha256, sizeof p->train_sha256, "%s", sha);
    p->weak_class = (int)wi;
    p->strong_class = (int)si;
    p->tau = (float)tau;
    p->epochs = (int)epochs;
    p->batch_size = (int)batch;
    p->seed = (unsigned long long)seed;
    p->train_samples = (int)samples;
    m->patched = true;
}

moda_status registry_patch_module(const registry_model *strong, int cls, float tau, moda_backend *be, graph **out,
                                  char *err, size_t errlen) {
    *out = NULL;
    if (!strong->r.n_layers || cls < 0 || cls >= strong->info.model.num_classes)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: %s", strong->name,
                           strong->r.n_layers ? "class out of range" : "it has no rates to take a module from");
    compose_plan p = {0};
    moda_status s = compose_plan_make(strong->g, &strong->r, &cls, 1, tau, &p);
    if (s == MODA_OK) s = compose_build(strong->g, &p, be, out);
    compose_plan_free(&p);
    if (s != MODA_OK)
        fileio_errf(err, errlen, "%s: composing the module of class %d: %s", strong->name, cls, moda_status_string(s));
    return s;
}

/* Load a parent and check it is the model the patched one was made from. */
static moda_status load_parent(const registry *reg, const char *self, const char *role, const registry_parent *p,
                               moda_backend *be, int depth, registry_model *out, char *err, size_t errlen) {
    char why[1024] = "";
    moda_status s = registry_load_model_depth(reg, p->model, be, depth + 1, out, why, sizeof why);
    if (s == MODA_ERR_NOT_FOUND && registry_find(reg, p->model) < 0)
        return fileio_fail(err, errlen, MODA_ERR_NOT_FOUND, "%s: its %s parent \"%s\" is not in the registry", self,
                           role, p->model);
    if (s != MODA_OK)
        return fileio_fail(err, errlen, s, "%s: its %s parent \"%s\" cannot be loaded: %s", self, role, p->model, why);
    if (strcmp(out->manifest_sha256, p->manifest_sha256) != 0) {
        fileio_errf(err, errlen, "%s: its %s parent \"%s\" has changed: manifest sha256 %.12s, made from %.12s", self,
                    role, p->model, out->manifest_sha256, p->manifest_sha256);
        registry_model_free(out);
        return MODA_ERR_FORMAT;
    }
    return MODA_OK;
}

moda_status registry_patched_load(const registry *reg, registry_model *m, json_t *arch, const char *path,
                                  const registry_file_info *cal_info, moda_backend *be, int depth, char *err,
                                  size_t errlen) {
    if (depth >= PATCH_MAX_DEPTH)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: patched models nest more than %d deep", path,
                           PATCH_MAX_DEPTH);
    const registry_patch *p = &m->patch;
    const int k = m->info.model.num_classes;
    registry_model w = {0}, s = {0};
    graph *module = NULL;
    float *cw = NULL, *cb = NULL;
    moda_status st = load_parent(reg, m->name, "weak", &p->weak, be, depth, &w, err, errlen);
    if (st == MODA_OK) st = load_parent(reg, m->name, "strong", &p->strong, be, depth, &s, err, errlen);
    if (st == MODA_OK && w.info.model.num_classes != k)
        st = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: %d classes, its weak parent %s has %d", path, k, w.name,
                         w.info.model.num_classes);
    if (st == MODA_OK) st = registry_patch_module(&s, p->strong_class, p->tau, be, &module, err, errlen);
    char cal_path[4096];
    if (st == MODA_OK && !registry_path(cal_path, sizeof cal_path, registry_root(reg), m->name, cal_info->path))
        st = fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", registry_root(reg));
    if (st == MODA_OK) st = registry_calibration_load(cal_path, cal_info, k, &cw, &cb, err, errlen);
    if (st == MODA_OK) {
        st = registry_patched_graph(w.g, module, p->weak_class, cw, cb, be, &m->g);
        if (st != MODA_OK)
            fileio_errf(err, errlen, "%s: joining %s and %s's module: %s", path, w.name, s.name,
                        moda_status_string(st));
    }
    if (st == MODA_OK) st = registry_manifest_check_graph(arch, m->g, "its parents", path, err, errlen);
    free(cw);
    free(cb);
    graph_free(module);
    registry_model_free(&w);
    registry_model_free(&s);
    return st;
}
