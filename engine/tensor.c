#include "tensor.h"

#include "backend.h"

#include <stdlib.h>
#include <string.h>

tensor tensor_make(float *data, int ndim, const int *shape) {
    tensor t = {.data = data, .ndim = ndim};
    for (int i = 0; i < ndim && i < TENSOR_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

tensor tensor_4d(float *data, int n, int c, int h, int w) {
    return (tensor){.data = data, .ndim = 4, .shape = {n, c, h, w}};
}

tensor tensor_2d(float *data, int n, int c) {
    return (tensor){.data = data, .ndim = 2, .shape = {n, c}};
}

tensor tensor_1d(float *data, int n) {
    return (tensor){.data = data, .ndim = 1, .shape = {n}};
}

size_t tensor_numel(const tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

moda_status tensor_check(const tensor *t) {
    if (!t || !t->data) return MODA_ERR_NULL;
    if (t->ndim < 1 || t->ndim > TENSOR_MAX_DIMS) return MODA_ERR_SHAPE;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] <= 0) return MODA_ERR_SHAPE;
    return MODA_OK;
}

int tensor_same_shape(const tensor *a, const tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

size_t arena_bytes_for(size_t n) {
    size_t bytes = n * sizeof(float);
    return (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

moda_status arena_init_on(arena *a, struct moda_backend *be, size_t bytes) {
    if (!a) return MODA_ERR_NULL;
    a->used = 0;
    a->capacity = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    a->base = NULL;
    a->be = be;
    if (a->capacity == 0) return MODA_OK;
    a->base = be ? backend_alloc(be, a->capacity) : aligned_alloc(ARENA_ALIGN, a->capacity);
    if (!a->base) {
        a->capacity = 0;
        return MODA_ERR_NOMEM;
    }
    if (!be) {
        memset(a->base, 0, a->capacity);
        return MODA_OK;
    }
    /* Host code writes initial values next: the fill must be done first. */
    moda_status s = backend_fill(be, (float *)a->base, a->capacity / sizeof(float), 0.0f);
    if (s == MODA_OK) s = backend_synchronize(be);
    if (s != MODA_OK) arena_free(a);
    return s;
}

moda_status arena_init(arena *a, size_t bytes) { return arena_init_on(a, NULL, bytes); }

void arena_free(arena *a) {
    if (!a) return;
    if (a->be)
        backend_dealloc(a->be, a->base);
    else
        free(a->base);
    a->base = NULL;
    a->be = NULL;
    a->capacity = a->used = 0;
}

float *arena_alloc(arena *a, size_t n) {
    size_t bytes = arena_bytes_for(n);
    if (!a || !a->base || a->used + bytes > a->capacity) return NULL;
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    return p;
}

void arena_reset(arena *a) {
    if (a) a->used = 0;
}
