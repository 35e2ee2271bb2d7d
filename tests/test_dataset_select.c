/* Class selections (dataset_select.h): resolving --classes/--mix-class,
 * relabelling, the mixed class's fraction and its seeded draw, the
 * refusals, the JSON record; and a model trained on a selection of the
 * synthetic IDX data, put in a registry, read back with the same subset
 * by eval-reuse, decompose, eval and replace. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cmd_eval.h"
#include "cmd_replace.h"
#include "cmd_reuse.h"
#include "dataset_select.h"
#include "model_data.h"
#include "registry.h"
#include "synthetic_idx.h"
#include "tiny_registry.h"
#include "train.h"

static char *const NAMES[4] = {"a", "b", "c", "d"};

/* n samples of 4 classes (labels cycling 0..3), each 1x1 image holding
 * its own index, so a sample can be traced through a selection. */
static void make_ds(dataset *ds, int n) {
    assert_int_equal(dataset_alloc(ds, n, 1, 1, 1, 4), MODA_OK);
    for (int i = 0; i < n; i++) {
        ds->labels[i] = i % 4;
        ds->images[i] = (float)i;
    }
    for (int k = 0; k < 4; k++) assert_int_equal(dataset_set_class_name(ds, k, NAMES[k]), MODA_OK);
}

static moda_status resolve(dataset_selection *sel, const char *classes, const char *mix, float f, bool given,
                           uint64_t seed, char *err, size_t len) {
    err[0] = '\0';
    return dataset_selection_resolve(sel, classes, mix, f, given, seed, NAMES, 4, err, len);
}

/* Names and indices in the order given, the mixed class last. */
static void test_resolve(void **state) {
    (void)state;
    dataset_selection sel;
    char err[512];
    assert_int_equal(resolve(&sel, "d,1", "A", 0.5f, true, 7, err, sizeof err), MODA_OK);
    assert_true(sel.present);
    assert_int_equal(sel.n, 2);
    assert_int_equal(sel.classes[0], 3);
    assert_int_equal(sel.classes[1], 1);
    assert_int_equal(sel.mix, 0);
    assert_true(sel.mix_fraction == 0.5f);
    assert_int_equal(sel.seed, 7);
    assert_int_equal(dataset_selection_classes(&sel), 3);
    /* No --classes: no selection. */
    assert_int_equal(resolve(&sel, NULL, NULL, 0.1f, false, 0, err, sizeof err), MODA_OK);
    assert_false(sel.present);
    assert_int_equal(dataset_selection_classes(&sel), 0);
}

static void expect_refused(const char *classes, const char *mix, float f, bool given, const char *needle) {
    dataset_selection sel;
    char err[512];
    assert_int_equal(resolve(&sel, classes, mix, f, given, 0, err, sizeof err), MODA_ERR_ARG);
    if (!strstr(err, needle)) fail_msg("'%s' lacks '%s'", err, needle);
    assert_false(sel.present);
}

static void test_refusals(void **state) {
    (void)state;
    expect_refused("a,e", NULL, 0.1f, false, "unknown class \"e\"");
    expect_refused("a,9", NULL, 0.1f, false, "class index 9 is out of range");
    expect_refused("a,b,a", NULL, 0.1f, false, "lists class 0 \"a\" twice");
    expect_refused("1,b", NULL, 0.1f, false, "lists class 1 \"b\" twice"); /* a name and its index */
    expect_refused("a,,b", NULL, 0.1f, false, "an empty item");
    expect_refused("", NULL, 0.1f, false, "an empty item");
    expect_refused("a,b", "b", 0.1f, false, "is also in --classes");
    expect_refused("a,b", "x", 0.1f, false, "--mix-class: unknown class \"x\"");
    expect_refused("a,b", "c", 0.0f, true, "must be in (0, 1]");
    expect_refused("a,b", "c", 1.5f, true, "must be in (0, 1]");
    expect_refused("a,b", "c", -0.1f, true, "must be in (0, 1]");
    expect_refused("a,b", "c", NAN, true, "must be in (0, 1]");
    expect_refused(NULL, "c", 0.1f, false, "need --classes");
    expect_refused(NULL, NULL, 0.5f, true, "need --classes");
    expect_refused("a,b", NULL, 0.5f, true, "--mix-fraction needs --mix-class");
}

/* Indices (images) of class y's samples of a selected dataset. */
static int samples_of(const dataset *ds, int y, int *out) {
    int m = 0;
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] == y) out[m++] = (int)ds->images[i];
    return m;
}

/* Training split: listed classes whole and relabelled, the mixed class
 * cut to round(f * m), all in dataset order; the test split keeps it all. */
static void test_select_train_and_test(void **state) {
    (void)state;
    dataset_selection sel;
    char err[512];
    assert_int_equal(resolve(&sel, "d,b", "a", 0.3f, true, 5, err, sizeof err), MODA_OK);
    dataset ds;
    make_ds(&ds, 80); /* 20 per class */
    assert_int_equal(dataset_select(&ds, &sel, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(ds.num_classes, 3);
    assert_string_equal(ds.class_names[0], "d");
    assert_string_equal(ds.class_names[1], "b");
    assert_string_equal(ds.class_names[2], "a");
    assert_int_equal(ds.n, 20 + 20 + 6);
    int idx[80];
    assert_int_equal(samples_of(&ds, 0, idx), 20);
    for (int j = 0; j < 20; j++) assert_int_equal(idx[j], 4 * j + 3); /* class d, in order */
    assert_int_equal(samples_of(&ds, 1, idx), 20);
    for (int j = 0; j < 20; j++) assert_int_equal(idx[j], 4 * j + 1);
    int m = samples_of(&ds, 2, idx);
    assert_int_equal(m, 6);
    for (int j = 0; j < m; j++) {
        assert_int_equal(idx[j] % 4, 0); /* images of class a only */
        if (j) assert_true(idx[j] > idx[j - 1]);
    }
    for (int i = 1; i < ds.n; i++) assert_true(ds.images[i] > ds.images[i - 1]); /* dataset order kept */
    dataset_free(&ds);

    make_ds(&ds, 80);
    assert_int_equal(dataset_select(&ds, &sel, DATASET_TEST, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 60);
    assert_int_equal(samples_of(&ds, 2, idx), 20);
    dataset_free(&ds);
}

/* The mixed class's draw depends on the seed and the class only: the same
 * for any list of other classes, another with another seed. */
static void test_draw_determinism(void **state) {
    (void)state;
    dataset_selection s1, s2, s3;
    char err[512];
    assert_int_equal(resolve(&s1, "d,b", "a", 0.25f, true, 11, err, sizeof err), MODA_OK);
    assert_int_equal(resolve(&s2, "c", "a", 0.25f, true, 11, err, sizeof err), MODA_OK);
    assert_int_equal(resolve(&s3, "d,b", "a", 0.25f, true, 12, err, sizeof err), MODA_OK);
    const dataset_selection *sels[3] = {&s1, &s2, &s3};
    int drawn[3][400], m[3];
    for (int i = 0; i < 3; i++) {
        dataset ds;
        make_ds(&ds, 1600); /* 400 per class, 100 of a's kept */
        assert_int_equal(dataset_select(&ds, sels[i], DATASET_TRAIN, err, sizeof err), MODA_OK);
        m[i] = samples_of(&ds, dataset_selection_classes(sels[i]) - 1, drawn[i]);
        dataset_free(&ds);
    }
    assert_int_equal(m[0], 100);
    assert_int_equal(m[1], 100);
    assert_int_equal(m[2], 100);
    assert_memory_equal(drawn[0], drawn[1], sizeof(int) * 100);
    assert_memory_not_equal(drawn[0], drawn[2], sizeof(int) * 100);
    /* Again with the same selection: the same draw. */
    dataset ds;
    make_ds(&ds, 1600);
    assert_int_equal(dataset_select(&ds, &s1, DATASET_TRAIN, err, sizeof err), MODA_OK);
    int again[400];
    assert_int_equal(samples_of(&ds, 2, again), 100);
    assert_memory_equal(drawn[0], again, sizeof(int) * 100);
    dataset_free(&ds);
}

/* At least one image of the mixed class is kept; a fraction of 1 keeps all. */
static void test_fraction_bounds(void **state) {
    (void)state;
    dataset_selection sel;
    char err[512];
    int idx[80];
    dataset ds;
    assert_int_equal(resolve(&sel, "b", "a", 0.01f, true, 0, err, sizeof err), MODA_OK);
    make_ds(&ds, 80);
    assert_int_equal(dataset_select(&ds, &sel, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(samples_of(&ds, 1, idx), 1);
    dataset_free(&ds);
    assert_int_equal(resolve(&sel, "b", "a", 1.0f, true, 0, err, sizeof err), MODA_OK);
    make_ds(&ds, 80);
    assert_int_equal(dataset_select(&ds, &sel, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(samples_of(&ds, 1, idx), 20);
    dataset_free(&ds);
}

/* A selection naming a class the data lacks fails and leaves the data; no
 * selection leaves it too. */
static void test_select_errors(void **state) {
    (void)state;
    dataset_selection sel = {.present = true, .n = 2, .classes = {1, 6}, .mix = -1, .mix_fraction = 1, .seed = 0};
    char err[512] = "";
    dataset ds;
    make_ds(&ds, 8);
    assert_int_equal(dataset_select(&ds, &sel, DATASET_TEST, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "names class 6, but the data has 4 classes"));
    assert_int_equal(ds.n, 8);
    assert_int_equal(ds.num_classes, 4);
    sel.present = false;
    assert_int_equal(dataset_select(&ds, &sel, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(ds.n, 8);
    assert_string_equal(ds.class_names[3], "d");
    dataset_free(&ds);
}

static void test_json_round_trip(void **state) {
    (void)state;
    dataset_selection sel, back;
    char err[512], why[256];
    assert_int_equal(resolve(&sel, "d,b", "a", 0.1f, true, 1234567890123ULL, err, sizeof err), MODA_OK);
    json_t *j = dataset_selection_json(&sel);
    assert_non_null(j);
    assert_true(dataset_selection_parse(j, &back, why, sizeof why));
    assert_true(back.present);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.classes[0], 3);
    assert_int_equal(back.classes[1], 1);
    assert_int_equal(back.mix, 0);
    assert_true(back.mix_fraction == sel.mix_fraction);
    assert_true(back.seed == 1234567890123ULL);
    json_decref(j);
    const char *bad[] = {
        "{\"classes\":[],\"mix_class\":-1,\"mix_fraction\":1,\"seed\":0}",
        "{\"classes\":[1,1],\"mix_class\":-1,\"mix_fraction\":1,\"seed\":0}",
        "{\"classes\":[1],\"mix_class\":1,\"mix_fraction\":0.1,\"seed\":0}",
        "{\"classes\":[1],\"mix_class\":0,\"mix_fraction\":0,\"seed\":0}",
        "{\"classes\":[-2],\"mix_class\":-1,\"mix_fraction\":1,\"seed\":0}",
        "{\"classes\":[1],\"mix_class\":-1,\"mix_fraction\":1}",
        "[1,2]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = json_loads(bad[i], 0, NULL);
        assert_non_null(b);
        if (dataset_selection_parse(b, &back, why, sizeof why)) fail_msg("accepted %s", bad[i]);
        json_decref(b);
    }
}

/* ---- a model trained on a selection, end to end ------------------------- */

static char root[256], data[300], names[320], reg[300];
static moda_backend *be;

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda-select-XXXXXX");
    if (!mkdtemp(root) || synth_make_data(root, 256, 64)) return -1;
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(names, sizeof names, "%s/names.txt", data);
    snprintf(reg, sizeof reg, "%s/registry", root);
    be = backend_cpu_new();
    return be ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    backend_free(be);
    return synth_remove_tree(root);
}

static train_options run_options(const char *out) {
    train_options o = train_options_default();
    o.dataset = "idx";
    o.data_dir = data;
    o.names = names;
    o.input_size = 16;
    o.epochs = 3;
    o.batch_size = 32;
    o.augment = false;
    o.alpha = o.beta = 1.0f;
    o.gamma = 0.3f;
    o.seed = 3;
    o.out_dir = out;
    return o;
}

/* The test accuracy (%) of the last epoch in dir/metrics.csv. */
static double trainer_test_acc(const char *dir) {
    char p[400], line[512];
    snprintf(p, sizeof p, "%s/metrics.csv", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    double acc = -1;
    while (fgets(line, sizeof line, f)) {
        int epoch;
        double lr, loss, train_acc, test_loss, test_acc;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf", &epoch, &lr, &loss, &train_acc, &test_loss, &test_acc) == 6)
            acc = test_acc;
    }
    fclose(f);
    return acc;
}

/* eval-reuse's full-model accuracy (%) over its `size`-class subsets. */
static double reuse_full_accuracy(const char *dir, int size) {
    char p[400], line[256];
    snprintf(p, sizeof p, "%s/reuse.csv", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    double acc = -1;
    while (fgets(line, sizeof line, f)) {
        int z, tasks;
        double composed, full;
        if (sscanf(line, "%d,%d,%lf,%lf", &z, &tasks, &composed, &full) == 4 && z == size) acc = full;
    }
    fclose(f);
    return acc;
}

static void train_into_registry(const char *name, train_options *o) {
    char out[300], ckpt[340], err[1024];
    snprintf(out, sizeof out, "%s/runs/%s", root, name);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    o->out_dir = out;
    if (train_run(o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    const char *argv[] = {"moda", "decompose", "--checkpoint", ckpt, "--out", reg, "--name", name, NULL};
    assert_int_equal(tiny_run_cmd(cmd_decompose, argv), 0);
}

/* A weak model on two classes plus a quarter of a third, trained in two
 * sittings (--stop-after, --resume); its registry entry read back: same
 * classes, same training subset, and eval-reuse's accuracy from the
 * registry is the trainer's. */
static void test_trained_selection_round_trip(void **state) {
    (void)state;
    char out[300], err[1024], why[256];
    snprintf(out, sizeof out, "%s/runs/weak", root);
    train_options o = run_options(out);
    o.classes = "coarse-check,0";
    o.mix_class = "fine-check";
    o.mix_fraction = 0.25f;
    o.stop_after = 1;
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    train_options r = run_options(out);
    r.resume = true; /* the selection comes from the checkpoint */
    train_into_registry("weak", &r);

    registry *rg;
    registry_model m;
    if (registry_open(reg, NULL, &rg, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    if (registry_load_model(rg, "weak", be, &m, err, sizeof err) != MODA_OK)
        fail_msg("%s", err);
    registry_close(rg);
    const char *want[3] = {"coarse-check", "h-stripes", "fine-check"};
    assert_int_equal(m.info.model.num_classes, 3);
    for (int k = 0; k < 3; k++) assert_string_equal(m.info.class_names[k], want[k]);
    assert_true(m.info.selection.present);
    assert_int_equal(m.info.selection.classes[0], 3);
    assert_int_equal(m.info.selection.classes[1], 0);
    assert_int_equal(m.info.selection.mix, 2);
    assert_int_equal(m.info.selection.seed, 3);

    /* The training subset read for the registry's model: 64 + 64 + 16. */
    model_data_options mo = {0};
    dataset ds;
    if (model_data_load(&ds, &mo, "weak", &m.info, DATASET_TRAIN, 0, err, sizeof err) != MODA_OK)
        fail_msg("%s", err);
    int counts[3];
    assert_int_equal(ds.num_classes, 3);
    dataset_class_counts(&ds, counts);
    assert_int_equal(counts[0], 64);
    assert_int_equal(counts[1], 64);
    assert_int_equal(counts[2], 16);
    dataset_free(&ds);
    /* The draw is the one the recorded selection gives on the raw split. */
    dataset raw;
    assert_int_equal(dataset_load(&raw, "idx", data, DATASET_TRAIN, NULL, why, sizeof why), MODA_OK);
    assert_int_equal(dataset_select(&raw, &m.info.selection, DATASET_TRAIN, err, sizeof err), MODA_OK);
    assert_int_equal(raw.n, 144);
    dataset_free(&raw);

    /* Accuracy from the registry, by eval-reuse, the trainer's and decompose's. */
    char rout[320];
    snprintf(rout, sizeof rout, "%s/reuse", root);
    const char *argv[] = {"moda", "eval-reuse", "--registry", reg, "--model", "weak", "--st-model", "weak",
                          "--out", rout, "--threads", "1", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, argv), 0);
    double trained = trainer_test_acc(out);
    assert_true(trained >= 0);
    assert_true(fabs(reuse_full_accuracy(rout, 3) - trained) < 1e-3);
    assert_true(fabs(100 * m.test_acc - trained) < 1e-3);
    registry_model_free(&m);

    /* The checkpoint says the same. */
    checkpoint ck;
    char ckpt[340];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    if (checkpoint_open(ckpt, be, &ck, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_true(ck.info.selection.present);
    assert_int_equal(dataset_selection_classes(&ck.info.selection), 3);
    checkpoint_close(&ck);
    const char *eval[] = {"moda", "eval", "--checkpoint", ckpt, NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval, eval), 0);
}

/* The weak model's class replaced by the module of a strong model trained
 * on another selection: each finds the class by name; the test data is
 * the weak model's selection (all of its mixed class's test images). */
static void test_replace_between_selections(void **state) {
    (void)state;
    char out[300], err[1024];
    snprintf(out, sizeof out, "%s/runs/strong", root);
    train_options s = run_options(out);
    s.classes = "fine-check,v-stripes";
    train_into_registry("strong", &s);
    replace_options o = {.reg = reg, .weak = "weak", .strong = "strong", .cls = "fine-check", .tau = 0.9f,
                         .calib = calibration_options_default()};
    o.calib.epochs = 1;
    replace_result res;
    if (replace_cli_run(&o, &res, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(res.cls, 2);
    assert_int_equal(res.strong_cls, 0);
    assert_int_equal(res.k, 3);
    assert_int_equal(res.train_n, 144);
    assert_int_equal(res.test_n, 48);
    assert_int_equal(res.test_class_n, 16);
    replace_result_free(&res);
    /* A class the strong model was not trained on is refused by name. */
    o.cls = "h-stripes";
    assert_int_equal(replace_cli_run(&o, &res, err, sizeof err), MODA_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "strong has no class named \"h-stripes\""));
}

/* A selection that the data cannot satisfy fails the run with the reason. */
static void test_train_refuses_bad_selection(void **state) {
    (void)state;
    char out[300], err[1024] = "";
    snprintf(out, sizeof out, "%s/runs/bad", root);
    train_options o = run_options(out);
    o.classes = "h-stripes,nope";
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "unknown class \"nope\""));
    o.classes = "h-stripes";
    o.mix_class = "0";
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "is also in --classes"));
}

int main(void) {
    const struct CMUnitTest units[] = {
        cmocka_unit_test(test_resolve),          cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_select_train_and_test), cmocka_unit_test(test_draw_determinism),
        cmocka_unit_test(test_fraction_bounds),  cmocka_unit_test(test_select_errors),
        cmocka_unit_test(test_json_round_trip),
    };
    const struct CMUnitTest trained[] = {
        cmocka_unit_test(test_trained_selection_round_trip),
        cmocka_unit_test(test_replace_between_selections),
        cmocka_unit_test(test_train_refuses_bad_selection),
    };
    int failed = cmocka_run_group_tests(units, NULL, NULL);
    return failed + cmocka_run_group_tests(trained, setup, teardown);
}
