/* A cache of freed managed-memory blocks. Composing a model per request or
 * per subset allocates and frees parameter and activation arenas of
 * similar sizes over and over; cudaMallocManaged and cudaFree cost far
 * more than reusing a block, and a reused block's pages are already on
 * the device. */
#include <pthread.h>
#include <stdlib.h>

#include "cuda_internal.h"

typedef struct pool_block {
    void *p;
    size_t bytes;
} pool_block;

struct cuda_pool {
    pthread_mutex_t mu; /* a model may be freed on another thread than it was made on */
    pool_block *live, *spare; /* handed out; freed and kept, oldest first */
    int n_live, cap_live, n_spare, cap_spare;
    size_t spare_bytes, keep_max;
};

cuda_pool *cuda_pool_new(size_t keep_max) {
    cuda_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    p->keep_max = keep_max;
    return p;
}

static bool push(pool_block **list, int *n, int *cap, pool_block b) {
    if (*n == *cap) {
        int grown = *cap ? 2 * *cap : 16;
        pool_block *l = realloc(*list, (size_t)grown * sizeof(**list));
        if (!l) return false;
        *list = l;
        *cap = grown;
    }
    (*list)[(*n)++] = b;
    return true;
}

static pool_block take(pool_block *list, int *n, int i) {
    pool_block b = list[i];
    for (int j = i + 1; j < *n; j++) list[j - 1] = list[j];
    (*n)--;
    return b;
}

/* Hands spare blocks back to CUDA, oldest first, until at most keep bytes
 * stay. Call with the lock held. */
static void trim(cuda_pool *p, size_t keep) {
    if (p->spare_bytes <= keep) return;
    cudaDeviceSynchronize(); /* queued ops may still use them */
    while (p->n_spare && p->spare_bytes > keep) {
        pool_block b = take(p->spare, &p->n_spare, 0);
        p->spare_bytes -= b.bytes;
        cudaFree(b.p);
    }
}

void *cuda_pool_alloc(cuda_pool *p, size_t bytes) {
    if (!bytes) bytes = 64;
    pthread_mutex_lock(&p->mu);
    /* The smallest spare that fits, if it wastes less than the request. */
    int best = -1;
    for (int i = 0; i < p->n_spare; i++)
        if (p->spare[i].bytes >= bytes && p->spare[i].bytes / 2 <= bytes &&
            (best < 0 || p->spare[i].bytes < p->spare[best].bytes))
            best = i;
    pool_block b = {NULL, bytes};
    if (best >= 0) {
        b = take(p->spare, &p->n_spare, best);
        p->spare_bytes -= b.bytes;
        /* The previous owner's queued ops may still use it, and the new
         * owner may write it from the host at once. */
        cudaDeviceSynchronize();
    } else if (cudaMallocManaged(&b.p, bytes, cudaMemAttachGlobal) != cudaSuccess) {
        cudaGetLastError();
        trim(p, 0); /* the cache may be what fills the device */
        if (cudaMallocManaged(&b.p, bytes, cudaMemAttachGlobal) != cudaSuccess) {
            cudaGetLastError();
            b.p = NULL;
        }
    }
    if (b.p && !push(&p->live, &p->n_live, &p->cap_live, b)) {
        cudaFree(b.p);
        b.p = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    return b.p;
}

void cuda_pool_free(cuda_pool *p, void *ptr) {
    if (!ptr) return;
    pthread_mutex_lock(&p->mu);
    int i = p->n_live - 1; /* the newest blocks are freed first, mostly */
    while (i >= 0 && p->live[i].p != ptr) i--;
    if (i >= 0) {
        pool_block b = take(p->live, &p->n_live, i);
        if (b.bytes <= p->keep_max && push(&p->spare, &p->n_spare, &p->cap_spare, b)) {
            p->spare_bytes += b.bytes;
            trim(p, p->keep_max);
        } else {
            cudaDeviceSynchronize();
            cudaFree(b.p);
        }
    } else { /* not from this pool */
        cudaDeviceSynchronize();
        cudaFree(ptr);
    }
    pthread_mutex_unlock(&p->mu);
}

void cuda_pool_destroy(cuda_pool *p) {
    if (!p) return;
    trim(p, 0);
    cudaDeviceSynchronize();
    for (int i = 0; i < p->n_live; i++) cudaFree(p->live[i].p); /* left by their owners */
    free(p->live);
    free(p->spare);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
