/* Shared helpers for the cmocka tests: seeded random tensors, tolerant
 * comparison, and a finite-difference gradient check. Header-only so each
 * test is one self-contained executable. */
#ifndef MODA_TEST_UTIL_H
#define MODA_TEST_UTIL_H

#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "rng.h"

static inline float *tu_alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static inline float *tu_randn(rng *r, size_t n, float std) {
    float *p = tu_alloc(n);
    rng_fill_normal(r, p, n, 0.0f, std);
    return p;
}

/* Largest |a-b| / (atol + rtol*|b|); <= 1 means within tolerance. */
static inline double tu_err_ratio(const float *a, const float *b, size_t n, double atol, double rtol) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim * 1e300)) return INFINITY; /* NaN */
        if (d / lim > worst) worst = d / lim;
    }
    return worst;
}

#define assert_close(a, b, n, atol, rtol)                                                       \
    do {                                                                                        \
        double r_ = tu_err_ratio((a), (b), (n), (atol), (rtol));                                \
        if (!(r_ <= 1.0)) fail_msg("%s vs %s: error %.3g x tolerance", #a, #b, r_);              \
    } while (0)

/* Scalar loss of the op under test (e.g. sum(r .* y) for a fixed random r),
 * recomputed from the current inputs. */
typedef double (*tu_loss_fn)(void *ctx);

/* Compare the analytic gradient `grad` of loss w.r.t. `x` (n values) with
 * central differences at up to `max_checks` seeded positions. */
static inline void tu_fd_check(const char *what, float *x, const float *grad, size_t n, tu_loss_fn loss,
                               void *ctx, float eps, double atol, double rtol, int max_checks) {
    rng r;
    rng_seed(&r, 1234, 7);
    int checks = (size_t)max_checks < n ? max_checks : (int)n;
    for (int c = 0; c < checks; c++) {
        size_t i = (size_t)max_checks < n ? rng_below(&r, (uint32_t)n) : (size_t)c;
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double num = (lp - lm) / (2.0 * eps);
        double d = fabs(num - grad[i]);
        if (!(d <= atol + rtol * fabs(num)))
            fail_msg("%s: gradient[%zu] analytic %.6g vs numeric %.6g", what, i, grad[i], num);
    }
}

/* Keep-masks over n_layers layers of units[l] units: each unit kept with
 * probability keep, and one unit of every layer for sure. Free with
 * tu_masks_free. */
static inline bool **tu_random_masks(rng *q, int n_layers, const int *units, float keep) {
    bool **m = calloc((size_t)n_layers, sizeof(bool *));
    assert_non_null(m);
    for (int l = 0; l < n_layers; l++) {
        m[l] = calloc((size_t)units[l], sizeof(bool));
        assert_non_null(m[l]);
        for (int k = 0; k < units[l]; k++) m[l][k] = rng_uniform(q) < keep;
        m[l][rng_below(q, (uint32_t)units[l])] = true;
    }
    return m;
}

static inline void tu_masks_free(bool **m, int n_layers) {
    for (int l = 0; m && l < n_layers; l++) free(m[l]);
    free(m);
}

static inline double tu_dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Removes path and everything under it (made writable first). */
static inline void tu_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[1024];
                if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) tu_rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* The backend the tests run on: the CPU backend, the reference. NULL when
 * it cannot start. For fixtures that keep it in a field of their own, and
 * for tests that need a second one. */
static inline moda_backend *tu_backend_open(void) { return backend_cpu_new(); }
static inline void tu_backend_close(moda_backend *be) { backend_free(be); }

/* cmocka fixtures, for a group or a single test: *state is the backend. */
static inline int tu_backend_setup(void **state) {
    *state = tu_backend_open();
    return *state ? 0 : -1;
}

static inline int tu_backend_teardown(void **state) {
    tu_backend_close(*state);
    return 0;
}

/* tu_backend_setup for a group whose helpers reach the backend through a
 * file-scope pointer: *be is set as well. */
static inline int tu_backend_setup_into(void **state, moda_backend **be) {
    int rc = tu_backend_setup(state);
    *be = *state;
    return rc;
}

#endif
