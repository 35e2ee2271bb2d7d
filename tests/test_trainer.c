/* The training run: learning on a small synthetic IDX dataset, checkpoints
 * that load back, a killed-and-resumed run that ends bit-identical to an
 * uninterrupted one, and clear errors for bad input. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fileio.h"
#include "train.h"
#include "synthetic_idx.h"

static char root[256];
static moda_backend *be; /* the group's */

static int setup(void **state) {
    snprintf(root, sizeof root, "/tmp/moda-trainer-XXXXXX");
    if (!mkdtemp(root) || tu_backend_setup_into(state, &be)) return -1;
    return synth_make_data(root, 256, 64);
}

static int teardown(void **state) {
    tu_backend_teardown(state);
    return synth_remove_tree(root);
}

static train_options small_options(const char *out, char *dir_buf, char *names_buf) {
    train_options o = train_options_default();
    sprintf(dir_buf, "%s/data", root);
    sprintf(names_buf, "%s/data/names.txt", root);
    o.arch = "lenet5";
    o.dataset = "idx";
    o.data_dir = dir_buf;
    o.names = names_buf;
    o.input_size = 16;
    o.epochs = 3;
    o.batch_size = 32;
    o.seed = 5;
    o.out_dir = out;
    return o;
}

static float *load_weights(const char *ckpt, size_t *n) {
    checkpoint ck;
    char err[512];
    if (checkpoint_open(ckpt, be, &ck, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    size_t total = 0;
    for (int i = 0; i < ck.g->n_params; i++) total += graph_param_numel(&ck.g->params[i]);
    float *w = tu_alloc(total), *p = w;
    for (int i = 0; i < ck.g->n_params; i++) {
        size_t m = graph_param_numel(&ck.g->params[i]);
        memcpy(p, ck.g->params[i].data, m * sizeof(float));
        p += m;
    }
    *n = total;
    checkpoint_close(&ck);
    return w;
}

static void test_learns_and_resumes_exactly(void **state) {
    (void)state;
    char dir[300], names[300], out_a[300], out_b[300], ck_a[340], ck_b[340], err[1024];
    snprintf(out_a, sizeof out_a, "%s/a", root);
    snprintf(out_b, sizeof out_b, "%s/b", root);
    train_options o = small_options(out_a, dir, names);
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);

    /* The same run killed after its first epoch, then resumed. */
    o.out_dir = out_b;
    o.stop_after = 1;
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    train_options again = train_options_default();
    again.out_dir = out_b;
    again.resume = true;
    if (train_run(&again, err, sizeof err) != MODA_OK) fail_msg("%s", err);

    snprintf(ck_a, sizeof ck_a, "%s/checkpoint.safetensors", out_a);
    snprintf(ck_b, sizeof ck_b, "%s/checkpoint.safetensors", out_b);
    size_t na, nb;
    float *wa = load_weights(ck_a, &na), *wb = load_weights(ck_b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(wa, wb, na * sizeof(float));
    free(wa);
    free(wb);

    /* Three rows in the CSV, and the model learned the patterns. */
    char p[360];
    snprintf(p, sizeof p, "%s/metrics.csv", out_b);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[256];
    int rows = 0;
    float test_acc = 0;
    while (fgets(line, sizeof line, f))
        if (rows++ > 0) {
            int e;
            float lr, tl, ta, vl, va;
            assert_int_equal(sscanf(line, "%d,%f,%f,%f,%f,%f", &e, &lr, &tl, &ta, &vl, &va), 6);
            assert_int_equal(e, rows - 1);
            test_acc = va;
        }
    fclose(f);
    assert_int_equal(rows, 4);
    if (!(test_acc > 90.0f)) fail_msg("test accuracy %.2f%%", test_acc);
    snprintf(p, sizeof p, "%s/curves.svg", out_b);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size > 500);

    /* A finished run cannot be started again over itself. */
    o.stop_after = 0;
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "--resume"));
}

static void test_checkpoint_errors(void **state) {
    (void)state;
    char dir[300], names[300], out[300], ck[340], bad[340], err[1024];
    snprintf(out, sizeof out, "%s/c", root);
    train_options o = small_options(out, dir, names);
    o.epochs = 1;
    if (train_run(&o, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", out);
    uint8_t *data;
    size_t len;
    assert_int_equal(fileio_read_all(ck, 1 << 26, &data, &len, err, sizeof err), MODA_OK);

    checkpoint c;
    snprintf(bad, sizeof bad, "%s/bad.safetensors", root);
    size_t cuts[] = {0, 7, 8, 100, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(fileio_write_atomic(bad, data, cuts[i], err, sizeof err), MODA_OK);
        err[0] = '\0';
        assert_int_not_equal(checkpoint_open(bad, be, &c, err, sizeof err), MODA_OK);
        assert_non_null(strstr(err, "bad.safetensors"));
    }
    err[0] = '\0';
    assert_int_equal(checkpoint_open("/nonexistent/x.safetensors", be, &c, err, sizeof err), MODA_ERR_IO);
    assert_true(strlen(err) > 0);
    free(data);
}

static void test_option_errors(void **state) {
    (void)state;
    char dir[300], names[300], out[300], err[1024];
    snprintf(out, sizeof out, "%s/d", root);
    train_options o = small_options(out, dir, names);
    o.arch = "alexnet";
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "alexnet"));
    o = small_options(out, dir, names);
    o.epochs = 0;
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_ARG);
    o = small_options(out, dir, names);
    o.data_dir = "/nonexistent-data";
    assert_int_not_equal(train_run(&o, err, sizeof err), MODA_OK);
    assert_non_null(strstr(err, "/nonexistent-data"));
    o = small_options(out, dir, names);
    o.input_size = 15; /* 12 does not pad evenly to 15 */
    assert_int_not_equal(train_run(&o, err, sizeof err), MODA_OK);
    o = small_options(out, dir, names);
    o.resume = true;
    assert_int_equal(train_run(&o, err, sizeof err), MODA_ERR_NOT_FOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_resumes_exactly),
        cmocka_unit_test(test_checkpoint_errors),
        cmocka_unit_test(test_option_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
