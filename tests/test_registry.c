/* The model registry: a written model loads back exactly; index updates
 * add and replace entries; every kind of damage (truncation, wrong hashes,
 * missing keys, wrong types, unknown architecture, wrong tensor shapes,
 * missing files, unsafe names) is rejected with a message naming the file
 * and the problem; and `moda decompose` / `moda inspect` work end to end on
 * a tiny trained model. */
#include "test_util.h"
#include "synthetic_idx.h"

#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cmd_registry.h"
#include "compose.h"
#include "decompose.h"
#include "fileio.h"
#include "models.h"
#include "registry.h"
#include "safetensors.h"
#include "sha256.h"
#include "train.h"
#include "zstd_io.h"

static char root[256];
static int n_roots;
static moda_backend *be; /* the group's */

/* ---- a small model with made-up rates ------------------------------------ */

typedef struct fixture {
    moda_backend *be; /* the group's */
    graph *g;
    model_info mi;
    rates r;
    module_stats st;
} fixture;

static const char *TRAIN_META =
    "{\"format\":1,\"model\":{\"arch\":\"lenet5\"},\"data\":{\"dataset\":\"idx\",\"subset\":0,\"augment\":true},"
    "\"train\":{\"epochs\":3,\"batch_size\":32,\"lr\":0.05000000074505806,\"alpha\":1.0,\"beta\":1.0,"
    "\"gamma\":0.30000001192092896,\"seed\":5},\"epochs_done\":3,\"history\":[]}";

static void fixture_make(fixture *f, model_arch arch, float width, int in_c, int k, int size, uint64_t seed) {
    memset(f, 0, sizeof(*f));
    f->be = be;
    model_config cfg = {arch, width, in_c, k, size};
    moda_status s;
    f->g = model_build(f->be, &cfg, &s);
    assert_non_null(f->g);
    assert_int_equal(model_init(f->g, &cfg, seed), MODA_OK);
    /* Non-default BN statistics, so they are seen to round-trip. */
    rng rg;
    rng_seed(&rg, seed, 3);
    for (int i = 0; i < f->g->n_params; i++) {
        graph_param *p = &f->g->params[i];
        if (!p->trainable)
            for (size_t j = 0; j < graph_param_numel(p); j++) p->data[j] = 0.5f + rng_uniform(&rg);
    }
    f->mi.model = cfg;
    snprintf(f->mi.dataset, sizeof f->mi.dataset, "synthetic");
    f->mi.pad = 2;
    f->mi.channels = in_c;
    for (int c = 0; c < in_c; c++) {
        f->mi.mean[c] = 0.2860402f + 0.01f * c;
        f->mi.std[c] = 0.3530239f;
    }
    f->mi.class_names = calloc((size_t)k, sizeof(char *));
    for (int c = 0; c < k; c++) {
        char name[32];
        snprintf(name, sizeof name, "class \"%d\"", c);
        f->mi.class_names[c] = strdup(name);
    }
    assert_int_equal(rates_alloc(&f->r, f->g, k), MODA_OK);
    for (int l = 0; l < f->r.n_layers; l++)
        for (int j = 0; j < k * f->r.units[l]; j++) f->r.rate[l][j] = (float)rng_below(&rg, 33) / 32.0f;
    for (int c = 0; c < k; c++) f->r.class_count[c] = 100 + c;
    assert_int_equal(module_stats_compute(f->g, &f->r, 0.9f, &f->st), MODA_OK);
}

static void fixture_lenet(fixture *f) { fixture_make(f, MODEL_LENET5, 1.0f, 1, 4, 16, 11); }

static void fixture_free(fixture *f) {
    module_stats_free(&f->st);
    rates_free(&f->r);
    model_info_free(&f->mi);
    graph_free(f->g);
}

static void write_model(const char *reg, const char *name, const fixture *f, double acc) {
    char err[1024] = "";
    moda_status s = registry_write_model(reg, name, f->g, &f->mi, TRAIN_META, acc, &f->r, &f->st, err, sizeof err);
    if (s != MODA_OK) fail_msg("write %s: %s", name, err);
}

/* A fresh registry directory for each case. */
static void new_root(char *buf, size_t len) {
    snprintf(buf, len, "%s/reg%d", root, n_roots++);
}

/* ---- file surgery helpers ------------------------------------------------ */

static void path3(char *buf, size_t len, const char *a, const char *b, const char *c) {
    if (c) snprintf(buf, len, "%s/%s/%s", a, b, c);
    else snprintf(buf, len, "%s/%s", a, b);
}

static json_t *load_json(const char *path) {
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) fail_msg("%s: %s", path, jerr.text);
    return j;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    char err[512];
    if (fileio_write_atomic(path, data, len, err, sizeof err) != MODA_OK) fail_msg("%s", err);
}

static void set_index_sha(const char *reg, const char *name, const char *sha) {
    char p[512];
    path3(p, sizeof p, reg, "index.json", NULL);
    json_t *idx = load_json(p);
    json_t *models = json_object_get(idx, "models");
    for (size_t i = 0; i < json_array_size(models); i++) {
        json_t *m = json_array_get(models, i);
        if (!strcmp(json_string_value(json_object_get(m, "name")), name))
            json_object_set_new(m, "sha256", json_string(sha));
    }
    assert_int_equal(json_dump_file(idx, p, JSON_INDENT(1)), 0);
    json_decref(idx);
}

/* Replace a model's manifest and keep the index consistent with it, so
 * only the change under test is wrong. */
static void put_manifest(const char *reg, const char *name, json_t *manifest) {
    char p[512], hex[SHA256_HEX_LEN], err[512];
    path3(p, sizeof p, reg, name, "manifest.json");
    char *text = json_dumps(manifest, JSON_INDENT(1));
    write_bytes(p, text, strlen(text));
    assert_int_equal(sha256_file(p, hex, err, sizeof err), MODA_OK);
    set_index_sha(reg, name, hex);
    free(text);
}

static json_t *get_manifest(const char *reg, const char *name) {
    char p[512];
    path3(p, sizeof p, reg, name, "manifest.json");
    return load_json(p);
}

/* Make the manifest's record of file `key` ("weights"/"rates") match the
 * file as it now is. */
static void refresh_file(const char *reg, const char *name, const char *key, const char *file) {
    char p[512], hex[SHA256_HEX_LEN], err[512];
    path3(p, sizeof p, reg, name, file);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(sha256_file(p, hex, err, sizeof err), MODA_OK);
    json_t *m = get_manifest(reg, name);
    json_t *f = json_object_get(json_object_get(m, "files"), key);
    json_object_set_new(f, "sha256", json_string(hex));
    json_object_set_new(f, "bytes", json_integer(st.st_size));
    put_manifest(reg, name, m);
    json_decref(m);
}

static void truncate_file(const char *reg, const char *name, const char *file) {
    char p[512], err[512];
    path3(p, sizeof p, reg, name, file);
    uint8_t *data;
    size_t len;
    assert_int_equal(fileio_read_all(p, 1 << 28, &data, &len, err, sizeof err), MODA_OK);
    write_bytes(p, data, len / 2);
    free(data);
}

/* Compress a safetensors image into the model's file `file`. */
static void put_tensor_file(const char *reg, const char *name, const char *file, const safetensors_entry *e, int n,
                            const safetensors_kv *meta, int n_meta) {
    char p[512], err[512];
    path3(p, sizeof p, reg, name, file);
    uint8_t *raw;
    size_t len;
    assert_int_equal(safetensors_serialize(e, n, meta, n_meta, &raw, &len, err, sizeof err), MODA_OK);
    assert_int_equal(zstdio_write_file(p, raw, len, 0, err, sizeof err), MODA_OK);
    free(raw);
}

/* Load must fail with `want` and a message containing both needles. */
static void expect_load_error(const char *reg, const char *name, moda_status want, const char *n1, const char *n2) {
    char err[1024] = "";
    registry *r = NULL;
    moda_status s = registry_open(reg, NULL, &r, err, sizeof err);
    if (s == MODA_OK) {
        registry_model m;
        s = registry_load_model(r, name, be, &m, err, sizeof err);
        if (s == MODA_OK) registry_model_free(&m);
        assert_null(m.g); /* failure leaves nothing behind */
        registry_close(r);
    }
    if (s != want || !strstr(err, n1) || (n2 && !strstr(err, n2)))
        fail_msg("expected %s with \"%s\" and \"%s\", got %s: %s", moda_status_string(want), n1, n2 ? n2 : "",
                 moda_status_string(s), err);
}

/* A registry with one freshly written LeNet model "m". */
static void fresh(char *reg, size_t len, fixture *f) {
    new_root(reg, len);
    write_model(reg, "m", f, 0.75);
}

/* ---- tests ----------------------------------------------------------------- */

static void assert_same_model(const fixture *f, const registry_model *m, double acc) {
    assert_non_null(m->g);
    assert_int_equal(m->g->n_params, f->g->n_params);
    for (int i = 0; i < f->g->n_params; i++) {
        assert_string_equal(m->g->params[i].name, f->g->params[i].name);
        assert_memory_equal(m->g->params[i].data, f->g->params[i].data,
                            graph_param_numel(&f->g->params[i]) * sizeof(float));
    }
    const model_config *a = &m->info.model, *b = &f->mi.model;
    assert_int_equal(a->arch, b->arch);
    assert_true(a->width == b->width);
    assert_int_equal(a->in_channels, b->in_channels);
    assert_int_equal(a->num_classes, b->num_classes);
    assert_int_equal(a->input_size, b->input_size);
    assert_string_equal(m->info.dataset, f->mi.dataset);
    assert_int_equal(m->info.pad, f->mi.pad);
    for (int c = 0; c < b->in_channels; c++) {
        assert_true(m->info.mean[c] == f->mi.mean[c]);
        assert_true(m->info.std[c] == f->mi.std[c]);
    }
    for (int k = 0; k < b->num_classes; k++) assert_string_equal(m->info.class_names[k], f->mi.class_names[k]);
    assert_true(fabs(m->test_acc - acc) < 1e-12);

    assert_int_equal(m->r.n_layers, f->r.n_layers);
    for (int l = 0; l < f->r.n_layers; l++) {
        assert_int_equal(m->r.node[l], f->r.node[l]);
        assert_memory_equal(m->r.rate[l], f->r.rate[l], (size_t)b->num_classes * f->r.units[l] * sizeof(float));
    }
    assert_memory_equal(m->r.class_count, f->r.class_count, (size_t)b->num_classes * sizeof(int));

    const module_stats *x = &m->stats, *y = &f->st;
    assert_true(x->tau == y->tau);
    assert_true(fabs(x->mean_size - y->mean_size) < 1e-12);
    assert_true(fabs(x->mean_overlap - y->mean_overlap) < 1e-12);
    for (int i = 0; i < b->num_classes * b->num_classes; i++) assert_true(fabs(x->overlap[i] - y->overlap[i]) < 1e-12);
    assert_int_equal(x->n_layers, y->n_layers);
    for (int l = 0; l < y->n_layers; l++) {
        assert_int_equal(x->layer_node[l], y->layer_node[l]);
        assert_true(fabs(x->layer_overlap[l] - y->layer_overlap[l]) < 1e-12);
    }
}

static void round_trip(fixture *f) {
    char reg[300], err[1024] = "";
    new_root(reg, sizeof reg);
    write_model(reg, "model-1", f, 0.9125);

    registry *r = NULL;
    if (registry_open(reg, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(registry_count(r), 1);
    assert_string_equal(registry_name(r, 0), "model-1");
    assert_null(registry_name(r, 1));
    assert_int_equal(registry_find(r, "model-1"), 0);
    assert_int_equal(registry_find(r, "other"), -1);

    registry_model m;
    if (registry_load_model(r, "model-1", f->be, &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_same_model(f, &m, 0.9125);
    /* The loaded model runs. */
    assert_int_equal(graph_plan(m.g, 2), MODA_OK);
    registry_model_free(&m);
    assert_null(m.g);
    registry_model_free(NULL);

    /* Manifest only: no graph, no rates. */
    if (registry_read_manifest(r, "model-1", &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_null(m.g);
    assert_int_equal(m.r.n_layers, 0);
    assert_int_equal(m.info.model.num_classes, f->mi.model.num_classes);
    assert_non_null(strstr(m.manifest_json, "\"alpha\": 1"));
    assert_non_null(strstr(m.manifest_json, "\"gamma\": 0.3,")); /* floats stored short */
    registry_model_free(&m);
    registry_close(r);
    registry_close(NULL);
}

static void test_round_trip_lenet(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    round_trip(&f);
    fixture_free(&f);
}

/* BN running statistics and residual graphs. */
static void test_round_trip_resnet(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, MODEL_RESNET18, 0.0625f, 3, 3, 8, 7);
    round_trip(&f);
    fixture_free(&f);
}

/* The weights file is plain safetensors inside one zstd frame. */
static void test_weights_file_is_safetensors(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], p[400], err[1024];
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", "weights.safetensors.zst");
    uint8_t *raw;
    size_t len;
    assert_int_equal(zstdio_read_file(p, 1 << 26, &raw, &len, err, sizeof err), MODA_OK);
    safetensors_file *st;
    if (safetensors_parse_owned(raw, len, p, &st, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(safetensors_count(st), f.g->n_params);
    for (int i = 0; i < f.g->n_params; i++) {
        const graph_param *gp = &f.g->params[i];
        float *buf = tu_alloc(graph_param_numel(gp));
        assert_int_equal(safetensors_read_f32(st, gp->name, gp->ndim, gp->shape, buf, graph_param_numel(gp), err,
                                              sizeof err),
                         MODA_OK);
        assert_memory_equal(buf, gp->data, graph_param_numel(gp) * sizeof(float));
        free(buf);
    }
    assert_string_equal(safetensors_meta_get(st, "format"), "pt");
    safetensors_free(st);

    path3(p, sizeof p, reg, "m", "rates.safetensors.zst");
    assert_int_equal(zstdio_read_file(p, 1 << 26, &raw, &len, err, sizeof err), MODA_OK);
    if (safetensors_parse_owned(raw, len, p, &st, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(safetensors_count(st), f.r.n_layers + 1);
    const safetensors_tensor *t = safetensors_find(st, "rates.0");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(t->shape[1], f.r.units[0]);
    assert_non_null(safetensors_find(st, "class_count"));
    assert_string_equal(safetensors_meta_get(st, "num_classes"), "4");
    assert_non_null(safetensors_meta_get(st, "layers"));
    safetensors_free(st);
    fixture_free(&f);
}

static void test_index_updates(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], err[1024];
    new_root(reg, sizeof reg);
    write_model(reg, "a", &f, 0.5);
    write_model(reg, "b", &f, 0.6);
    write_model(reg, "a", &f, 0.7); /* replaces in place */

    registry *r;
    if (registry_open(reg, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(registry_count(r), 2);
    assert_string_equal(registry_name(r, 0), "a");
    assert_string_equal(registry_name(r, 1), "b");
    registry_model m;
    if (registry_load_model(r, "a", f.be, &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_true(fabs(m.test_acc - 0.7) < 1e-12);
    registry_model_free(&m);
    if (registry_read_manifest(r, "b", &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_true(fabs(m.test_acc - 0.6) < 1e-12);
    registry_model_free(&m);
    assert_int_equal(registry_load_model(r, "c", f.be, &m, err, sizeof err), MODA_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "index.json"));
    assert_non_null(strstr(err, "\"c\""));
    registry_close(r);

    /* A damaged index is left alone, not replaced by one that forgets. */
    char p[400];
    path3(p, sizeof p, reg, "index.json", NULL);
    write_bytes(p, "{\"format\":1,\"models\":[", 22);
    err[0] = '\0';
    assert_int_equal(registry_write_model(reg, "c", f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "index.json"));
    uint8_t *data;
    size_t len;
    assert_int_equal(fileio_read_all(p, 1024, &data, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, 22);
    free(data);
    fixture_free(&f);
}

static void test_bad_names(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], err[1024];
    new_root(reg, sizeof reg);
    const char *bad[] = {"", ".", "..", "../x", "a/b", "x y", ".hidden", "index.json", "caf\xc3\xa9",
                         "0123456789012345678901234567890123456789012345678901234567890123x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(registry_name_valid(bad[i]));
        err[0] = '\0';
        assert_int_equal(registry_write_model(reg, bad[i], f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                         MODA_ERR_ARG);
        assert_non_null(strstr(err, "invalid model name"));
    }
    assert_false(registry_name_valid(NULL));
    const char *good[] = {"a", "VGG16_w0.5-moda", "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) assert_true(registry_name_valid(good[i]));
    /* Nothing was written for the bad names. */
    struct stat st;
    assert_int_not_equal(stat(reg, &st), 0);

    /* An index entry with an unsafe name or manifest path is rejected. */
    char p[400];
    assert_int_equal(fileio_mkdir_p(reg, err, sizeof err), MODA_OK);
    path3(p, sizeof p, reg, "index.json", NULL);
    const char *idx1 = "{\"format\":1,\"models\":[{\"name\":\"..\",\"manifest\":\"../manifest.json\",\"sha256\":"
                       "\"0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    write_bytes(p, idx1, strlen(idx1));
    expect_load_error(reg, "..", MODA_ERR_FORMAT, "index.json", "invalid model name");
    const char *idx2 = "{\"format\":1,\"models\":[{\"name\":\"m\",\"manifest\":\"../m/manifest.json\",\"sha256\":"
                       "\"0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    write_bytes(p, idx2, strlen(idx2));
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "index.json", "models[0].manifest");
    fixture_free(&f);
}

static void test_index_errors(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], p[400];
    new_root(reg, sizeof reg);
    expect_load_error(reg, "m", MODA_ERR_NOT_FOUND, "index.json", "no such file");
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "index.json", NULL);
    write_bytes(p, "not json", 8);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "index.json", "not valid JSON");
    write_bytes(p, "{\"models\":[]}", 13);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "index.json", "missing key \"format\"");
    write_bytes(p, "{\"format\":1,\"models\":{}}", 24);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "index.json", "wrong type for \"models\"");
    write_bytes(p, "{\"format\":2,\"models\":[]}", 24);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "index.json", "unsupported format 2");
    fixture_free(&f);
}

static void test_manifest_errors(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], p[400];

    /* The manifest changed behind the index's back. */
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", "manifest.json");
    FILE *fp = fopen(p, "a");
    fputs(" ", fp);
    fclose(fp);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", "sha256 mismatch");

    struct {
        const char *path[3]; /* keys to the object to change, then the key */
        json_t *(*value)(void); /* NULL: delete the key */
        const char *needle;
    } cases[] = {
        {{"classes", NULL, NULL}, NULL, "missing key \"classes\""},
        {{"architecture", "width", NULL}, NULL, "missing key \"architecture.width\""},
        {{"files", "rates", "sha256"}, NULL, "missing key \"files.rates.sha256\""},
        {{"modules", "mean_overlap", NULL}, NULL, "missing key \"modules.mean_overlap\""},
        {{"training", NULL, NULL}, NULL, "missing key \"training\""},
        {{"input", "mean", NULL}, NULL, "missing key \"input.mean\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fresh(reg, sizeof reg, &f);
        json_t *m = get_manifest(reg, "m"), *o = m;
        int d = 0;
        while (d < 2 && cases[i].path[d + 1]) o = json_object_get(o, cases[i].path[d++]);
        assert_int_equal(json_object_del(o, cases[i].path[d]), 0);
        put_manifest(reg, "m", m);
        json_decref(m);
        expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", cases[i].needle);
    }

    /* Wrong JSON types and bad values. */
    struct {
        const char *obj, *key;
        const char *json; /* the new value */
        const char *needle;
    } types[] = {
        {"architecture", "num_classes", "\"4\"", "wrong type for \"architecture.num_classes\": expected an integer"},
        {"architecture", "arch", "\"alexnet\"", "unknown architecture \"alexnet\""},
        {"architecture", "arch", "7", "wrong type for \"architecture.arch\""},
        {"architecture", "input_size", "15", "invalid architecture"},
        {NULL, "classes", "[\"a\",\"b\",\"c\"]", "\"classes\" has 3 elements, expected 4"},
        {NULL, "classes", "[\"a\",\"b\",\"c\",4]", "wrong type for \"classes[3]\""},
        {NULL, "format", "2", "unsupported format 2"},
        {NULL, "name", "\"other\"", "index lists it as \"m\""},
        {"metrics", "test_accuracy", "1.5", "\"metrics.test_accuracy\" is 1.5"},
        {"input", "std", "[0]", "\"input.std[0]\" is 0"},
        {"input", "channels", "3", "\"input.channels\" is 3"},
        {"modules", "overlap", "[[0,0,0,0]]", "\"modules.overlap\" has 1 elements"},
        {"modules", "size", "[0.1,0.1,\"x\",0.1]", "wrong type for \"modules.size[2]\""},
        {"training", "alpha", "\"one\"", "wrong type for \"training.alpha\""},
        {"files", "weights", "{\"path\":\"../../etc/passwd\",\"sha256\":"
                             "\"0000000000000000000000000000000000000000000000000000000000000000\",\"bytes\":1}",
         "not a plain file name"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        fresh(reg, sizeof reg, &f);
        json_t *m = get_manifest(reg, "m");
        json_t *o = types[i].obj ? json_object_get(m, types[i].obj) : m;
        json_object_set_new(o, types[i].key, json_loads(types[i].json, JSON_DECODE_ANY, NULL));
        put_manifest(reg, "m", m);
        json_decref(m);
        expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", types[i].needle);
    }

    /* Not JSON at all. */
    fresh(reg, sizeof reg, &f);
    {
        char hex[SHA256_HEX_LEN];
        path3(p, sizeof p, reg, "m", "manifest.json");
        write_bytes(p, "[1,2", 4);
        sha256_hex("[1,2", 4, hex);
        set_index_sha(reg, "m", hex);
        expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", "not valid JSON");
    }

    /* A graph that does not match the architecture fields. */
    fresh(reg, sizeof reg, &f);
    json_t *m = get_manifest(reg, "m");
    json_t *node = json_array_get(json_object_get(json_object_get(m, "architecture"), "graph"), 1);
    json_object_set_new(node, "shape", json_loads("[7,16,16]", 0, NULL));
    put_manifest(reg, "m", m);
    json_decref(m);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", "\"architecture.graph[1].shape\" does not match");
    fresh(reg, sizeof reg, &f);
    m = get_manifest(reg, "m");
    json_t *graph = json_object_get(json_object_get(m, "architecture"), "graph");
    json_array_append_new(graph, json_deep_copy(json_array_get(graph, 1)));
    put_manifest(reg, "m", m);
    json_decref(m);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", "\"architecture.graph\" has");
    /* A different width rebuilds a different model. */
    fresh(reg, sizeof reg, &f);
    m = get_manifest(reg, "m");
    json_object_set_new(json_object_get(m, "architecture"), "width", json_real(0.5));
    put_manifest(reg, "m", m);
    json_decref(m);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/manifest.json", "model built from the architecture fields");
    fixture_free(&f);
}

static void test_file_errors(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], p[400];
    const char *W = "weights.safetensors.zst", *R = "rates.safetensors.zst";

    /* Truncated: the size no longer matches the manifest. */
    fresh(reg, sizeof reg, &f);
    truncate_file(reg, "m", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "truncated");
    fresh(reg, sizeof reg, &f);
    truncate_file(reg, "m", R);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "truncated");

    /* Truncated with a manifest that agrees: decompression catches it. */
    fresh(reg, sizeof reg, &f);
    truncate_file(reg, "m", W);
    refresh_file(reg, "m", "weights", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "zstd");
    fresh(reg, sizeof reg, &f);
    truncate_file(reg, "m", R);
    refresh_file(reg, "m", "rates", R);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "zstd");

    /* Not zstd at all. */
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", W);
    write_bytes(p, "garbage, not a zstd frame", 25);
    refresh_file(reg, "m", "weights", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "not a zstd frame");

    /* Same size, one byte flipped: the hash catches it. */
    fresh(reg, sizeof reg, &f);
    {
        char err[512];
        uint8_t *data;
        size_t len;
        path3(p, sizeof p, reg, "m", R);
        assert_int_equal(fileio_read_all(p, 1 << 26, &data, &len, err, sizeof err), MODA_OK);
        data[len / 2] ^= 0x40;
        write_bytes(p, data, len);
        free(data);
    }
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "sha256 mismatch");

    /* Wrong hash recorded in the manifest. */
    fresh(reg, sizeof reg, &f);
    json_t *m = get_manifest(reg, "m");
    json_object_set_new(json_object_get(json_object_get(m, "files"), "weights"), "sha256",
                        json_string("00000000000000000000000000000000000000000000000000000000000000ff"));
    put_manifest(reg, "m", m);
    json_decref(m);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "sha256 mismatch");

    /* Missing files. */
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", W);
    assert_int_equal(unlink(p), 0);
    expect_load_error(reg, "m", MODA_ERR_IO, "m/weights.safetensors.zst", "missing");
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", R);
    assert_int_equal(unlink(p), 0);
    expect_load_error(reg, "m", MODA_ERR_IO, "m/rates.safetensors.zst", "missing");
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", "manifest.json");
    assert_int_equal(unlink(p), 0);
    expect_load_error(reg, "m", MODA_ERR_IO, "m/manifest.json", "cannot open");
    fixture_free(&f);
}

/* Well-formed files whose tensors do not fit the model. */
static void test_tensor_shape_errors(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300];
    const char *W = "weights.safetensors.zst", *R = "rates.safetensors.zst";
    graph *g = f.g;
    safetensors_entry *e = calloc((size_t)g->n_params + 1, sizeof(*e));
    for (int i = 0; i < g->n_params; i++)
        e[i] = (safetensors_entry){.name = g->params[i].name, .ndim = g->params[i].ndim, .shape = g->params[i].shape,
                                   .data = g->params[i].data};

    /* fc1.weight transposed. */
    int fc1 = graph_find_param(g, "fc1.weight");
    assert_true(fc1 >= 0);
    int swapped[2] = {g->params[fc1].shape[1], g->params[fc1].shape[0]};
    fresh(reg, sizeof reg, &f);
    e[fc1].shape = swapped;
    put_tensor_file(reg, "m", W, e, g->n_params, NULL, 0);
    e[fc1].shape = g->params[fc1].shape;
    refresh_file(reg, "m", "weights", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "\"fc1.weight\" has shape");

    /* A parameter missing, and an extra tensor. */
    fresh(reg, sizeof reg, &f);
    put_tensor_file(reg, "m", W, e, g->n_params - 1, NULL, 0);
    refresh_file(reg, "m", "weights", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", g->params[g->n_params - 1].name);
    fresh(reg, sizeof reg, &f);
    e[g->n_params] = (safetensors_entry){.name = "extra", .ndim = 1, .shape = g->params[0].shape,
                                         .data = g->params[0].data};
    put_tensor_file(reg, "m", W, e, g->n_params + 1, NULL, 0);
    refresh_file(reg, "m", "weights", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "unexpected tensor \"extra\"");

    /* A NaN weight. */
    fresh(reg, sizeof reg, &f);
    float saved = g->params[0].data[3];
    g->params[0].data[3] = NAN;
    put_tensor_file(reg, "m", W, e, g->n_params, NULL, 0);
    g->params[0].data[3] = saved;
    refresh_file(reg, "m", "weights", W);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/weights.safetensors.zst", "non-finite");
    free(e);

    /* Rates: a layer with one unit too few, then a wrong layer list. */
    int L = f.r.n_layers, K = 4;
    safetensors_entry *re = calloc((size_t)L + 1, sizeof(*re));
    int (*shapes)[2] = calloc((size_t)L, sizeof(*shapes));
    char (*names)[24] = calloc((size_t)L, sizeof(*names));
    float counts[4];
    for (int c = 0; c < K; c++) counts[c] = (float)f.r.class_count[c];
    for (int l = 0; l < L; l++) {
        snprintf(names[l], sizeof names[l], "rates.%d", l);
        shapes[l][0] = K;
        shapes[l][1] = f.r.units[l];
        re[l] = (safetensors_entry){.name = names[l], .ndim = 2, .shape = shapes[l], .data = f.r.rate[l]};
    }
    re[L] = (safetensors_entry){.name = "class_count", .ndim = 1, .shape = &K, .data = counts};
    char layers[256] = "[";
    for (int l = 0; l < L; l++)
        snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%d", l ? "," : "", f.r.node[l]);
    strcat(layers, "]");
    safetensors_kv meta[2] = {{"num_classes", "4"}, {"layers", layers}};

    fresh(reg, sizeof reg, &f);
    shapes[1][1]--;
    put_tensor_file(reg, "m", R, re, L + 1, meta, 2);
    shapes[1][1]++;
    refresh_file(reg, "m", "rates", R);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "\"rates.1\" has shape");

    fresh(reg, sizeof reg, &f);
    safetensors_kv bad_meta[2] = {{"num_classes", "4"}, {"layers", "[1,2]"}};
    put_tensor_file(reg, "m", R, re, L + 1, bad_meta, 2);
    refresh_file(reg, "m", "rates", R);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "\"layers\"");

    fresh(reg, sizeof reg, &f);
    put_tensor_file(reg, "m", R, re, L, meta, 2); /* no class_count */
    refresh_file(reg, "m", "rates", R);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "class_count");

    fresh(reg, sizeof reg, &f);
    float keep = f.r.rate[0][0];
    f.r.rate[0][0] = 1.5f;
    put_tensor_file(reg, "m", R, re, L + 1, meta, 2);
    f.r.rate[0][0] = keep;
    refresh_file(reg, "m", "rates", R);
    expect_load_error(reg, "m", MODA_ERR_FORMAT, "m/rates.safetensors.zst", "outside [0, 1]");
    free(re);
    free(shapes);
    free(names);
    fixture_free(&f);
}

/* Random damage to a manifest that the index vouches for: every load
 * either succeeds or fails with a message; none crashes. */
static void test_manifest_mutations(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], p[400], idx[400], err[1024];
    fresh(reg, sizeof reg, &f);
    path3(p, sizeof p, reg, "m", "manifest.json");
    path3(idx, sizeof idx, reg, "index.json", NULL);
    uint8_t *orig;
    size_t len;
    assert_int_equal(fileio_read_all(p, 1 << 24, &orig, &len, err, sizeof err), MODA_OK);
    uint8_t *buf = malloc(len);
    const char pick[] = "\"{}[],:09-.e x\\";
    rng rg;
    rng_seed(&rg, 99, 0);
    registry *r = NULL;
    int failed = 0;
    for (int it = 0; it < 200; it++) {
        memcpy(buf, orig, len);
        for (int k = 0; k < 1 + (int)rng_below(&rg, 3); k++)
            buf[rng_below(&rg, (uint32_t)len)] = (uint8_t)pick[rng_below(&rg, sizeof pick - 1)];
        write_bytes(p, buf, len);
        char hex[SHA256_HEX_LEN], text[300];
        sha256_hex(buf, len, hex);
        int n = snprintf(text, sizeof text,
                         "{\"format\":1,\"models\":[{\"name\":\"m\",\"manifest\":\"m/manifest.json\","
                         "\"sha256\":\"%s\"}]}",
                         hex);
        write_bytes(idx, text, (size_t)n);
        assert_int_equal(registry_open(reg, NULL, &r, err, sizeof err), MODA_OK);
        registry_model m;
        err[0] = '\0';
        moda_status s = registry_load_model(r, "m", f.be, &m, err, sizeof err);
        if (s == MODA_OK) registry_model_free(&m);
        else {
            failed++;
            assert_true(strlen(err) > 0);
            assert_non_null(strstr(err, reg));
        }
        registry_close(r);
    }
    assert_true(failed > 100);
    free(buf);
    free(orig);
    fixture_free(&f);
}

/* Writers in several processes take turns: no index entry is lost. */
static void test_concurrent_writers(void **state) {
    (void)state;
    fixture f;
    fixture_lenet(&f);
    char reg[300], err[1024];
    new_root(reg, sizeof reg);
    enum { PROCS = 3, EACH = 4 };
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            int bad = 0;
            for (int j = 0; j < EACH; j++) {
                char name[32];
                snprintf(name, sizeof name, "p%d-%d", i, j);
                bad |= registry_write_model(reg, name, f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err) != MODA_OK;
            }
            _exit(bad);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    registry *r;
    if (registry_open(reg, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(registry_count(r), PROCS * EACH);
    registry_close(r);
    fixture_free(&f);
}

/* The writer checks its inputs before touching the disk. */
static void test_write_argument_errors(void **state) {
    (void)state;
    fixture f, other;
    fixture_lenet(&f);
    fixture_make(&other, MODEL_LENET5, 0.5f, 1, 4, 16, 3);
    char reg[300], err[1024];
    new_root(reg, sizeof reg);
    /* Rates of another model. */
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, NULL, 0.5, &other.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "rates layer"));
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, NULL, 1.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, "[1]", 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_int_equal(registry_write_model(reg, "m", other.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_int_equal(registry_write_model(NULL, "m", f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_NULL);
    /* What a reader would reject is not written. */
    f.g->params[1].data[0] = INFINITY;
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "non-finite"));
    f.g->params[1].data[0] = 0.0f;
    f.r.rate[1][2] = -0.5f;
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "outside [0, 1]"));
    f.r.rate[1][2] = 0.0f;
    char *name1 = f.mi.class_names[1];
    f.mi.class_names[1] = "\xff";
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "UTF-8"));
    f.mi.class_names[1] = name1;
    f.st.overlap[1] = 2.0;
    assert_int_equal(registry_write_model(reg, "m", f.g, &f.mi, NULL, 0.5, &f.r, &f.st, err, sizeof err),
                     MODA_ERR_ARG);
    assert_non_null(strstr(err, "module stats"));
    struct stat st;
    assert_int_not_equal(stat(reg, &st), 0);
    fixture_free(&other);
    fixture_free(&f);
}

/* ---- the CLI on a tiny trained model --------------------------------------- */

static int run_cmd(int (*cmd)(int, char **), const char **args) {
    char *argv[16];
    int argc = 0;
    while (args[argc]) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    fflush(stdout);
    return cmd(argc, argv);
}

static void test_cli_decompose_inspect(void **state) {
    (void)state;
    char data[300], names[340], run[300], ckpt[340], reg[300], err[1024];
    snprintf(data, sizeof data, "%s/data", root);
    mkdir(data, 0755);
    synth_write_idx(data, "train", 128, 1);
    synth_write_idx(data, "t10k", 32, 2);
    snprintf(names, sizeof names, "%s/names.txt", data);
    FILE *fn = fopen(names, "w");
    fputs("h-stripes\nv-stripes\nfine\ncoarse\n", fn);
    fclose(fn);

    snprintf(run, sizeof run, "%s/lenet-moda", root);
    train_options o = train_options_default();
    o.arch = "lenet5";
    o.dataset = "idx";
    o.data_dir = data;
    o.names = names;
    o.input_size = 16;
    o.epochs = 1;
    o.batch_size = 32;
    o.seed = 3;
    o.alpha = o.beta = 1.0f;
    o.gamma = 0.3f;
    o.out_dir = run;
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", run);
    new_root(reg, sizeof reg);

    /* Small batches: the stored rates must not depend on the batch size. */
    const char *dec[] = {"moda", "decompose", "--checkpoint", ckpt, "--out", reg, "--batch-size", "16", NULL};
    assert_int_equal(run_cmd(cmd_decompose, dec), 0);

    registry *r;
    if (registry_open(reg, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(registry_count(r), 1);
    assert_string_equal(registry_name(r, 0), "lenet-moda"); /* the run directory's name */
    registry_model m;
    if (registry_load_model(r, "lenet-moda", be, &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_string_equal(m.info.class_names[2], "fine");
    assert_true(fabs(m.stats.tau - 0.9f) < 1e-7);
    for (int c = 0; c < 4; c++) assert_int_equal(m.r.class_count[c], 32);
    assert_non_null(strstr(m.manifest_json, "\"epochs_done\": 1"));

    /* A pass in batches of 64 gives the same rates as the batches of 16. */
    checkpoint ck;
    if (checkpoint_open(ckpt, be, &ck, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    dataset train = {0};
    assert_int_equal(data_load_split(&train, "idx", data, &(dataset_load_options){.names_path = names, .image_size = 16},
                                      DATASET_TRAIN, 0, &ck.info, NULL, err, sizeof err),
                     MODA_OK);
    assert_int_equal(graph_plan(ck.g, 64), MODA_OK);
    rates whole;
    assert_int_equal(rates_alloc(&whole, ck.g, 4), MODA_OK);
    assert_int_equal(decompose_rates(ck.g, &train, 64, &whole, NULL, NULL), MODA_OK);
    for (int l = 0; l < whole.n_layers; l++)
        assert_memory_equal(whole.rate[l], m.r.rate[l], 4 * (size_t)whole.units[l] * sizeof(float));
    rates_free(&whole);
    dataset_free(&train);
    checkpoint_close(&ck);
    registry_model_free(&m);
    registry_close(r);

    const char *list[] = {"moda", "inspect", reg, NULL};
    assert_int_equal(run_cmd(cmd_inspect, list), 0);
    const char *one[] = {"moda", "inspect", reg, "lenet-moda", "--tau", "0.5", NULL};
    assert_int_equal(run_cmd(cmd_inspect, one), 0);
    const char *named[] = {"moda", "decompose", "--checkpoint", ckpt, "--out", reg, "--name", "second", "--tau", "0.8",
                           NULL};
    assert_int_equal(run_cmd(cmd_decompose, named), 0);

    /* Usage and runtime errors. */
    const char *help[] = {"moda", "decompose", "--help", NULL};
    assert_int_equal(run_cmd(cmd_decompose, help), 0);
    const char *ihelp[] = {"moda", "inspect", "--help", NULL};
    assert_int_equal(run_cmd(cmd_inspect, ihelp), 0);
    const char *no_ckpt[] = {"moda", "decompose", "--out", reg, NULL};
    assert_int_equal(run_cmd(cmd_decompose, no_ckpt), 2);
    const char *bad_name[] = {"moda", "decompose", "--checkpoint", ckpt, "--out", reg, "--name", "../x", NULL};
    assert_int_equal(run_cmd(cmd_decompose, bad_name), 2);
    const char *bad_tau[] = {"moda", "inspect", reg, "--tau", "2", NULL};
    assert_int_equal(run_cmd(cmd_inspect, bad_tau), 2);
    const char *no_reg[] = {"moda", "inspect", NULL};
    assert_int_equal(run_cmd(cmd_inspect, no_reg), 2);
    const char *missing[] = {"moda", "decompose", "--checkpoint", "/nonexistent/ck.safetensors", "--out", reg, NULL};
    assert_int_equal(run_cmd(cmd_decompose, missing), 1);
    const char *no_model[] = {"moda", "inspect", reg, "nope", NULL};
    assert_int_equal(run_cmd(cmd_inspect, no_model), 1);
    const char *not_reg[] = {"moda", "inspect", data, NULL};
    assert_int_equal(run_cmd(cmd_inspect, not_reg), 1);
}

static int setup(void **state) {
    snprintf(root, sizeof root, "/tmp/moda-registry-XXXXXX");
    return tu_backend_setup_into(state, &be) == 0 && mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state) {
    tu_backend_teardown(state);
    return synth_remove_tree(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_lenet),
        cmocka_unit_test(test_round_trip_resnet),
        cmocka_unit_test(test_weights_file_is_safetensors),
        cmocka_unit_test(test_index_updates),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_index_errors),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_tensor_shape_errors),
        cmocka_unit_test(test_manifest_mutations),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_write_argument_errors),
        cmocka_unit_test(test_cli_decompose_inspect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
