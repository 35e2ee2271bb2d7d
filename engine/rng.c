#include "rng.h"

#include <math.h>

void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    rng_u32(r);
    r->state += seed;
    rng_u32(r);
}

uint32_t rng_u32(rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t rng_below(rng *r, uint32_t n) {
    if (n == 0) return 0;
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t v = rng_u32(r);
        if (v >= threshold) return v % n;
    }
}

float rng_uniform(rng *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float rng_normal(rng *r) {
    /* Box-Muller; u1 in (0,1] so the log is finite. */
    double u1 = ((double)(rng_u32(r) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void rng_fill_normal(rng *r, float *x, uint64_t n, float mean, float std) {
    for (uint64_t i = 0; i < n; i++) x[i] = mean + std * rng_normal(r);
}

void rng_fill_uniform(rng *r, float *x, uint64_t n, float lo, float hi) {
    for (uint64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(r);
}

void rng_shuffle_i32(rng *r, int32_t *x, uint32_t n) {
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = rng_below(r, i);
        int32_t t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}
