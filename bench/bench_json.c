/* Parsing a v1 inference body of one 32x32 float image (1024 numbers as
 * Python's json.dumps prints them, 17 significant digits) with Jansson's
 * json_loadb, with the fast parser (api/json_fast.c) building the whole
 * tree, and with the fast parser packing "inputs" into doubles as the
 * server does, alternated.
 *
 *     bench_json [ROUNDS]     medians of ROUNDS rounds of 200 parses each */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_fast.h"

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e6 * (double)t.tv_sec + 1e-3 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    if (rounds < 1 || rounds > 1000) rounds = 15;
    /* The body: {"id":"fmnist-lenet5","inputs":[[[[v,...]x32]]]}, values
     * spread like a normalised image. */
    size_t cap = 64 << 10, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n, "{\"id\":\"fmnist-lenet5\",\"inputs\":[[[");
    unsigned seed = 1;
    for (int y = 0; y < 32; y++) {
        n += (size_t)snprintf(body + n, cap - n, "%s[", y ? "," : "");
        for (int x = 0; x < 32; x++) {
            seed = seed * 1103515245u + 12345u;
            double v = ((double)(seed >> 8) / (double)(1u << 24)) * 2.8 - 0.8;
            n += (size_t)snprintf(body + n, cap - n, "%s%.17g", x ? "," : "", v);
        }
        n += (size_t)snprintf(body + n, cap - n, "]");
    }
    n += (size_t)snprintf(body + n, cap - n, "]]]}");
    static const char *const names[3] = {"json_loadb", "json_fast_loadb", "json_fast_or_jansson_packed"};
    double times[3][1000];
    for (int r = 0; r < rounds; r++) {
        for (int which = 0; which < 3; which++) {
            double t0 = now_us();
            for (int i = 0; i < 200; i++) {
                json_error_t e;
                json_fast_packed pk = {0};
                json_t *root = which == 0   ? json_loadb(body, n, 0, &e)
                               : which == 1 ? json_fast_loadb(body, n, 0)
                                            : json_fast_or_jansson_packed(body, n, 0, "inputs", &pk, &e);
                if (!root || (which == 2 && pk.count != 1024)) {
                    fprintf(stderr, "bench_json: parse failed\n");
                    return 1;
                }
                json_decref(root);
                json_fast_packed_free(&pk);
            }
            times[which][r] = (now_us() - t0) / 200;
        }
    }
    printf("body %zu bytes, 1024 numbers; median of %d rounds:", n, rounds);
    for (int which = 0; which < 3; which++) {
        qsort(times[which], (size_t)rounds, sizeof(double), cmp);
        printf(" %s %.1f us (%.1fx)%s", names[which], times[which][rounds / 2], times[0][rounds / 2] / times[which][rounds / 2],
               which < 2 ? "," : "\n");
    }
    free(body);
    return 0;
}
