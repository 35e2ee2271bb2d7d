/* manifest.json: everything needed to rebuild, preprocess for, and judge a
 * registry model, plus the hashes of its tensor files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "json_check.h"
#include "registry_internal.h"

/* ---- writing ------------------------------------------------------------- */

/* A float as the shortest decimal that reads back as the same float, so
 * 0.9f is stored as 0.9 and not 0.899999976. */
static json_t *json_float(float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *floats_json(const float *v, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, json_float(v[i]));
    return a;
}

static json_t *ints_json(const int *v, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *pair_json(int a, int b) {
    int v[2] = {a, b};
    return ints_json(v, 2);
}

json_t *registry_graph_json(const graph *g) {
    json_t *nodes = json_array();
    for (int i = 0; nodes && i < g->n_nodes; i++) {
        const graph_node *nd = &g->nodes[i];
        int shape[3] = {nd->c, nd->h, nd->w};
        json_t *o = json_pack("{si,ss,ss,so,so}", "index", i, "kind", node_kind_name(nd->kind), "name", nd->name,
                              "inputs", ints_json(nd->in, nd->n_in), "shape", ints_json(shape, nd->ndim == 4 ? 3 : 1));
        if (!o) break;
        if (nd->kind == NODE_CONV2D) {
            const conv2d_params *p = &nd->p.conv;
            json_object_set_new(o, "kernel", pair_json(p->kh, p->kw));
            json_object_set_new(o, "stride", pair_json(p->stride_h, p->stride_w));
            json_object_set_new(o, "pad", pair_json(p->pad_h, p->pad_w));
            json_object_set_new(o, "groups", json_integer(p->groups));
        } else if (nd->kind == NODE_MAXPOOL2D) {
            const pool2d_params *p = &nd->p.pool;
            json_object_set_new(o, "kernel", pair_json(p->kh, p->kw));
            json_object_set_new(o, "stride", pair_json(p->stride_h, p->stride_w));
            json_object_set_new(o, "pad", pair_json(p->pad_h, p->pad_w));
        }
        if (nd->kind == NODE_CONV2D || nd->kind == NODE_LINEAR)
            json_object_set_new(o, "bias", json_boolean(nd->has_bias));
        json_t *params = json_array();
        for (int j = 0; params && j < nd->n_param; j++) {
            const graph_param *p = &g->params[nd->param[j]];
            json_array_append_new(params, json_pack("{ss,so,sb}", "name", p->name, "shape",
                                                    ints_json(p->shape, p->ndim), "trainable", p->trainable));
        }
        json_object_set_new(o, "params", params);
        json_array_append_new(nodes, o);
    }
    if (nodes && json_array_size(nodes) != (size_t)g->n_nodes) {
        json_decref(nodes);
        return NULL;
    }
    return nodes;
}

/* Reals that came from floats (the checkpoint stores float options as
 * doubles) are shortened the same way as every other float. */
static void shorten_reals(json_t *v) {
    if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x) {
            if (json_is_real(x) && (double)(float)json_real_value(x) == json_real_value(x))
                json_object_set_new(v, key, json_float((float)json_real_value(x)));
            else
                shorten_reals(x);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (json_is_real(x) && (double)(float)json_real_value(x) == json_real_value(x))
                json_array_set_new(v, i, json_float((float)json_real_value(x)));
            else
                shorten_reals(x);
        }
    }
}

moda_status registry_training_config(const char *train_json, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (!train_json) {
        *out = json_object();
        return *out ? MODA_OK : MODA_ERR_NOMEM;
    }
    json_error_t jerr;
    json_t *root = json_loads(train_json, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        fileio_errf(err, errlen, "training config is not a JSON object%s%s", root ? "" : ": ", root ? "" : jerr.text);
        return MODA_ERR_ARG;
    }
    json_t *train = json_object_get(root, "train");
    json_t *cfg;
    if (json_is_object(train)) {
        /* A checkpoint's metadata: its "train" object plus what selected
         * the training data and how far training went. */
        cfg = json_deep_copy(train);
        json_t *data = json_object_get(root, "data");
        const char *keys[] = {"dataset", "subset", "augment", "selection"};
        for (size_t i = 0; cfg && i < sizeof keys / sizeof keys[0]; i++) {
            json_t *v = json_object_get(data, keys[i]);
            if (v) json_object_set_new(cfg, keys[i], json_deep_copy(v));
        }
        json_t *done = json_object_get(root, "epochs_done");
        if (cfg && done) json_object_set_new(cfg, "epochs_done", json_deep_copy(done));
    } else {
        cfg = json_deep_copy(root);
    }
    json_decref(root);
    if (!cfg) return MODA_ERR_NOMEM;
    shorten_reals(cfg);
    *out = cfg;
    return MODA_OK;
}

static json_t *file_json(const registry_file_info *f) {
    return json_pack("{ss,ss,sI}", "path", f->path, "sha256", f->sha256, "bytes", (json_int_t)f->bytes);
}

static json_t *stats_json(const graph *g, const module_stats *st) {
    int k = st->num_classes;
    json_t *size = json_array(), *overlap = json_array(), *layers = json_array();
    for (int a = 0; size && a < k; a++) json_array_append_new(size, json_real(st->size[a]));
    for (int a = 0; overlap && a < k; a++) {
        json_t *row = json_array();
        for (int b = 0; row && b < k; b++) json_array_append_new(row, json_real(st->overlap[(size_t)a * k + b]));
        json_array_append_new(overlap, row);
    }
    for (int l = 0; layers && l < st->n_layers; l++) {
        int node = st->layer_node[l];
        json_array_append_new(layers, json_pack("{si,ss,sf}", "node", node, "name", g->nodes[node].name, "overlap",
                                                st->layer_overlap[l]));
    }
    return json_pack("{so,so,sf,sf,so,so}", "tau", json_float(st->tau), "size", size, "mean_size", st->mean_size,
                     "mean_overlap", st->mean_overlap, "overlap", overlap, "layers", layers);
}

/* Stats are fractions; sums of fractions may round a hair past 1. */
#define FRACTION_MAX (1.0 + 1e-9)

static bool fraction(double v) { return v >= 0.0 && v <= FRACTION_MAX; }

bool registry_stats_valid(const module_stats *st, int n_nodes) {
    size_t k = (size_t)st->num_classes;
    bool ok = st->tau >= 0.0f && st->tau <= 1.0f && fraction(st->mean_size) && fraction(st->mean_overlap) &&
              st->n_layers >= 0 && st->size && st->overlap &&
              (st->n_layers == 0 || (st->layer_node && st->layer_overlap));
    for (size_t i = 0; ok && i < k; i++) ok = fraction(st->size[i]);
    for (size_t i = 0; ok && i < k * k; i++) ok = fraction(st->overlap[i]);
    for (int l = 0; ok && l < st->n_layers; l++)
        ok = fraction(st->layer_overlap[l]) && st->layer_node[l] >= 0 && st->layer_node[l] < n_nodes;
    return ok;
}

static json_t *origin_json(const registry_origin *o) {
    json_t *j = json_pack("{ss,ss,so,so}", "model", o->model, "manifest_sha256", o->manifest_sha256, "classes",
                          ints_json(o->classes, o->n_classes), "tau", json_float(o->tau));
    /* Tied is the default and stays unwritten: older manifests read the same. */
    if (j && o->mode != COMPOSE_TIED && json_object_set_new(j, "mode", json_string(compose_mode_name(o->mode)))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

char *registry_manifest_dump(const char *name, const graph *g, const model_info *mi, const registry_origin *origin,
                             json_t *patched, json_t *training, double test_acc, const module_stats *st,
                             const registry_file_info files[REGISTRY_N_FILES], char *err, size_t errlen) {
    const model_config *m = &mi->model;
    json_t *from = origin ? origin_json(origin) : NULL;
    if (origin && !from) {
        fileio_errf(err, errlen, "cannot encode the manifest's origin (out of memory)");
        return NULL;
    }
    json_t *classes = json_array();
    for (int k = 0; classes && k < m->num_classes; k++)
        if (json_array_append_new(classes, json_string(mi->class_names[k])) != 0) {
            fileio_errf(err, errlen, "class name %d is not valid UTF-8", k);
            json_decref(classes);
            json_decref(from);
            return NULL;
        }
    json_t *arch = json_pack("{ss,so,si,si,si,sI,sf,so}", "arch", model_arch_name(m->arch), "width",
                             json_float(m->width), "in_channels", m->in_channels, "num_classes", m->num_classes,
                             "input_size", m->input_size, "params", (json_int_t)graph_param_count(g), "macs",
                             graph_macs(g), "graph", registry_graph_json(g));
    json_t *input = json_pack("{ss,si,si,si,si,so,so}", "dataset", mi->dataset, "channels", mi->channels, "height",
                              m->input_size, "width", m->input_size, "pad", mi->pad, "mean",
                              floats_json(mi->mean, mi->channels), "std", floats_json(mi->std, mi->channels));
    json_t *data = NULL; /* left out where the model has no record of its data */
    if (mi->data.present) {
        data = json_pack("{ss,ss,so}", "kind", mi->dataset, "location", mi->data.location, "splits",
                         dataset_record_splits_json(&mi->data));
        /* The classes of the data it was trained on, relabelled: only a
         * model trained on a class selection has one. */
        if (data && mi->selection.present &&
            json_object_set_new(data, "selection", dataset_selection_json(&mi->selection)) != 0) {
            json_decref(data);
            data = NULL;
        }
        if (!data) {
            fileio_errf(err, errlen, "cannot encode the manifest's dataset record");
            json_decref(classes);
            json_decref(from);
            return NULL;
        }
    }
    /* "origin" (a composed model's only mark) is left out for a trained one;
     * a patched model has "patched", no module stats, and one file. */
    json_t *stats = patched ? NULL : stats_json(g, st);
    json_t *fl = patched ? json_pack("{so}", "calibration", file_json(&files[REGISTRY_FILE_CALIBRATION]))
                         : json_pack("{so,so}", "weights", file_json(&files[REGISTRY_FILE_WEIGHTS]), "rates",
                                     file_json(&files[REGISTRY_FILE_RATES]));
    json_t *root = json_pack("{si,ss,so*,sO*,so,so,so,so*,sO,s{sf},so*,so}", "format", REGISTRY_FORMAT, "name", name,
                             "origin", from, "patched", patched, "architecture", arch, "input", input, "classes",
                             classes, "dataset", data, "training", training, "metrics", "test_accuracy", test_acc,
                             "modules", stats, "files", fl);
    char *text = root ? json_dumps(root, REGISTRY_JSON_FLAGS) : NULL;
    json_decref(root);
    if (!text) fileio_errf(err, errlen, "cannot encode the manifest (invalid value or out of memory)");
    return text;
}

/* ---- reading ------------------------------------------------------------- */

static bool safe_file_name(const char *s) {
    return registry_name_valid(s); /* same rule: one plain path component */
}

static void parse_file(jcheck *c, json_t *files, const char *key, registry_file_info *f) {
    char where[32];
    snprintf(where, sizeof where, "files.%s", key);
    json_t *o = jc_get(c, files, "files", key, JK_OBJECT);
    const char *path = jc_string(c, o, where, "path");
    const char *sha = jc_string(c, o, where, "sha256");
    long long bytes = 0;
    jc_int(c, o, where, "bytes", 0, (long long)REGISTRY_DATA_MAX_BYTES, &bytes);
    if (!jc_ok(c)) return;
    if (!safe_file_name(path)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s.path\" is \"%s\", not a plain file name", where, path);
        return;
    }
    if (!registry_is_sha256_hex(sha)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s.sha256\" is not 64 hex digits", where);
        return;
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->sha256, sizeof f->sha256, "%s", sha);
    f->bytes = (uint64_t)bytes;
}

static void parse_architecture(jcheck *c, json_t *root, model_info *mi, json_t **arch_out, json_t **graph) {
    json_t *a = jc_get(c, root, "", "architecture", JK_OBJECT);
    const char *arch = jc_string(c, a, "architecture", "arch");
    if (arch && model_arch_from_name(arch, &mi->model.arch) != MODA_OK) {
        jc_fail(c, MODA_ERR_FORMAT, "unknown architecture \"%s\" in \"architecture.arch\"", arch);
        return;
    }
    double width = 0;
    long long in_c = 0, k = 0, size = 0, params = 0;
    jc_number(c, a, "architecture", "width", 1e-6, 16, &width);
    jc_int(c, a, "architecture", "in_channels", 1, DATASET_MAX_CHANNELS, &in_c);
    jc_int(c, a, "architecture", "num_classes", 1, REGISTRY_MAX_CLASSES, &k);
    jc_int(c, a, "architecture", "input_size", 1, 1 << 16, &size);
    jc_int(c, a, "architecture", "params", 0, 1LL << 50, &params);
    jc_get(c, a, "architecture", "macs", JK_NUMBER);
    json_t *g = jc_get(c, a, "architecture", "graph", JK_ARRAY);
    if (!jc_ok(c)) return;
    mi->model.width = (float)width;
    mi->model.in_channels = (int)in_c;
    mi->model.num_classes = (int)k;
    mi->model.input_size = (int)size;
    char why[200];
    if (model_validate(&mi->model, why, sizeof why) != MODA_OK) {
        jc_fail(c, MODA_ERR_FORMAT, "invalid architecture: %s", why);
        return;
    }
    /* Each node's kind is needed to check the module stats' layers. */
    for (size_t i = 0; jc_ok(c) && i < json_array_size(g); i++) {
        char where[48];
        snprintf(where, sizeof where, "architecture.graph[%zu]", i);
        jc_string(c, jc_at(c, g, "architecture.graph", i, JK_OBJECT), where, "kind");
    }
    *arch_out = a;
    *graph = g;
}

static void parse_input(jcheck *c, json_t *root, model_info *mi) {
    json_t *in = jc_get(c, root, "", "input", JK_OBJECT);
    const char *ds = jc_string(c, in, "input", "dataset");
    int size = mi->model.input_size;
    long long ch = 0, h = 0, w = 0, pad = 0;
    jc_int(c, in, "input", "channels", mi->model.in_channels, mi->model.in_channels, &ch);
    jc_int(c, in, "input", "height", size, size, &h);
    jc_int(c, in, "input", "width", size, size, &w);
    jc_int(c, in, "input", "pad", 0, (size - 1) / 2, &pad);
    json_t *mean = jc_array(c, in, "input", "mean", mi->model.in_channels);
    json_t *std = jc_array(c, in, "input", "std", mi->model.in_channels);
    if (!jc_ok(c)) return;
    snprintf(mi->dataset, sizeof mi->dataset, "%s", ds);
    mi->channels = (int)ch;
    mi->pad = (int)pad;
    for (int i = 0; i < mi->channels; i++) {
        double m = 0, s = 0;
        jc_number_at(c, mean, "input.mean", (size_t)i, -1e30, 1e30, &m);
        jc_number_at(c, std, "input.std", (size_t)i, 1e-30, 1e30, &s);
        mi->mean[i] = (float)m;
        mi->std[i] = (float)s;
    }
}

/* The record of the training data; absent from older manifests. */
static void parse_dataset(jcheck *c, json_t *root, model_info *mi) {
    if (!jc_ok(c) || !json_object_get(root, "dataset")) return;
    json_t *d = jc_get(c, root, "", "dataset", JK_OBJECT);
    const char *kind = jc_string(c, d, "dataset", "kind");
    const char *location = jc_string(c, d, "dataset", "location");
    json_t *splits = jc_get(c, d, "dataset", "splits", JK_OBJECT);
    if (!jc_ok(c)) return;
    if (strcmp(kind, mi->dataset) != 0) {
        jc_fail(c, MODA_ERR_FORMAT, "\"dataset.kind\" is \"%s\" but \"input.dataset\" is \"%s\"", kind, mi->dataset);
        return;
    }
    if (strlen(location) >= sizeof mi->data.location) {
        jc_fail(c, MODA_ERR_FORMAT, "\"dataset.location\" is longer than %zu bytes", sizeof mi->data.location - 1);
        return;
    }
    char why[160];
    if (!dataset_record_splits_parse(splits, &mi->data, why, sizeof why)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"dataset.splits\" %s", why);
        return;
    }
    snprintf(mi->data.location, sizeof mi->data.location, "%s", location);
    json_t *sel = json_object_get(d, "selection");
    if (sel && !dataset_selection_parse(sel, &mi->selection, why, sizeof why)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"dataset.selection\" %s", why);
        return;
    }
    /* A composed model keeps its parent's selection: its origin names which of those classes it has. */
    if (sel && !json_object_get(root, "origin") && dataset_selection_classes(&mi->selection) != mi->model.num_classes)
        jc_fail(c, MODA_ERR_FORMAT, "\"dataset.selection\" gives %d classes, the model has %d",
                dataset_selection_classes(&mi->selection), mi->model.num_classes);
}

static void parse_classes(jcheck *c, json_t *root, model_info *mi) {
    int k = mi->model.num_classes;
    json_t *names = jc_array(c, root, "", "classes", k);
    if (!jc_ok(c)) return;
    mi->class_names = calloc((size_t)k, sizeof(char *));
    if (!mi->class_names) {
        jc_fail(c, MODA_ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; jc_ok(c) && i < k; i++) {
        const char *s = json_string_value(jc_at(c, names, "classes", (size_t)i, JK_STRING));
        if (s && !(mi->class_names[i] = strdup(s))) jc_fail(c, MODA_ERR_NOMEM, "out of memory");
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* A composed model's "origin"; absent for a trained model. */
static void parse_origin(jcheck *c, json_t *root, registry_model *m) {
    if (!jc_ok(c) || !json_object_get(root, "origin")) return;
    int k = m->info.model.num_classes;
    registry_origin *o = &m->origin;
    json_t *obj = jc_get(c, root, "", "origin", JK_OBJECT);
    const char *parent = jc_string(c, obj, "origin", "model");
    const char *sha = jc_string(c, obj, "origin", "manifest_sha256");
    json_t *classes = jc_array(c, obj, "origin", "classes", k);
    double tau = 0;
    jc_number(c, obj, "origin", "tau", 0, 1, &tau);
    compose_mode mode = COMPOSE_TIED;
    const char *mode_name = json_object_get(obj, "mode") ? jc_string(c, obj, "origin", "mode") : NULL;
    if (mode_name && !compose_mode_parse(mode_name, &mode))
        jc_fail(c, MODA_ERR_FORMAT, "\"origin.mode\" is \"%s\", not \"tied\" or \"per-layer\"", mode_name);
    if (!jc_ok(c)) return;
    if (!registry_name_valid(parent)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"origin.model\" is \"%s\", not a valid model name", parent);
        return;
    }
    if (!registry_is_sha256_hex(sha)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"origin.manifest_sha256\" is not 64 hex digits");
        return;
    }
    int *sorted = malloc((size_t)k * sizeof(int));
    o->classes = malloc((size_t)k * sizeof(int));
    if (!sorted || !o->classes) {
        free(sorted);
        jc_fail(c, MODA_ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < k; i++) {
        json_t *v = jc_at(c, classes, "origin.classes", (size_t)i, JK_INT);
        long long x = v ? (long long)json_integer_value(v) : 0;
        if (v && (x < 0 || x >= REGISTRY_MAX_CLASSES))
            jc_fail(c, MODA_ERR_FORMAT, "\"origin.classes[%d]\" is %lld, outside [0, %d]", i, x,
                    REGISTRY_MAX_CLASSES - 1);
        if (!jc_ok(c)) break;
        o->classes[i] = sorted[i] = (int)x;
    }
    /* Sorted, so a long list is checked in n log n. */
    if (jc_ok(c)) qsort(sorted, (size_t)k, sizeof(int), cmp_int);
    for (int i = 1; jc_ok(c) && i < k; i++)
        if (sorted[i] == sorted[i - 1])
            jc_fail(c, MODA_ERR_FORMAT, "\"origin.classes\" lists class %d twice", sorted[i]);
    free(sorted);
    if (!jc_ok(c)) return;
    snprintf(o->model, sizeof o->model, "%s", parent);
    snprintf(o->manifest_sha256, sizeof o->manifest_sha256, "%s", sha);
    o->n_classes = k;
    o->tau = (float)tau;
    o->mode = mode;
    m->composed = true;
}

static void parse_training(jcheck *c, json_t *root) {
    json_t *t = jc_get(c, root, "", "training", JK_OBJECT);
    /* The MODA loss weights say what kind of model this is; when recorded
     * they must be numbers. */
    const char *keys[] = {"alpha", "beta", "gamma"};
    for (size_t i = 0; t && i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_get(t, keys[i])) jc_get(c, t, "training", keys[i], JK_NUMBER);
}

static void parse_stats(jcheck *c, json_t *root, json_t *graph, module_stats *st, int k) {
    json_t *m = jc_get(c, root, "", "modules", JK_OBJECT);
    double tau = 0;
    jc_number(c, m, "modules", "tau", 0, 1, &tau);
    json_t *size = jc_array(c, m, "modules", "size", k);
    jc_number(c, m, "modules", "mean_size", 0, FRACTION_MAX, &st->mean_size);
    jc_number(c, m, "modules", "mean_overlap", 0, FRACTION_MAX, &st->mean_overlap);
    json_t *overlap = jc_array(c, m, "modules", "overlap", k);
    json_t *layers = jc_get(c, m, "modules", "layers", JK_ARRAY);
    /* Every row is checked before the K x K matrix is allocated, so its
     * size is bounded by the document's. */
    for (int a = 0; jc_ok(c) && a < k; a++) {
        json_t *row = jc_at(c, overlap, "modules.overlap", (size_t)a, JK_ARRAY);
        if (row && json_array_size(row) != (size_t)k)
            jc_fail(c, MODA_ERR_FORMAT, "\"modules.overlap[%d]\" has %zu elements, expected %d", a,
                    json_array_size(row), k);
    }
    if (!jc_ok(c)) return;
    st->num_classes = k;
    st->tau = (float)tau;
    st->n_layers = (int)json_array_size(layers);
    st->size = calloc((size_t)k, sizeof(double));
    st->overlap = calloc((size_t)k * k, sizeof(double));
    st->layer_node = calloc((size_t)st->n_layers + 1, sizeof(int));
    st->layer_overlap = calloc((size_t)st->n_layers + 1, sizeof(double));
    if (!st->size || !st->overlap || !st->layer_node || !st->layer_overlap) {
        jc_fail(c, MODA_ERR_NOMEM, "out of memory");
        return;
    }
    for (int a = 0; jc_ok(c) && a < k; a++) {
        jc_number_at(c, size, "modules.size", (size_t)a, 0, FRACTION_MAX, &st->size[a]);
        char where[48];
        snprintf(where, sizeof where, "modules.overlap[%d]", a);
        json_t *row = json_array_get(overlap, (size_t)a);
        for (int b = 0; jc_ok(c) && b < k; b++)
            jc_number_at(c, row, where, (size_t)b, 0, FRACTION_MAX, &st->overlap[(size_t)a * k + b]);
    }
    size_t n_nodes = json_array_size(graph);
    for (int l = 0; jc_ok(c) && l < st->n_layers; l++) {
        char where[48];
        snprintf(where, sizeof where, "modules.layers[%d]", l);
        json_t *o = jc_at(c, layers, "modules.layers", (size_t)l, JK_OBJECT);
        long long node = 0;
        jc_string(c, o, where, "name");
        if (jc_int(c, o, where, "node", 0, (long long)n_nodes - 1, &node)) {
            const char *kind = json_string_value(json_object_get(json_array_get(graph, (size_t)node), "kind"));
            if (!kind || (strcmp(kind, "conv2d") && strcmp(kind, "linear")))
                jc_fail(c, MODA_ERR_FORMAT, "\"%s.node\" is %lld, not a conv2d or linear node", where, node);
        }
        jc_number(c, o, where, "overlap", 0, FRACTION_MAX, &st->layer_overlap[l]);
        st->layer_node[l] = (int)node;
    }
}

moda_status registry_manifest_parse(const char *text, const char *file, const char *name, registry_model *m,
                                    registry_file_info files[REGISTRY_N_FILES], json_t **arch_out, char *err,
                                    size_t errlen) {
    *arch_out = NULL;
    memset(files, 0, sizeof(registry_file_info) * REGISTRY_N_FILES); /* a model lists only its own kind's files */
    jcheck c;
    jc_init(&c, file, err, errlen);
    json_t *root = jc_load_document(&c, text, strlen(text));
    if (!root) return c.status;
    const char *mname = jc_string(&c, root, "", "name");
    if (mname && strcmp(mname, name) != 0)
        jc_fail(&c, MODA_ERR_FORMAT, "\"name\" is \"%s\" but the index lists it as \"%s\"", mname, name);
    json_t *arch = NULL, *g = NULL;
    parse_architecture(&c, root, &m->info, &arch, &g);
    parse_input(&c, root, &m->info);
    parse_classes(&c, root, &m->info);
    parse_dataset(&c, root, &m->info);
    parse_origin(&c, root, m);
    parse_training(&c, root);
    json_t *metrics = jc_get(&c, root, "", "metrics", JK_OBJECT);
    jc_number(&c, metrics, "metrics", "test_accuracy", 0, 1, &m->test_acc);
    if (jc_ok(&c) && json_object_get(root, "patched")) {
        if (m->composed) jc_fail(&c, MODA_ERR_FORMAT, "a model cannot be both composed (\"origin\") and patched");
        registry_patch_parse(&c, root, m);
    }
    json_t *fl = NULL;
    if (m->patched) {
        fl = jc_get(&c, root, "", "files", JK_OBJECT);
        parse_file(&c, fl, "calibration", &files[REGISTRY_FILE_CALIBRATION]);
    } else {
        parse_stats(&c, root, g, &m->stats, m->info.model.num_classes);
        fl = jc_get(&c, root, "", "files", JK_OBJECT);
        parse_file(&c, fl, "weights", &files[REGISTRY_FILE_WEIGHTS]);
        parse_file(&c, fl, "rates", &files[REGISTRY_FILE_RATES]);
        if (jc_ok(&c) && !strcmp(files[REGISTRY_FILE_WEIGHTS].path, files[REGISTRY_FILE_RATES].path))
            jc_fail(&c, MODA_ERR_FORMAT, "the weights and rates files have the same path");
    }
    if (jc_ok(&c)) {
        snprintf(m->name, sizeof m->name, "%s", name);
        *arch_out = json_incref(arch);
    }
    json_decref(root);
    return c.status;
}

moda_status registry_manifest_check_graph(json_t *arch, const graph *g, const char *built_from, const char *file,
                                          char *err, size_t errlen) {
    jcheck c;
    jc_init(&c, file, err, errlen);
    json_t *want = registry_graph_json(g);
    if (!want) {
        jc_fail(&c, MODA_ERR_NOMEM, "out of memory");
        return c.status;
    }
    json_t *graph = json_object_get(arch, "graph");
    json_int_t params = json_integer_value(json_object_get(arch, "params"));
    if ((size_t)params != graph_param_count(g))
        jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.params\" is %lld but the model built from %s has %zu "
                "trainable parameters", (long long)params, built_from, graph_param_count(g));
    if (jc_ok(&c) && json_array_size(graph) != json_array_size(want))
        jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.graph\" has %zu nodes but the model built from %s has %zu",
                json_array_size(graph), built_from, json_array_size(want));
    for (size_t i = 0; jc_ok(&c) && i < json_array_size(want); i++) {
        json_t *w = json_array_get(want, i), *h = json_array_get(graph, i);
        if (json_equal(w, h)) continue;
        /* Name the first differing field so the message is actionable. */
        const char *key;
        json_t *v;
        json_object_foreach(w, key, v) {
            if (!json_equal(v, json_object_get(h, key))) {
                jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.graph[%zu].%s\" does not match the model built from %s",
                        i, key, built_from);
                break;
            }
        }
        json_object_foreach(h, key, v) {
            if (!json_object_get(w, key)) {
                jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.graph[%zu]\" has an unexpected key \"%s\"", i, key);
                break;
            }
        }
    }
    json_decref(want);
    return c.status;
}
