/* Composed models as registry models: compose_rates slices the parent's
 * rates to the kept units; a composed model written to the registry loads
 * back (graph rebuilt from its node list) with bit-identical logits and
 * can be composed again, giving exactly what composing the parent gives
 * (tied and per layer, whose residual adds replay with their channel maps);
 * damage to its origin or node list is rejected with a message naming the
 * file; and `moda compose` works end to end with exit codes 0, 1 and 2. */
#include "test_util.h"

#include <jansson.h>
#include <sys/stat.h>

#include "cmd_compose.h"
#include "compose.h"
#include "decompose.h"
#include "fileio.h"
#include "models.h"
#include "registry.h"
#include "sha256.h"
#include "synthetic_idx.h"
#include "train.h"

static char root[256];
static int n_roots;
static moda_backend *be;

/* ---- a parent model with made-up weights and rates ------------------------ */

typedef struct parent {
    graph *g;
    model_info mi;
    rates r;
    module_stats st;
} parent;

static void parent_make(parent *f, model_arch arch, float width, int in_c, int k, int size, uint64_t seed) {
    memset(f, 0, sizeof(*f));
    model_config cfg = {arch, width, in_c, k, size};
    moda_status s;
    f->g = model_build(be, &cfg, &s);
    assert_non_null(f->g);
    assert_int_equal(model_init(f->g, &cfg, seed), MODA_OK);
    rng rg;
    rng_seed(&rg, seed, 3);
    /* BN statistics and biases away from their defaults, so every
     * parameter is seen to travel. */
    for (int i = 0; i < f->g->n_params; i++) {
        graph_param *p = &f->g->params[i];
        if (p->ndim == 1) rng_fill_uniform(&rg, p->data, graph_param_numel(p), 0.5f, 1.5f);
    }
    f->mi.model = cfg;
    snprintf(f->mi.dataset, sizeof f->mi.dataset, "idx");
    f->mi.pad = (size - 12) / 2 > 0 ? (size - 12) / 2 : 0;
    f->mi.channels = in_c;
    for (int c = 0; c < in_c; c++) {
        f->mi.mean[c] = 0.25f + 0.01f * c;
        f->mi.std[c] = 0.375f;
    }
    const char *names[4] = {"h-stripes", "v-stripes", "fine", "coarse"};
    f->mi.class_names = calloc((size_t)k, sizeof(char *));
    for (int c = 0; c < k; c++) {
        char name[32];
        snprintf(name, sizeof name, "class-%d", c);
        f->mi.class_names[c] = strdup(k == 4 ? names[c] : name);
    }
    assert_int_equal(rates_alloc(&f->r, f->g, k), MODA_OK);
    for (int l = 0; l < f->r.n_layers; l++)
        for (int j = 0; j < k * f->r.units[l]; j++) f->r.rate[l][j] = (float)rng_below(&rg, 33) / 32.0f;
    for (int c = 0; c < k; c++) f->r.class_count[c] = 50 + c;
    assert_int_equal(module_stats_compute(f->g, &f->r, 0.9f, &f->st), MODA_OK);
}

static void parent_free(parent *f) {
    module_stats_free(&f->st);
    rates_free(&f->r);
    model_info_free(&f->mi);
    graph_free(f->g);
}

static void new_root(char *buf, size_t len) { snprintf(buf, len, "%s/reg%d", root, n_roots++); }

static void write_parent(const char *reg, const char *name, const parent *f) {
    char err[1024] = "";
    if (registry_write_model(reg, name, f->g, &f->mi, NULL, 0.8, &f->r, &f->st, err, sizeof err) != MODA_OK)
        fail_msg("write %s: %s", name, err);
}

static void load(const char *reg, const char *name, registry_model *m) {
    char err[1024] = "";
    registry *r = NULL;
    if (registry_open(reg, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    if (registry_load_model(r, name, be, m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    registry_close(r);
}

static float *input(int n, const graph *g, uint64_t seed) {
    rng q;
    rng_seed(&q, seed, 5);
    return tu_randn(&q, (size_t)n * g->in_c * g->in_h * g->in_w, 1.0f);
}

static float *logits(graph *g, const float *x, int n) {
    assert_int_equal(graph_plan(g, n), MODA_OK);
    assert_int_equal(graph_forward(g, x, n, false), MODA_OK);
    graph_node *o = graph_output(g);
    float *y = tu_alloc(tensor_numel(&o->out));
    memcpy(y, o->out.data, tensor_numel(&o->out) * sizeof(float));
    return y;
}

/* A composed model of m for cls at tau, with its rates and stats. */
typedef struct composed {
    compose_plan p;
    graph *g;
    rates r;
    module_stats st;
} composed;

/* The composition mode compose() and write_composed() use. */
static compose_mode mode = COMPOSE_TIED;

static void compose(graph *g, const rates *r, const int *cls, int n, float tau, composed *c) {
    memset(c, 0, sizeof(*c));
    assert_int_equal(compose_plan_make_mode(g, r, cls, n, tau, mode, &c->p), MODA_OK);
    assert_int_equal(compose_build(g, &c->p, be, &c->g), MODA_OK);
    assert_int_equal(compose_rates(g, r, &c->p, c->g, &c->r), MODA_OK);
    assert_int_equal(module_stats_compute_mode(c->g, &c->r, tau, mode, &c->st), MODA_OK);
}

static int mapped_adds(const graph *g) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += graph_add_is_mapped(&g->nodes[i]);
    return n;
}

static void composed_free(composed *c) {
    module_stats_free(&c->st);
    rates_free(&c->r);
    graph_free(c->g);
    compose_plan_free(&c->p);
}

/* Store c, composed from the registry model m, as `name`. */
static void write_composed(const char *reg, const char *name, const registry_model *m, const composed *c,
                           float tau) {
    model_info mi;
    registry_origin o;
    char err[1024] = "";
    assert_int_equal(registry_composed_info(m, c->p.classes, c->p.n_classes, tau, &mi, &o), MODA_OK);
    o.mode = mode;
    if (registry_write_composed(reg, name, c->g, &mi, &o, "{\"alpha\":1}", 0.5, &c->r, &c->st, err, sizeof err) !=
        MODA_OK)
        fail_msg("write %s: %s", name, err);
    registry_origin_free(&o);
    model_info_free(&mi);
}

/* ---- compose_rates ----------------------------------------------------------- */

static void test_compose_rates(void **state) {
    (void)state;
    parent f;
    parent_make(&f, MODEL_RESNET18, 0.0625f, 3, 10, 32, 1);
    int cls[3] = {7, 2, 5};
    composed c;
    compose(f.g, &f.r, cls, 3, 0.5f, &c);
    assert_int_equal(c.r.num_classes, 3);
    assert_int_equal(c.r.n_layers, f.r.n_layers);
    bool sliced = false;
    for (int l = 0; l < f.r.n_layers; l++) {
        int node = f.r.node[l], n = f.r.units[l];
        assert_int_equal(c.r.node[l], node);
        assert_int_equal(c.r.units[l], c.g->nodes[node].c);
        sliced |= c.r.units[l] < n;
        for (int j = 0; j < 3; j++)
            for (int u = 0, v = 0; u < n; u++)
                if (c.p.keep[node][u]) {
                    assert_true(c.r.rate[l][j * c.r.units[l] + v] == f.r.rate[l][cls[j] * n + u]);
                    v++;
                }
    }
    assert_true(sliced); /* tau 0.5 drops units somewhere */
    for (int j = 0; j < 3; j++) assert_int_equal(c.r.class_count[j], f.r.class_count[cls[j]]);

    /* All classes at tau 0: nothing dropped, rows in the order asked for. */
    int all[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    composed a;
    compose(f.g, &f.r, all, 10, 0.0f, &a);
    for (int l = 0; l < f.r.n_layers; l++)
        for (int j = 0; j < 10; j++)
            assert_memory_equal(a.r.rate[l] + (size_t)j * f.r.units[l], f.r.rate[l] + (size_t)all[j] * f.r.units[l],
                                (size_t)f.r.units[l] * sizeof(float));

    /* A composed graph from another plan does not fit. */
    rates bad;
    assert_int_equal(compose_rates(f.g, &f.r, &c.p, a.g, &bad), MODA_ERR_ARG);
    assert_int_equal(compose_rates(f.g, &f.r, &a.p, c.g, &bad), MODA_ERR_ARG);
    assert_int_equal(compose_rates(NULL, &f.r, &c.p, c.g, &bad), MODA_ERR_NULL);
    composed_free(&a);
    composed_free(&c);
    parent_free(&f);
}

/* ---- round trip ---------------------------------------------------------------- */

static void round_trip(model_arch arch, float width, int in_c, int k, int size, float tau) {
    parent f;
    parent_make(&f, arch, width, in_c, k, size, 7);
    char reg[300];
    new_root(reg, sizeof reg);
    write_parent(reg, "parent", &f);
    registry_model pm;
    load(reg, "parent", &pm);
    assert_false(pm.composed);
    assert_int_equal(pm.origin.n_classes, 0);
    assert_int_equal((int)strlen(pm.manifest_sha256), 64);

    int cls[3] = {3, 1, 0};
    composed c;
    compose(pm.g, &pm.r, cls, 3, tau, &c);
    assert_true(graph_param_count(c.g) < graph_param_count(pm.g));
    write_composed(reg, "sub", &pm, &c, tau);

    registry_model sm;
    load(reg, "sub", &sm);
    assert_true(sm.composed);
    assert_string_equal(sm.origin.model, "parent");
    assert_string_equal(sm.origin.manifest_sha256, pm.manifest_sha256);
    assert_int_equal(sm.origin.n_classes, 3);
    assert_memory_equal(sm.origin.classes, cls, sizeof cls);
    assert_true(sm.origin.tau == tau);
    assert_int_equal(sm.origin.mode, mode);
    assert_int_equal(mapped_adds(sm.g), mapped_adds(c.g));
    if (mode == COMPOSE_PER_LAYER && arch == MODEL_RESNET18) assert_true(mapped_adds(c.g) > 0);
    assert_int_equal(sm.info.model.num_classes, 3);
    assert_int_equal(sm.info.model.arch, pm.info.model.arch);
    assert_int_equal(sm.info.pad, pm.info.pad);
    assert_string_equal(sm.info.dataset, pm.info.dataset);
    for (int ch = 0; ch < in_c; ch++) {
        assert_true(sm.info.mean[ch] == pm.info.mean[ch]);
        assert_true(sm.info.std[ch] == pm.info.std[ch]);
    }
    for (int j = 0; j < 3; j++) assert_string_equal(sm.info.class_names[j], pm.info.class_names[cls[j]]);
    assert_non_null(strstr(sm.manifest_json, "\"alpha\": 1"));

    /* The same graph and weights, hence the same logits to the bit. */
    assert_int_equal(sm.g->n_nodes, c.g->n_nodes);
    assert_int_equal(sm.g->n_params, c.g->n_params);
    for (int i = 0; i < c.g->n_params; i++) {
        assert_string_equal(sm.g->params[i].name, c.g->params[i].name);
        assert_memory_equal(sm.g->params[i].data, c.g->params[i].data,
                            graph_param_numel(&c.g->params[i]) * sizeof(float));
    }
    for (int l = 0; l < c.r.n_layers; l++)
        assert_memory_equal(sm.r.rate[l], c.r.rate[l], 3 * (size_t)c.r.units[l] * sizeof(float));
    assert_true(fabs(sm.stats.mean_size - c.st.mean_size) < 1e-12);
    float *x = input(3, pm.g, 11);
    float *want = logits(c.g, x, 3), *got = logits(sm.g, x, 3);
    assert_memory_equal(got, want, 3 * 3 * sizeof(float));
    free(got);
    free(want);

    /* Composing the composed model for outputs {2, 0} (parent classes 0
     * and 3) gives what composing the parent for {0, 3} gives. */
    int again[2] = {2, 0}, direct[2] = {0, 3};
    composed c2, c3;
    compose(sm.g, &sm.r, again, 2, tau, &c2);
    compose(pm.g, &pm.r, direct, 2, tau, &c3);
    assert_int_equal(graph_param_count(c2.g), graph_param_count(c3.g));
    want = logits(c3.g, x, 3);
    got = logits(c2.g, x, 3);
    assert_memory_equal(got, want, 3 * 2 * sizeof(float));
    free(got);
    free(want);
    write_composed(reg, "subsub", &sm, &c2, tau);
    registry_model ssm;
    load(reg, "subsub", &ssm);
    assert_string_equal(ssm.origin.model, "sub");
    assert_string_equal(ssm.origin.manifest_sha256, sm.manifest_sha256);
    assert_string_equal(ssm.info.class_names[1], pm.info.class_names[3]);

    /* The manifest alone says where it came from. */
    char err[1024];
    registry *r = NULL;
    assert_int_equal(registry_open(reg, NULL, &r, err, sizeof err), MODA_OK);
    registry_model only;
    assert_int_equal(registry_read_manifest(r, "sub", &only, err, sizeof err), MODA_OK);
    assert_null(only.g);
    assert_true(only.composed);
    assert_int_equal(only.origin.classes[0], 3);
    registry_model_free(&only);
    registry_close(r);

    free(x);
    registry_model_free(&ssm);
    composed_free(&c3);
    composed_free(&c2);
    registry_model_free(&sm);
    composed_free(&c);
    registry_model_free(&pm);
    parent_free(&f);
}

static void test_round_trip_resnet(void **state) {
    (void)state;
    round_trip(MODEL_RESNET18, 0.0625f, 3, 10, 32, 0.5f);
}

static void test_round_trip_lenet(void **state) {
    (void)state;
    round_trip(MODEL_LENET5, 1.0f, 1, 4, 16, 0.6f);
}

static void test_round_trip_mobilenet(void **state) {
    (void)state;
    round_trip(MODEL_MOBILENET, 0.0625f, 3, 10, 32, 0.5f);
}

static void test_round_trip_per_layer(void **state) {
    (void)state;
    mode = COMPOSE_PER_LAYER;
    round_trip(MODEL_RESNET18, 0.0625f, 3, 10, 32, 0.5f);
    round_trip(MODEL_MOBILENET, 0.0625f, 3, 10, 32, 0.5f);
    mode = COMPOSE_TIED;
}

/* Invalid origins are not written. */
static void test_write_errors(void **state) {
    (void)state;
    parent f;
    parent_make(&f, MODEL_LENET5, 1.0f, 1, 4, 16, 2);
    char reg[300], err[1024] = "";
    new_root(reg, sizeof reg);
    write_parent(reg, "parent", &f);
    registry_model pm;
    load(reg, "parent", &pm);
    int cls[2] = {1, 2};
    composed c;
    compose(pm.g, &pm.r, cls, 2, 0.9f, &c);
    model_info mi;
    registry_origin o;
    assert_int_equal(registry_composed_info(&pm, cls, 2, 0.9f, &mi, &o), MODA_OK);
    o.classes[1] = 1; /* twice */
    assert_int_equal(registry_write_composed(reg, "sub", c.g, &mi, &o, NULL, 0.5, &c.r, &c.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "invalid origin"));
    o.classes[1] = 2;
    o.tau = 1.5f;
    assert_int_equal(registry_write_composed(reg, "sub", c.g, &mi, &o, NULL, 0.5, &c.r, &c.st, err, sizeof err),
                     MODA_ERR_ARG);
    o.tau = 0.9f;
    assert_int_equal(registry_write_composed(reg, "sub", c.g, &mi, NULL, NULL, 0.5, &c.r, &c.st, err, sizeof err),
                     MODA_ERR_NULL);
    char sub[400];
    snprintf(sub, sizeof sub, "%s/sub", reg);
    struct stat st;
    assert_int_not_equal(stat(sub, &st), 0); /* nothing written */

    /* Bad class sets for the description. */
    model_info mi2;
    registry_origin o2;
    int dup[2] = {1, 1}, out[1] = {4};
    assert_int_equal(registry_composed_info(&pm, dup, 2, 0.9f, &mi2, &o2), MODA_ERR_ARG);
    assert_int_equal(registry_composed_info(&pm, out, 1, 0.9f, &mi2, &o2), MODA_ERR_ARG);
    assert_int_equal(registry_composed_info(&pm, cls, 2, -1.0f, &mi2, &o2), MODA_ERR_ARG);
    registry_origin_free(&o);
    registry_origin_free(NULL);
    model_info_free(&mi);
    composed_free(&c);
    registry_model_free(&pm);
    parent_free(&f);
}

/* ---- damage ----------------------------------------------------------------- */

static json_t *get_manifest(const char *reg, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s/manifest.json", reg, name);
    json_error_t jerr;
    json_t *j = json_load_file(p, 0, &jerr);
    if (!j) fail_msg("%s: %s", p, jerr.text);
    return j;
}

/* Replace the manifest and make the index vouch for it, so only the
 * change under test is wrong. */
static void put_manifest(const char *reg, const char *name, json_t *manifest) {
    char p[512], hex[SHA256_HEX_LEN], err[512];
    snprintf(p, sizeof p, "%s/%s/manifest.json", reg, name);
    char *text = json_dumps(manifest, JSON_INDENT(1));
    assert_int_equal(fileio_write_atomic(p, text, strlen(text), err, sizeof err), MODA_OK);
    sha256_hex(text, strlen(text), hex);
    free(text);
    snprintf(p, sizeof p, "%s/index.json", reg);
    json_error_t jerr;
    json_t *idx = json_load_file(p, 0, &jerr);
    assert_non_null(idx);
    json_t *models = json_object_get(idx, "models");
    for (size_t i = 0; i < json_array_size(models); i++) {
        json_t *m = json_array_get(models, i);
        if (!strcmp(json_string_value(json_object_get(m, "name")), name))
            json_object_set_new(m, "sha256", json_string(hex));
    }
    assert_int_equal(json_dump_file(idx, p, JSON_INDENT(1)), 0);
    json_decref(idx);
}

static void expect_load_error(const char *reg, const char *name, const char *needle) {
    char err[1024] = "", file[400];
    registry *r = NULL;
    registry_model m;
    assert_int_equal(registry_open(reg, NULL, &r, err, sizeof err), MODA_OK);
    moda_status s = registry_load_model(r, name, be, &m, err, sizeof err);
    if (s == MODA_OK) registry_model_free(&m);
    assert_null(m.g);
    registry_close(r);
    snprintf(file, sizeof file, "%s/%s/manifest.json", reg, name);
    if (s != MODA_ERR_FORMAT || !strstr(err, file) || !strstr(err, needle))
        fail_msg("expected a format error naming %s with \"%s\", got %s: %s", file, needle, moda_status_string(s),
                 err);
}

/* The JSON object at a dotted path like "architecture.graph.1" (array
 * elements by index). */
static json_t *at(json_t *root, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *o = root;
    for (char *tok = strtok(buf, "."); tok && o; tok = strtok(NULL, "."))
        o = json_is_array(o) ? json_array_get(o, (size_t)atoi(tok)) : json_object_get(o, tok);
    assert_non_null(o);
    return o;
}

/* A registry holding "parent" (LeNet5) and "sub" composed from it. */
static void fresh(char *reg, size_t len, const parent *f) {
    new_root(reg, len);
    write_parent(reg, "parent", f);
    registry_model pm;
    load(reg, "parent", &pm);
    int cls[3] = {2, 0, 3};
    composed c;
    compose(pm.g, &pm.r, cls, 3, 0.6f, &c);
    write_composed(reg, "sub", &pm, &c, 0.6f);
    composed_free(&c);
    registry_model_free(&pm);
}

static void test_damaged_manifest(void **state) {
    (void)state;
    parent f;
    parent_make(&f, MODEL_LENET5, 1.0f, 1, 4, 16, 3);
    char reg[300];
    struct {
        const char *obj, *key;
        const char *json; /* the new value; NULL deletes the key */
        const char *needle;
    } cases[] = {
        {"origin", "model", NULL, "missing key \"origin.model\""},
        {"origin", "manifest_sha256", NULL, "missing key \"origin.manifest_sha256\""},
        {"origin", "classes", NULL, "missing key \"origin.classes\""},
        {"origin", "tau", NULL, "missing key \"origin.tau\""},
        {"", "origin", "[]", "wrong type for \"origin\": expected an object"},
        {"origin", "model", "7", "wrong type for \"origin.model\""},
        {"origin", "model", "\"../x\"", "\"origin.model\" is \"../x\", not a valid model name"},
        {"origin", "manifest_sha256", "\"abc\"", "\"origin.manifest_sha256\" is not 64 hex digits"},
        {"origin", "classes", "\"2,0,3\"", "wrong type for \"origin.classes\""},
        {"origin", "classes", "[2,0]", "\"origin.classes\" has 2 elements, expected 3"},
        {"origin", "classes", "[2,\"0\",3]", "wrong type for \"origin.classes[1]\""},
        {"origin", "classes", "[2,-1,3]", "\"origin.classes[1]\" is -1"},
        {"origin", "classes", "[2,0,2]", "\"origin.classes\" lists class 2 twice"},
        {"origin", "tau", "\"0.6\"", "wrong type for \"origin.tau\""},
        {"origin", "tau", "1.5", "\"origin.tau\" is 1.5"},
        /* Without its origin the architecture fields cannot rebuild it. */
        {"", "origin", NULL, "the model built from the architecture fields"},
        /* The node list against the stored shapes and parameters. */
        {"architecture", "params", "12", "\"architecture.params\" is 12 but the model built from its node list"},
        {"architecture.graph.1", "pad", "[1,1]", "\"architecture.graph[1].shape\" does not match the model built "
                                                 "from its node list"},
        {"architecture.graph.1", "kernel", "[5,3]", "\"architecture.graph[1].kernel\" does not match"},
        {"architecture.graph.1", "kernel", "5", "wrong type for \"architecture.graph[1].kernel\""},
        {"architecture.graph.1", "kernel", "[0,0]", "\"architecture.graph[1].kernel[0]\" is 0"},
        {"architecture.graph.1", "groups", "4", "cannot build this conv2d node"},
        {"architecture.graph.1", "bias", NULL, "missing key \"architecture.graph[1].bias\""},
        {"architecture.graph.1", "shape", "[1048577,12,12]", "\"architecture.graph[1].shape[0]\" is 1048577"},
        {"architecture.graph.2", "inputs", "[2]", "\"architecture.graph[2].inputs[0]\" is 2, outside [0, 1]"},
        {"architecture.graph.2", "inputs", "[0,1]", "\"architecture.graph[2].inputs\" has 2 elements, expected 1"},
        {"architecture.graph.2", "kind", "\"softmax\"", "\"architecture.graph[2].kind\" is \"softmax\", not a layer"},
        {"architecture.graph.2", "kind", "\"maxpool2d\"", "missing key \"architecture.graph[2].kernel\""},
        {"architecture.graph.0", "kind", "\"relu\"", "\"architecture.graph[0].kind\" is \"relu\", not the input"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fresh(reg, sizeof reg, &f);
        json_t *m = get_manifest(reg, "sub");
        json_t *o = cases[i].obj[0] ? at(m, cases[i].obj) : m;
        if (cases[i].json) json_object_set_new(o, cases[i].key, json_loads(cases[i].json, JSON_DECODE_ANY, NULL));
        else assert_int_equal(json_object_del(o, cases[i].key), 0);
        put_manifest(reg, "sub", m);
        json_decref(m);
        expect_load_error(reg, "sub", cases[i].needle);
    }
    /* Channel counts that disagree with the stored parameter shapes:
     * one more output channel of conv1 (so more parameters), and a weight
     * shape the node cannot have. */
    const char *bumps[][2] = {
        {"architecture.graph.1.shape", "\"architecture.params\" is"},
        {"architecture.graph.1.params.0.shape", "\"architecture.graph[1].params\" does not match the model built "
                                                "from its node list"},
    };
    for (size_t i = 0; i < sizeof bumps / sizeof bumps[0]; i++) {
        fresh(reg, sizeof reg, &f);
        json_t *m = get_manifest(reg, "sub");
        json_t *shape = at(m, bumps[i][0]);
        json_array_set_new(shape, 0, json_integer(json_integer_value(json_array_get(shape, 0)) + 1));
        put_manifest(reg, "sub", m);
        json_decref(m);
        expect_load_error(reg, "sub", bumps[i][1]);
    }
    /* A node list one node short (and its stats without that layer): the
     * last node is not the logits. */
    fresh(reg, sizeof reg, &f);
    json_t *m = get_manifest(reg, "sub");
    json_t *nodes = at(m, "architecture.graph"), *layers = at(m, "modules.layers");
    assert_int_equal(json_array_remove(nodes, json_array_size(nodes) - 1), 0);
    assert_int_equal(json_array_remove(layers, json_array_size(layers) - 1), 0);
    put_manifest(reg, "sub", m);
    json_decref(m);
    expect_load_error(reg, "sub", "outputs, not the 3 classes of \"architecture.num_classes\"");
    parent_free(&f);
}

/* ---- the command ------------------------------------------------------------- */

static int run(const char **args) {
    int argc = 0;
    while (args[argc]) argc++;
    fflush(stdout);
    return cmd_compose(argc, (char **)args);
}

static void test_cli(void **state) {
    (void)state;
    char data[300], reg[300], reg2[300], empty[300], err[1024];
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(empty, sizeof empty, "%s/empty", root);
    mkdir(data, 0755);
    mkdir(empty, 0755);
    synth_write_idx(data, "t10k", 40, 2);
    parent f;
    parent_make(&f, MODEL_LENET5, 1.0f, 1, 4, 16, 4);
    new_root(reg, sizeof reg);
    new_root(reg2, sizeof reg2);
    write_parent(reg, "lenet", &f);

    const char *show[] = {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", " Fine , 0", NULL};
    assert_int_equal(run(show), 0);
    const char *save[] = {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "fine,h-stripes",
                          "--tau", "0.6", "--save", "sub", "--data-dir", data, "--batch-size", "7", NULL};
    assert_int_equal(run(save), 0);
    registry_model sm;
    load(reg, "sub", &sm);
    assert_true(sm.composed);
    assert_string_equal(sm.origin.model, "lenet");
    assert_int_equal(sm.origin.classes[0], 2);
    assert_int_equal(sm.origin.classes[1], 0);
    assert_true(sm.origin.tau == 0.6f);
    assert_string_equal(sm.info.class_names[0], "fine");
    assert_string_equal(sm.info.class_names[1], "h-stripes");
    assert_true(sm.stats.tau == 0.6f);
    /* The stored accuracy is the reuse accuracy on the test images of
     * classes 2 and 0, labels remapped to positions 0 and 1. */
    dataset test = {0};
    assert_int_equal(data_load_split(&test, "idx", data, &(dataset_load_options){.image_size = 16}, DATASET_TEST, 0, &sm.info,
                                      NULL, err, sizeof err),
                     MODA_OK);
    float *y = logits(sm.g, test.images, test.n);
    int right = 0, total = 0;
    for (int i = 0; i < test.n; i++) {
        int pos = test.labels[i] == 2 ? 0 : test.labels[i] == 0 ? 1 : -1;
        if (pos < 0) continue;
        right += (y[2 * i + 1] > y[2 * i]) == (pos == 1);
        total++;
    }
    assert_int_equal(total, 20);
    assert_true(fabs(sm.test_acc - (double)right / total) < 1e-12);
    free(y);
    dataset_free(&test);
    registry_model_free(&sm);

    /* Into another registry, and composed again from the composed model. */
    const char *other[] = {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "3,1,2",
                           "--save", "lenet", "--out", reg2, "--data-dir", data, NULL};
    assert_int_equal(run(other), 0);
    const char *again[] = {"moda", "compose", "--registry", reg, "--model", "sub", "--classes", "h-stripes",
                           "--save", "subsub", "--data-dir", data, NULL};
    assert_int_equal(run(again), 0);
    registry_model ssm;
    load(reg2, "lenet", &ssm);
    assert_int_equal(ssm.info.model.num_classes, 3);
    registry_model_free(&ssm);
    load(reg, "subsub", &ssm);
    assert_string_equal(ssm.origin.model, "sub");
    assert_int_equal(ssm.origin.classes[0], 1);
    registry_model_free(&ssm);

    /* Usage errors. */
    const char *help[] = {"moda", "compose", "--help", NULL};
    assert_int_equal(run(help), 0);
    const char *usage[][16] = {
        {"moda", "compose", "--registry", reg, "--model", "lenet", NULL},
        {"moda", "compose", "--registry", reg, "--classes", "0", NULL},
        {"moda", "compose", "--model", "lenet", "--classes", "0", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", " , ", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "fine,,coarse", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "fine,", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "fine,FINE", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "2,fine", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "stripes", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "4", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "-1", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--tau", "2", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--out", reg2, NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--save", "../x", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--save", "lenet", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--batch-size", "0", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++)
        if (run(usage[i]) != 2) fail_msg("usage case %zu did not exit 2", i);

    /* Names equal but for case: only an exact match picks one. */
    free(f.mi.class_names[1]);
    f.mi.class_names[1] = strdup("FINE");
    write_parent(reg, "cased", &f);
    const char *exact[] = {"moda", "compose", "--registry", reg, "--model", "cased", "--classes", "FINE,fine", NULL};
    assert_int_equal(run(exact), 0);
    const char *ambiguous[] = {"moda", "compose", "--registry", reg, "--model", "cased", "--classes", "Fine", NULL};
    assert_int_equal(run(ambiguous), 2);
    char long_name[3000];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *unknown[] = {"moda", "compose", "--registry", reg, "--model", "cased", "--classes", long_name, NULL};
    assert_int_equal(run(unknown), 2);

    /* Runtime errors. */
    const char *runtime[][16] = {
        {"moda", "compose", "--registry", reg, "--model", "nope", "--classes", "0", NULL},
        {"moda", "compose", "--registry", data, "--model", "lenet", "--classes", "0", NULL},
        {"moda", "compose", "--registry", reg, "--model", "lenet", "--classes", "0", "--save", "s2", "--data-dir",
         empty, NULL},
    };
    for (size_t i = 0; i < sizeof runtime / sizeof runtime[0]; i++)
        if (run(runtime[i]) != 1) fail_msg("runtime case %zu did not exit 1", i);
    parent_free(&f);
}

static int setup(void **state) {
    snprintf(root, sizeof root, "/tmp/moda-compose-store-XXXXXX");
    return tu_backend_setup_into(state, &be) == 0 && mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state) {
    tu_backend_teardown(state);
    return synth_remove_tree(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_rates),       cmocka_unit_test(test_round_trip_resnet),
        cmocka_unit_test(test_round_trip_lenet),    cmocka_unit_test(test_round_trip_mobilenet),
        cmocka_unit_test(test_round_trip_per_layer),
        cmocka_unit_test(test_write_errors),        cmocka_unit_test(test_damaged_manifest),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
