/* Registry writes under faults. A writer killed (SIGKILL) at 200 random
 * moments leaves a registry that opens and loads the model as it was
 * before that write or after it, never a mix; a disk that fills up (a
 * small tmpfs in a private mount namespace, where the test may make one)
 * fails the write with a clear error and leaves the registry as it was. */
#define _GNU_SOURCE /* unshare, CLONE_NEWNS */
#include "test_util.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "registry.h"
#include "synthetic_idx.h"

#define MODEL "fmnist-lenet5"
#define KILLS 200

static char root[128];
static registry_model src; /* the bundled model, the content of every write */
static moda_backend *be;

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda-crash-XXXXXX");
    if (!mkdtemp(root) || !(be = backend_cpu_new())) return -1;
    registry *r = NULL;
    char err[512];
    if (registry_open(MODA_MODELS_DIR, NULL, &r, err, sizeof err) ||
        registry_load_model(r, MODEL, be, &src, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    registry_close(r);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    registry_model_free(&src);
    backend_free(be);
    return synth_remove_tree(root);
}

static moda_status write_version(const char *reg, const char *name, double acc, char *err, size_t len) {
    return registry_write_model(reg, name, src.g, &src.info, NULL, acc, &src.r, &src.stats, err, len);
}

/* The model loads whole, as one of the versions written. */
static void check_loads(const char *reg, const char *name) {
    registry *r = NULL;
    registry_model m;
    char err[1024];
    if (registry_open(reg, NULL, &r, err, sizeof err)) fail_msg("the registry does not open: %s", err);
    if (registry_load_model(r, name, be, &m, err, sizeof err)) fail_msg("%s does not load: %s", name, err);
    double acc = m.test_acc;
    bool known = false;
    for (int v = 0; v < 4; v++) known |= acc == 0.125 * (v + 1);
    if (!known) fail_msg("%s has test accuracy %g, which no write gave it", name, acc);
    for (int i = 0; i < src.g->n_params; i++)
        assert_memory_equal(m.g->params[i].data, src.g->params[i].data,
                            graph_param_numel(&src.g->params[i]) * sizeof(float));
    registry_model_free(&m);
    registry_close(r);
}

static void test_killed_writer(void **state) {
    (void)state;
    char reg[200], err[1024];
    snprintf(reg, sizeof reg, "%s/killed", root);
    if (write_version(reg, "m", 0.125, err, sizeof err) || write_version(reg, "other", 0.25, err, sizeof err))
        fail_msg("%s", err);
    unsigned seed = 12345;
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* rewrite both models, versions in turn, until killed */
            for (int v = 0;; v++) {
                char e[256];
                write_version(reg, v % 2 ? "m" : "other", 0.125 * (v % 4 + 1), e, sizeof e);
            }
        }
        seed = seed * 1103515245u + 12345u;
        struct timespec t = {.tv_nsec = (long)(seed >> 8) % 30000000L}; /* 0 to 30 ms */
        nanosleep(&t, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        check_loads(reg, "m");
        check_loads(reg, "other");
    }
}

/* In a child: a private mount namespace with a tmpfs of `size` bytes at
 * dir, a registry holding "m" in it, then a second model that does not
 * fit. Exit 0: the write failed clearly and the registry is as it was;
 * 77: no mount namespace here; other: a failure (printed). */
static int full_disk_child(const char *dir) {
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 77;
    char reg[300], err[1024] = "", index_before[320];
    snprintf(reg, sizeof reg, "%s/reg", dir);
    /* Room for one copy of the model, not two. */
    if (mount("tmpfs", dir, "tmpfs", 0, "size=360k") != 0) return 77;
    if (write_version(reg, "m", 0.125, err, sizeof err)) {
        fprintf(stderr, "the first model does not fit: %s\n", err);
        return 1;
    }
    snprintf(index_before, sizeof index_before, "%s/index.json", reg);
    uint8_t *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    fileio_read_all(index_before, 1 << 20, &before, &nb, NULL, 0);
    moda_status s = write_version(reg, "big", 0.25, err, sizeof err);
    fileio_read_all(index_before, 1 << 20, &after, &na, NULL, 0);
    int rc = 0;
    if (s == MODA_OK) fprintf(stderr, "the second write fitted: make the tmpfs smaller\n"), rc = 1;
    else if (!strstr(err, "No space left on device")) fprintf(stderr, "unclear error: %s\n", err), rc = 1;
    else if (nb != na || memcmp(before, after, nb)) fprintf(stderr, "the index changed\n"), rc = 1;
    free(before);
    free(after);
    if (rc) return rc;
    registry *r = NULL;
    registry_model m;
    if (registry_open(reg, NULL, &r, err, sizeof err) || registry_load_model(r, "m", be, &m, err, sizeof err)) {
        fprintf(stderr, "the registry no longer loads: %s\n", err);
        return 1;
    }
    bool big = registry_find(r, "big") >= 0;
    registry_model_free(&m);
    registry_close(r);
    if (big) fprintf(stderr, "the index lists the model that did not fit\n");
    return big ? 1 : 0;
}

static void test_full_disk(void **state) {
    (void)state;
    char dir[200];
    snprintf(dir, sizeof dir, "%s/small", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(full_disk_child(dir));
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) skip(); /* not allowed to make a mount namespace here */
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_full_disk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
