/* Choosing a backend by name, the CUDA entry points of a build without
 * CUDA, and the thin wrappers through which code outside the engine
 * reaches the vtable. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "backend_impl.h"

/* Set only by exactly "1", as documented. */
static bool setting_is_one(char *(*lookup)(const char *), const char *name) {
    const char *v = lookup(name);
    return v && strcmp(v, "1") == 0;
}

backend_options backend_options_from(char *(*lookup)(const char *name)) {
    return (backend_options){
        .cuda_tf32 = setting_is_one(lookup, "MODA_CUDA_TF32"),
        .cuda_sync_each_op = setting_is_one(lookup, "MODA_CUDA_SYNC"),
    };
}

#ifndef MODA_HAVE_CUDA
moda_backend *backend_cuda_new(int device, const backend_options *opts) {
    (void)device;
    (void)opts;
    return NULL;
}

bool backend_cuda_available(void) { return false; }
#endif

bool backend_name_known(const char *name) {
    return name && (strcmp(name, "cpu") == 0 || strcmp(name, "cuda") == 0 || strcmp(name, "auto") == 0);
}

moda_backend *backend_new(const char *name, const backend_options *opts, char *err, size_t errlen) {
    if (!name || strcmp(name, "auto") == 0) name = backend_cuda_available() ? "cuda" : "cpu";
    moda_backend *be = NULL;
    if (strcmp(name, "cpu") == 0) {
        be = backend_cpu_new();
        if (!be) snprintf(err, errlen, "the CPU backend could not start (out of memory?)");
    } else if (strcmp(name, "cuda") == 0) {
#ifdef MODA_HAVE_CUDA
        be = backend_cuda_new(0, opts);
        if (!be) snprintf(err, errlen, "the CUDA backend could not start: no usable GPU, or cuDNN/cuBLAS failed");
#else
        (void)opts;
        snprintf(err, errlen, "this build has no CUDA backend (configure with -DMODA_CUDA=ON)");
#endif
    } else {
        snprintf(err, errlen, "unknown device '%s' (expected cpu, cuda or auto)", name);
    }
    return be;
}

void backend_free(moda_backend *be) {
    if (be) be->destroy(be);
}

static const char *const OP_NAMES[BACKEND_OP_COUNT_] = {
    [BACKEND_OP_FILL] = "fill",
    [BACKEND_OP_AXPY] = "axpy",
    [BACKEND_OP_CONV2D_FWD] = "conv2d_fwd",
    [BACKEND_OP_CONV2D_BWD] = "conv2d_bwd",
    [BACKEND_OP_BATCHNORM2D_FWD_TRAIN] = "batchnorm2d_fwd_train",
    [BACKEND_OP_BATCHNORM2D_FWD_EVAL] = "batchnorm2d_fwd_eval",
    [BACKEND_OP_BATCHNORM2D_BWD] = "batchnorm2d_bwd",
    [BACKEND_OP_RELU_FWD] = "relu_fwd",
    [BACKEND_OP_RELU_BWD] = "relu_bwd",
    [BACKEND_OP_MAXPOOL2D_FWD] = "maxpool2d_fwd",
    [BACKEND_OP_MAXPOOL2D_BWD] = "maxpool2d_bwd",
    [BACKEND_OP_GLOBAL_AVGPOOL_FWD] = "global_avgpool_fwd",
    [BACKEND_OP_GLOBAL_AVGPOOL_BWD] = "global_avgpool_bwd",
    [BACKEND_OP_LINEAR_FWD] = "linear_fwd",
    [BACKEND_OP_LINEAR_BWD] = "linear_bwd",
    [BACKEND_OP_ADD_FWD] = "add_fwd",
    [BACKEND_OP_ADD_MAPPED_FWD] = "add_mapped_fwd",
    [BACKEND_OP_SOFTMAX_CE_FWD] = "softmax_ce_fwd",
    [BACKEND_OP_SOFTMAX_CE_BWD] = "softmax_ce_bwd",
    [BACKEND_OP_SGD_UPDATE] = "sgd_update",
    [BACKEND_OP_MODA_TERMS] = "moda_terms",
};

const char *backend_op_name(backend_op op) {
    return op >= 0 && op < BACKEND_OP_COUNT_ && OP_NAMES[op] ? OP_NAMES[op] : "?";
}

const char *backend_name(const moda_backend *be) { return be ? be->name : ""; }

bool backend_host_memory(const moda_backend *be) { return be && be->host_memory; }

bool backend_supports_op(moda_backend *be, backend_op op) {
    if (!be || op < 0 || op >= BACKEND_OP_COUNT_) return false;
    return be->supports_op ? be->supports_op(be, op) : true;
}

void backend_set_threads(moda_backend *be, int threads) {
    if (be) be->threads = threads > 0 ? threads : 0;
}

void backend_bind_threads(moda_backend *be) {
    if (be->threads > 0 && omp_get_max_threads() != be->threads) omp_set_num_threads(be->threads);
}

void *backend_alloc(moda_backend *be, size_t bytes) { return be ? be->alloc(be, bytes) : NULL; }

void backend_dealloc(moda_backend *be, void *p) {
    if (be && p) be->free(be, p);
}

moda_status backend_copy_to_device(moda_backend *be, void *dst, const void *src, size_t bytes) {
    if (!be) return MODA_ERR_NULL;
    return be->copy_to_device(be, dst, src, bytes);
}

moda_status backend_copy_to_host(moda_backend *be, void *dst, const void *src, size_t bytes) {
    if (!be) return MODA_ERR_NULL;
    return be->copy_to_host(be, dst, src, bytes);
}

moda_status backend_synchronize(moda_backend *be) { return be ? be->synchronize(be) : MODA_ERR_NULL; }

moda_status backend_sync_for_host(moda_backend *be) {
    if (!be) return MODA_ERR_NULL;
    return be->host_memory ? MODA_OK : be->synchronize(be);
}

void backend_prefetch(moda_backend *be, const void *p, size_t bytes) {
    if (be && be->prefetch) be->prefetch(be, p, bytes);
}

moda_status backend_fill(moda_backend *be, float *y, size_t n, float value) {
    if (!be || (n && !y)) return MODA_ERR_NULL;
    return be->fill(be, y, n, value);
}

moda_status backend_axpy(moda_backend *be, float *y, const float *x, size_t n, float alpha) {
    if (!be || (n && (!y || !x))) return MODA_ERR_NULL;
    return be->axpy(be, y, x, n, alpha);
}
