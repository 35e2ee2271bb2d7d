/* Small deterministic PRNG (PCG32) so a seed fixes every random choice:
 * initialisation, shuffling, augmentation. */
#ifndef MODA_RNG_H
#define MODA_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t state;
    uint64_t inc;
} rng;

void rng_seed(rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(rng *r);
uint32_t rng_below(rng *r, uint32_t n); /* uniform in [0, n), unbiased */
float rng_uniform(rng *r);              /* [0, 1) */
float rng_normal(rng *r);               /* N(0, 1), Box-Muller */
void rng_fill_normal(rng *r, float *x, uint64_t n, float mean, float std);
void rng_fill_uniform(rng *r, float *x, uint64_t n, float lo, float hi);
void rng_shuffle_i32(rng *r, int32_t *x, uint32_t n); /* Fisher-Yates */

#endif
