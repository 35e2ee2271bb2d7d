/* Float32 tensors of up to four dimensions (NCHW) and the slab allocator
 * that owns their storage. A tensor never owns its data: the data lives in
 * an arena (parameters, gradients, activations, optimiser state) that is
 * sized once and freed as a whole. */
#ifndef MODA_TENSOR_H
#define MODA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define TENSOR_MAX_DIMS 4

typedef struct tensor {
    float *data; /* not owned */
    int ndim;    /* 1..4 */
    int shape[TENSOR_MAX_DIMS];
} tensor;

/* A descriptor over `data` with the given shape (unused dims ignored). */
tensor tensor_make(float *data, int ndim, const int *shape);
tensor tensor_4d(float *data, int n, int c, int h, int w);
tensor tensor_2d(float *data, int n, int c);
tensor tensor_1d(float *data, int n);
size_t tensor_numel(const tensor *t);
/* MODA_OK when t is non-NULL, has data, 1..4 positive dims. */
moda_status tensor_check(const tensor *t);
/* Same dims (count and sizes). */
int tensor_same_shape(const tensor *a, const tensor *b);

struct moda_backend;

/* Bump allocator over one 64-byte-aligned slab: size it once with
 * arena_init() (arena_bytes_for() per allocation), then arena_alloc(). */
typedef struct arena {
    char *base;      /* owned */
    size_t capacity; /* bytes */
    size_t used;     /* bytes */
    struct moda_backend *be; /* whose memory base is; NULL = host heap */
} arena;

#define ARENA_ALIGN 64

moda_status arena_init(arena *a, size_t bytes); /* zero-filled */
/* The same in a backend's memory (backend_alloc); be NULL is arena_init. */
moda_status arena_init_on(arena *a, struct moda_backend *be, size_t bytes);
void arena_free(arena *a);                      /* accepts NULL */
/* n floats, 64-byte aligned; NULL when the slab is exhausted. */
float *arena_alloc(arena *a, size_t n);
void arena_reset(arena *a);
/* Bytes arena_alloc(n) consumes, alignment included. */
size_t arena_bytes_for(size_t n);

#endif
