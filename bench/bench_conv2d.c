/* conv2d throughput on the CPU backend, the counterpart of conv2d_torch.py.
 *
 * Forward: conv2d_fwd with bias. Backward: conv2d_bwd writing dx, dw and db
 * (backward-data + backward-weights, counted as 2x the forward FLOPs).
 * FLOPs = 2*N*K*C*Ho*Wo*kh*kw/groups. Reported: median of timed reps after
 * warm-up, through the public op entry points with plain NCHW tensors.
 *
 * Usage: bench_conv2d [--reps N] [--warmup N] [--shape I] [--json]
 *   --shape I runs only the I-th shape (0-based) of the table below;
 *   --json prints one JSON object per shape, one per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"
#include "rng.h"

typedef struct bench_shape {
    int n, c, h, k, ks, stride, pad;
} bench_shape;

/* C->C channels, 3x3, pad 1, stride 1, batch 64. */
static const bench_shape shapes[] = {
    {64, 64, 32, 64, 3, 1, 1},
    {64, 128, 16, 128, 3, 1, 1},
    {64, 256, 8, 256, 3, 1, 1},
    {64, 512, 4, 512, 3, 1, 1},
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *alloc_randn(rng *r, size_t n, float std) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    rng_fill_normal(r, p, n, 0.0f, std);
    return p;
}

static void check(moda_status s, const char *what) {
    if (s != MODA_OK) {
        fprintf(stderr, "%s failed: %s\n", what, moda_status_string(s));
        exit(1);
    }
}

int main(int argc, char **argv) {
    int reps = 10, warmup = 3, json = 0, only = -1;
    const int n_shapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            warmup = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            only = atoi(argv[++i]);
            if (only < 0 || only >= n_shapes) {
                fprintf(stderr, "--shape: 0..%d\n", n_shapes - 1);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--warmup N] [--shape I] [--json]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (warmup < 0) warmup = 0;

    moda_backend *be = backend_cpu_new();
    if (!be) {
        fprintf(stderr, "cannot create the CPU backend\n");
        return 1;
    }
    double *times = malloc((size_t)reps * sizeof(double));
    if (!times) return 1;
    if (!json) printf("%-28s %8s %9s %8s %9s\n", "shape", "fwd ms", "fwd GF/s", "bwd ms", "bwd GF/s");

    rng r;
    rng_seed(&r, 42, 0);
    for (int si = 0; si < n_shapes; si++) {
        if (only >= 0 && si != only) continue;
        const bench_shape *s = &shapes[si];
        const conv2d_params p = {s->ks, s->ks, s->stride, s->stride, s->pad, s->pad, 1};
        const int ho = conv_out_size(s->h, s->ks, s->stride, s->pad);
        const size_t nx = (size_t)s->n * s->c * s->h * s->h, nw = (size_t)s->k * s->c * s->ks * s->ks,
                     ny = (size_t)s->n * s->k * ho * ho;
        float *xd = alloc_randn(&r, nx, 1.0f), *wd = alloc_randn(&r, nw, 0.05f),
              *bd = alloc_randn(&r, (size_t)s->k, 0.1f), *yd = alloc_randn(&r, ny, 1.0f),
              *dyd = alloc_randn(&r, ny, 1.0f), *dxd = alloc_randn(&r, nx, 1.0f),
              *dwd = alloc_randn(&r, nw, 1.0f), *dbd = alloc_randn(&r, (size_t)s->k, 1.0f);
        tensor x = tensor_4d(xd, s->n, s->c, s->h, s->h), w = tensor_4d(wd, s->k, s->c, s->ks, s->ks),
               b = tensor_1d(bd, s->k), y = tensor_4d(yd, s->n, s->k, ho, ho),
               dy = tensor_4d(dyd, s->n, s->k, ho, ho), dx = tensor_4d(dxd, s->n, s->c, s->h, s->h),
               dw = tensor_4d(dwd, s->k, s->c, s->ks, s->ks), db = tensor_1d(dbd, s->k);
        const double flops = 2.0 * s->n * s->k * s->c * ho * ho * s->ks * s->ks;

        for (int i = 0; i < warmup; i++) check(conv2d_fwd(be, &y, &x, &w, &b, &p), "conv2d_fwd");
        for (int i = 0; i < reps; i++) {
            const double t0 = now_s();
            check(conv2d_fwd(be, &y, &x, &w, &b, &p), "conv2d_fwd");
            times[i] = now_s() - t0;
        }
        const double t_f = median(times, reps);
        for (int i = 0; i < warmup; i++) check(conv2d_bwd(be, &dx, &dw, &db, &dy, &x, &w, &p), "conv2d_bwd");
        for (int i = 0; i < reps; i++) {
            const double t0 = now_s();
            check(conv2d_bwd(be, &dx, &dw, &db, &dy, &x, &w, &p), "conv2d_bwd");
            times[i] = now_s() - t0;
        }
        const double t_b = median(times, reps);

        char name[64];
        snprintf(name, sizeof(name), "N%d C%d H%d K%d %dx%d s%d p%d", s->n, s->c, s->h, s->k, s->ks, s->ks,
                 s->stride, s->pad);
        if (json)
            printf("{\"impl\": \"moda\", \"shape\": \"%s\", \"n\": %d, \"c\": %d, \"h\": %d, \"k\": %d, "
                   "\"fwd_ms\": %.3f, \"bwd_ms\": %.3f, \"fwd_gflops\": %.2f, \"bwd_gflops\": %.2f}\n",
                   name, s->n, s->c, s->h, s->k, t_f * 1e3, t_b * 1e3, flops / t_f / 1e9,
                   2.0 * flops / t_b / 1e9);
        else
            printf("%-28s %8.2f %9.1f %8.2f %9.1f\n", name, t_f * 1e3, flops / t_f / 1e9, t_b * 1e3,
                   2.0 * flops / t_b / 1e9);
        fflush(stdout);
        free(xd);
        free(wd);
        free(bd);
        free(yd);
        free(dyd);
        free(dxd);
        free(dwd);
        free(dbd);
    }
    free(times);
    backend_free(be);
    return 0;
}
