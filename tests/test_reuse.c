/* moda eval-reuse end to end on a tiny registry: at tau 0 nothing is
 * dropped, so every composed model must match the full model's sliced
 * logits exactly; at tau 0.9 the composed models are smaller; bad
 * arguments and unknown models give the CLI's exit codes. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "cmd_reuse.h"
#include "tiny_registry.h"

static char root[256];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda-reuse-XXXXXX");
    if (!mkdtemp(root) || synth_make_data(root, 256, 80) != 0) return -1;
    tiny_train_into_registry(root, "tiny-moda", true, 2, 3);
    tiny_train_into_registry(root, "tiny-st", false, 2, 3);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return synth_remove_tree(root);
}

typedef struct row {
    int size, tasks;
    double composed, full_moda, full_st, size_ratio, flops_ratio;
} row;

static int read_rows(const char *dir, row *rows, int max) {
    char p[400], line[256];
    snprintf(p, sizeof p, "%s/reuse.csv", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "subset_size,tasks,composed_acc,full_moda_acc,full_st_acc,size_ratio,flops_ratio\n");
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        row *r = &rows[n++];
        double v[7];
        char *p = line;
        for (int i = 0; i < 7; i++) { /* an empty field (no ST model) reads as -1 */
            char *end;
            v[i] = strtod(p, &end);
            if (end == p) v[i] = -1;
            assert_true(*end == (i < 6 ? ',' : '\n'));
            p = end + 1;
        }
        *r = (row){(int)v[0], (int)v[1], v[2], v[3], v[4], v[5], v[6]};
    }
    fclose(f);
    return n;
}

static void test_tau_zero_is_exact(void **state) {
    (void)state;
    char reg[300], out[300], data[300];
    snprintf(reg, sizeof reg, "%s/registry", root);
    snprintf(out, sizeof out, "%s/reuse0", root);
    snprintf(data, sizeof data, "%s/data", root);
    const char *argv[] = {"moda", "eval-reuse", "--registry", reg, "--model", "tiny-moda", "--st-model", "tiny-st",
                          "--tau", "0", "--data-dir", data, "--out", out, NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, argv), 0);
    row rows[8];
    assert_int_equal(read_rows(out, rows, 8), 3);
    int want_tasks[3] = {6, 4, 1}; /* C(4,2), C(4,3), C(4,4) */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rows[i].size, i + 2);
        assert_int_equal(rows[i].tasks, want_tasks[i]);
        assert_float_equal(rows[i].composed, rows[i].full_moda, 1e-9);
        /* LeNet5 on 1x16x16 with 4 classes has 15,116 parameters; tau 0
         * drops only the logits rows of absent classes (84 weights + bias). */
        assert_float_equal(rows[i].size_ratio, (15116.0 - (2 - i) * 85) / 15116.0, 1e-4);
        assert_true(rows[i].full_st > 25.0);
    }
    assert_float_equal(rows[2].flops_ratio, 1.0, 1e-9);
    char svg[400];
    snprintf(svg, sizeof svg, "%s/reuse.svg", out);
    assert_int_equal(access(svg, R_OK), 0);
}

static void test_tau_default_smaller(void **state) {
    (void)state;
    char reg[300], out[300], data[300];
    snprintf(reg, sizeof reg, "%s/registry", root);
    snprintf(out, sizeof out, "%s/reuse9", root);
    snprintf(data, sizeof data, "%s/data", root);
    const char *argv[] = {"moda", "eval-reuse", "--registry", reg, "--model", "tiny-moda", "--tasks", "7",
                          "--seed", "4", "--data-dir", data, "--out", out, NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, argv), 0);
    row rows[8];
    int n = read_rows(out, rows, 8), tasks = 0;
    for (int i = 0; i < n; i++) {
        tasks += rows[i].tasks;
        assert_true(rows[i].size_ratio > 0 && rows[i].size_ratio <= 1.0);
        assert_true(rows[i].composed >= 0 && rows[i].composed <= 100);
        assert_float_equal(rows[i].full_st, -1, 0);
    }
    assert_int_equal(tasks, 7);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    assert_true(fread(buf, 1, (1 << 16) - 1, f) > 0);
    fclose(f);
    return buf;
}

/* Subsets run side by side on worker threads; the table must not depend
 * on how many there are or which finishes first. */
static void test_threads_agree(void **state) {
    (void)state;
    char reg[300], data[300], out[2][300], csv[2][640];
    snprintf(reg, sizeof reg, "%s/registry", root);
    snprintf(data, sizeof data, "%s/data", root);
    const char *threads[2] = {"1", "3"};
    for (int i = 0; i < 2; i++) {
        snprintf(out[i], sizeof out[i], "%s/reuse-threads%s", root, threads[i]);
        snprintf(csv[i], sizeof csv[i], "%s/reuse.csv", out[i]);
        const char *argv[] = {"moda", "eval-reuse", "--registry", reg, "--model", "tiny-moda", "--st-model", "tiny-st",
                              "--tasks", "9", "--seed", "5", "--threads", threads[i], "--batch-size", "7",
                              "--data-dir", data, "--out", out[i], NULL};
        assert_int_equal(tiny_run_cmd(cmd_eval_reuse, argv), 0);
    }
    char *a = slurp(csv[0]), *b = slurp(csv[1]);
    assert_string_equal(a, b);
    free(a);
    free(b);
    const char *zero[] = {"moda", "eval-reuse", "--registry", reg, "--model", "tiny-moda", "--threads", "0", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, zero), 2);
}

static void test_errors(void **state) {
    (void)state;
    char reg[300];
    snprintf(reg, sizeof reg, "%s/registry", root);
    const char *unknown[] = {"moda", "eval-reuse", "--registry", reg, "--model", "nope", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, unknown), 1);
    const char *tasks[] = {"moda", "eval-reuse", "--registry", reg, "--model", "tiny-moda", "--tasks", "-3", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, tasks), 2);
    const char *tau[] = {"moda", "eval-reuse", "--registry", reg, "--model", "tiny-moda", "--tau", "2", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, tau), 2);
    const char *missing[] = {"moda", "eval-reuse", "--model", "tiny-moda", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, missing), 2);
    const char *help[] = {"moda", "eval-reuse", "--help", NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval_reuse, help), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tau_zero_is_exact),
        cmocka_unit_test(test_tau_default_smaller),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
