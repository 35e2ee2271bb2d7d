/* What a model records about its training data, and every command's
 * check of it: IDX classes named by their labels, the record's round trip
 * through checkpoint and manifest, eval-reuse reading the recorded
 * location (not Fashion-MNIST), and the refusals: other data, data gone,
 * a names file of the wrong length, another --dataset. */
#include "test_util.h"

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cmd_compose.h"
#include "cmd_eval.h"
#include "cmd_replace.h"
#include "cmd_reuse.h"
#include "model_data.h"
#include "registry.h"
#include "tiny_registry.h"

static char root[256], data[300], other[300], moved[300], gone[300], reg[300], ckpt[340], moved_ckpt[340];
static moda_backend *be;

/* Trains `name` briefly on dir (no names file) and decomposes it. */
/* A short run of LeNet5 at 16x16 on IDX data in dir, into out. */
static train_options short_run(const char *dir, const char *out) {
    train_options o = train_options_default();
    o.dataset = "idx";
    o.data_dir = dir;
    o.input_size = 16;
    o.epochs = 3;
    o.batch_size = 32;
    o.augment = false;
    o.out_dir = out;
    return o;
}

static void train_and_decompose(const char *name, const char *dir, char *ck, size_t cklen) {
    char out[300], err[1024];
    snprintf(out, sizeof out, "%s/runs/%s", root, name);
    snprintf(ck, cklen, "%s/checkpoint.safetensors", out);
    train_options o = short_run(dir, out);
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    const char *argv[] = {"moda", "decompose", "--checkpoint", ck, "--out", reg, "--name", name, NULL};
    assert_int_equal(tiny_run_cmd(cmd_decompose, argv), 0);
}

static int setup(void **state) {
    snprintf(root, sizeof root, "/tmp/moda-provenance-XXXXXX");
    if (!mkdtemp(root) || tu_backend_setup_into(state, &be) || synth_make_data(root, 256, 64)) return -1;
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(reg, sizeof reg, "%s/registry", root);
    /* Other data of the same shape and counts: only the fingerprint tells. */
    snprintf(other, sizeof other, "%s/other", root);
    snprintf(moved, sizeof moved, "%s/moved", root);
    snprintf(gone, sizeof gone, "%s/moved-away", root);
    if (mkdir(other, 0755) || mkdir(moved, 0755)) return -1;
    synth_write_idx(other, "train", 256, 3);
    synth_write_idx(other, "t10k", 64, 4);
    synth_write_idx(moved, "train", 256, 1);
    synth_write_idx(moved, "t10k", 64, 2);
    train_and_decompose("m", data, ckpt, sizeof ckpt);
    train_and_decompose("moved", moved, moved_ckpt, sizeof moved_ckpt);
    return rename(moved, gone);
}

static int teardown(void **state) {
    tu_backend_teardown(state);
    return synth_remove_tree(root);
}

/* Runs a command with its stderr captured into out; its exit code. */
static int run_capture(int (*cmd)(int, char **), const char **argv, char *out, size_t len) {
    char path[320];
    snprintf(path, sizeof path, "%s/stderr.txt", root);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = tiny_run_cmd(cmd, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

#define assert_mentions(text, needle)                                                     \
    do {                                                                                  \
        if (!strstr((text), (needle))) fail_msg("'%s' lacks '%s'", (text), (needle));    \
    } while (0)

static void load(const char *name, registry_model *m) {
    registry *r;
    char err[1024];
    if (registry_open(reg, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    if (registry_load_model(r, name, be, m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    registry_close(r);
}

/* Model m as its checkpoint and as its registry entry. */
static void open_model_m(checkpoint *ck, registry_model *m) {
    char err[1024];
    if (checkpoint_open(ckpt, be, ck, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    load("m", m);
}

/* IDX data without a names file: "0" .. "3", not Fashion-MNIST's names,
 * in the checkpoint and in the registry. */
static void test_idx_classes_are_digits(void **state) {
    (void)state;
    checkpoint ck;
    registry_model m;
    open_model_m(&ck, &m);
    assert_int_equal(ck.info.model.num_classes, 4);
    assert_int_equal(m.info.model.num_classes, 4);
    const char *digits[4] = {"0", "1", "2", "3"};
    for (int k = 0; k < 4; k++) {
        assert_string_equal(ck.info.class_names[k], digits[k]);
        assert_string_equal(m.info.class_names[k], digits[k]);
    }
    registry_model_free(&m);
    checkpoint_close(&ck);
}

/* The record, as written by training, read back from the checkpoint and
 * from the manifest decompose wrote: kind, location, counts and the
 * fingerprint of each split as dataset_load gives it. */
static void test_record_round_trip(void **state) {
    (void)state;
    checkpoint ck;
    registry_model m;
    open_model_m(&ck, &m);
    const model_info *both[2] = {&ck.info, &m.info};
    for (int i = 0; i < 2; i++) {
        const model_info *mi = both[i];
        char err[1024];
        assert_true(mi->data.present);
        assert_string_equal(mi->dataset, "idx");
        assert_string_equal(mi->data.location, data);
        for (int s = DATASET_TRAIN; s <= DATASET_TEST; s++) {
            dataset ds;
            assert_int_equal(dataset_load(&ds, "idx", data, (dataset_split)s, NULL, err, sizeof err), MODA_OK);
            char hex[SHA256_HEX_LEN];
            assert_int_equal(dataset_fingerprint(&ds, hex), MODA_OK);
            assert_int_equal(mi->data.split[s].samples, s == DATASET_TRAIN ? 256 : 64);
            assert_string_equal(mi->data.split[s].sha256, hex);
            dataset_free(&ds);
        }
    }
    assert_non_null(strstr(m.manifest_json, "\"location\""));
    registry_model_free(&m);
    checkpoint_close(&ck);

    /* A fingerprint sees one pixel change. */
    char err[1024];
    dataset ds;
    char a[SHA256_HEX_LEN], b[SHA256_HEX_LEN];
    assert_int_equal(dataset_load(&ds, "idx", data, DATASET_TEST, NULL, err, sizeof err), MODA_OK);
    assert_int_equal(dataset_fingerprint(&ds, a), MODA_OK);
    ds.images[100] += 1.0f / 255;
    assert_int_equal(dataset_fingerprint(&ds, b), MODA_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(dataset_pad(&ds, 1), MODA_OK);
    assert_int_equal(dataset_fingerprint(&ds, b), MODA_ERR_STATE); /* only data as loaded */
    dataset_free(&ds);
}

static double csv_full_accuracy(const char *dir, int size) {
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

/* eval-reuse without --data-dir reads the recorded location: the full
 * model over all four classes scores its recorded test accuracy. Other
 * data under --data-dir is refused, naming both. */
static void test_eval_reuse_reads_recorded_data(void **state) {
    (void)state;
    char out[320], msg[4096];
    snprintf(out, sizeof out, "%s/reuse", root);
    const char *argv[] = {"moda", "eval-reuse", "--registry", reg, "--model", "m", "--st-model", "m",
                          "--out", out, "--threads", "1", NULL};
    assert_int_equal(run_capture(cmd_eval_reuse, argv, msg, sizeof msg), 0);
    registry_model m;
    load("m", &m);
    assert_true(fabs(csv_full_accuracy(out, 4) - 100 * m.test_acc) < 1e-3);
    registry_model_free(&m);
    assert_null(strstr(msg, "warning"));

    const char *wrong[] = {"moda", "eval-reuse", "--registry", reg, "--model", "m", "--data-dir", other, NULL};
    assert_int_equal(run_capture(cmd_eval_reuse, wrong, msg, sizeof msg), 1);
    assert_mentions(msg, "m: the test data read does not match the data it was trained on");
    assert_mentions(msg, "recorded idx data at ");
    assert_mentions(msg, data);
    assert_mentions(msg, "read --data-dir ");
    assert_mentions(msg, other);
    assert_mentions(msg, "64 samples, sha256 ");
}

/* Every command that reads data for a model refuses other data. */
static void test_every_command_checks(void **state) {
    (void)state;
    char msg[4096], reg2[320];
    snprintf(reg2, sizeof reg2, "%s/registry2", root);
    const char *eval[] = {"moda", "eval", "--checkpoint", ckpt, "--data-dir", other, NULL};
    const char *dec[] = {"moda", "decompose", "--checkpoint", ckpt, "--out", reg2, "--data-dir", other, NULL};
    const char *comp[] = {"moda", "compose", "--registry", reg, "--model", "m", "--classes", "0,1",
                          "--save", "sub", "--out", reg2, "--data-dir", other, NULL};
    const char *repl[] = {"moda", "replace", "--registry", reg, "--weak", "m", "--strong", "m",
                          "--class", "1", "--data-dir", other, NULL};
    int (*cmds[4])(int, char **) = {cmd_eval, cmd_decompose, cmd_compose, cmd_replace};
    const char **argvs[4] = {eval, dec, comp, repl};
    const char *split[4] = {"test", "train", "test", "train"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(run_capture(cmds[i], argvs[i], msg, sizeof msg), 1);
        char want[64];
        snprintf(want, sizeof want, "the %s data read does not match", split[i]);
        assert_mentions(msg, want);
    }
    /* With the right data they run; eval reads the recorded location. */
    const char *eval_ok[] = {"moda", "eval", "--checkpoint", ckpt, NULL};
    assert_int_equal(run_capture(cmd_eval, eval_ok, msg, sizeof msg), 0);
    const char *comp_ok[] = {"moda", "compose", "--registry", reg, "--model", "m", "--classes", "0,1",
                             "--save", "sub", "--out", reg2, NULL};
    assert_int_equal(run_capture(cmd_compose, comp_ok, msg, sizeof msg), 0);
}

/* Runs a command; it must exit with rc and its stderr hold each needle
 * (NULL-terminated). */
static void expect(int (*cmd)(int, char **), const char **argv, int rc, const char *const *needles) {
    char msg[4096];
    assert_int_equal(run_capture(cmd, argv, msg, sizeof msg), rc);
    for (int i = 0; needles && needles[i]; i++) assert_mentions(msg, needles[i]);
}

/* The recorded location is gone: an error that names --data-dir, and no
 * other data; the data given elsewhere by --data-dir is accepted. */
static void test_missing_data(void **state) {
    (void)state;
    const char *reuse[] = {"moda", "eval-reuse", "--registry", reg, "--model", "moved", NULL};
    expect(cmd_eval_reuse, reuse, 1,
           (const char *const[]){"moved: its test data (idx) cannot be read from the recorded location ", moved,
                                 "give --data-dir", NULL});
    const char *eval[] = {"moda", "eval", "--checkpoint", moved_ckpt, NULL};
    expect(cmd_eval, eval, 1, (const char *const[]){"give --data-dir", NULL});
    const char *there[] = {"moda", "eval", "--checkpoint", moved_ckpt, "--data-dir", gone, NULL};
    expect(cmd_eval, there, 0, NULL);
}

/* A --dataset other than the recorded kind is a usage error naming both. */
static void test_other_kind(void **state) {
    (void)state;
    const char *eval[] = {"moda", "eval", "--checkpoint", ckpt, "--dataset", "mnist", NULL};
    expect(cmd_eval, eval, 2,
           (const char *const[]){"--dataset mnist differs from the dataset", "was trained on, idx", NULL});
    const char *reuse[] = {"moda", "eval-reuse", "--registry", reg, "--model", "m", "--dataset", "cifar10", NULL};
    expect(cmd_eval_reuse, reuse, 2,
           (const char *const[]){"--dataset cifar10 differs from the dataset m was trained on, idx", NULL});
}

/* A names file must name each of the K = max label + 1 classes. */
static void test_names_count(void **state) {
    (void)state;
    char names[320], out[320], err[1024];
    snprintf(names, sizeof names, "%s/three.txt", root);
    FILE *f = fopen(names, "w");
    assert_non_null(f);
    fputs("a\nb\nc\n", f);
    fclose(f);
    snprintf(out, sizeof out, "%s/runs/three", root);
    train_options o = short_run(data, out);
    o.names = names;
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_FORMAT);
    assert_mentions(err, "three.txt: 3 class names, expected 4");
}

/* A model without a record (an older moda's) is read with a warning. */
static void test_no_record_warns(void **state) {
    (void)state;
    checkpoint ck;
    char err[1024] = "", msg[1024] = "";
    if (checkpoint_open(ckpt, be, &ck, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    ck.info.data.present = false;
    FILE *log = tmpfile();
    assert_non_null(log);
    model_data_options o = {.data_dir = other, .log = log};
    dataset ds;
    assert_int_equal(model_data_load(&ds, &o, "old", &ck.info, DATASET_TEST, 0, err, sizeof err), MODA_OK);
    rewind(log);
    msg[fread(msg, 1, sizeof msg - 1, log)] = '\0';
    fclose(log);
    assert_mentions(msg, "warning: old has no record of its training data");
    assert_mentions(msg, "cannot be checked");
    dataset_free(&ds);
    checkpoint_close(&ck);

    /* The bundled registry predates records: it still loads, without one. */
    registry *r;
    registry_model m;
    if (registry_open(MODA_MODELS_DIR, NULL, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    if (registry_read_manifest(r, "fmnist-lenet5", &m, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_false(m.info.data.present);
    registry_model_free(&m);
    registry_close(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_classes_are_digits), cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_eval_reuse_reads_recorded_data), cmocka_unit_test(test_every_command_checks),
        cmocka_unit_test(test_missing_data), cmocka_unit_test(test_other_kind),
        cmocka_unit_test(test_names_count), cmocka_unit_test(test_no_record_warns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
