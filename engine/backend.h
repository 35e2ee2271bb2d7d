/* Backends: where tensors live and ops run. Code outside the engine holds
 * an opaque moda_backend and calls the functions below and the validated
 * ops in ops.h; the vtable behind them is in backend_impl.h, for the
 * engine and the backends themselves.
 *
 * Conventions (shared by every backend):
 * - Argument order: outputs, inputs, then parameters. Tensors are NCHW
 *   float32 in the backend's memory (host memory for the CPU backend).
 * - Backward functions write (not accumulate) every gradient they are given;
 *   a NULL gradient pointer means "not needed". The graph sums fan-in.
 * - Shapes are validated by the op wrappers in ops.h before dispatch, so a
 *   backend may assume consistent shapes.
 * - A backend instance is used by one thread at a time (its streams,
 *   scratch buffers and primitive cache are not shared); create one
 *   instance per worker thread. Ops may still use several threads inside.
 */
#ifndef MODA_BACKEND_H
#define MODA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "tensor.h"

typedef struct conv2d_params {
    int kh, kw;
    int stride_h, stride_w;
    int pad_h, pad_w; /* symmetric zero padding */
    int groups;       /* 1 = dense; == in channels = depthwise */
} conv2d_params;

typedef struct pool2d_params {
    int kh, kw;
    int stride_h, stride_w;
    int pad_h, pad_w;
} pool2d_params;

typedef struct batchnorm_params {
    float eps;      /* 1e-5 */
    float momentum; /* running = (1-m)*running + m*batch; 0.1 */
} batchnorm_params;

typedef struct moda_backend moda_backend;

/* The ops of the vtable, one per entry point a backend implements. A
 * backend runs every one of them unless it declares one unsupported (see
 * backend_supports_op); tests/test_backend_ops.c checks each against the
 * CPU backend. */
typedef enum backend_op {
    BACKEND_OP_FILL,
    BACKEND_OP_AXPY,
    BACKEND_OP_CONV2D_FWD,
    BACKEND_OP_CONV2D_BWD,
    BACKEND_OP_BATCHNORM2D_FWD_TRAIN,
    BACKEND_OP_BATCHNORM2D_FWD_EVAL,
    BACKEND_OP_BATCHNORM2D_BWD,
    BACKEND_OP_RELU_FWD,
    BACKEND_OP_RELU_BWD,
    BACKEND_OP_MAXPOOL2D_FWD,
    BACKEND_OP_MAXPOOL2D_BWD,
    BACKEND_OP_GLOBAL_AVGPOOL_FWD,
    BACKEND_OP_GLOBAL_AVGPOOL_BWD,
    BACKEND_OP_LINEAR_FWD,
    BACKEND_OP_LINEAR_BWD,
    BACKEND_OP_ADD_FWD,
    BACKEND_OP_ADD_MAPPED_FWD,
    BACKEND_OP_SOFTMAX_CE_FWD,
    BACKEND_OP_SOFTMAX_CE_BWD,
    BACKEND_OP_SGD_UPDATE,
    BACKEND_OP_MODA_TERMS, /* moda_begin, moda_layer, moda_end */
    BACKEND_OP_COUNT_
} backend_op;

const char *backend_op_name(backend_op op); /* "conv2d_fwd", ...; "?" when out of range */

/* Settings fixed when a backend is created. The engine reads no
 * environment: the programs fill these from their configuration (moda and
 * moda-server from MODA_CUDA_TF32 and MODA_CUDA_SYNC). A NULL pointer or a
 * zeroed struct gives the defaults; the CPU backend has no settings. */
typedef struct backend_options {
    bool cuda_tf32;         /* let cuDNN and cuBLAS use TF32 tensor cores; default full fp32 */
    bool cuda_sync_each_op; /* synchronise after every op, so a failing kernel shows where it fails */
} backend_options;

/* The options from the programs' settings: MODA_CUDA_TF32 and
 * MODA_CUDA_SYNC, each set only by exactly "1". lookup names how a setting
 * is read (getenv, at the programs' edges); NULL from it means unset. */
backend_options backend_options_from(char *(*lookup)(const char *name));

/* The oneDNN CPU backend; always available. NULL on failure. */
moda_backend *backend_cpu_new(void);
/* The CUDA backend on GPU `device`; NULL when built without CUDA, when no
 * such GPU exists, or when cuDNN or cuBLAS cannot start. */
moda_backend *backend_cuda_new(int device, const backend_options *opts);
bool backend_cuda_available(void); /* built with CUDA and a GPU is present */
/* By name: "cpu", "cuda" (GPU 0) or "auto" (cuda when available, else
 * cpu). NULL with a message in err when the name is unknown or the backend
 * cannot start. */
moda_backend *backend_new(const char *name, const backend_options *opts, char *err, size_t errlen);
/* Whether backend_new knows the name (a command-line check: usage error). */
bool backend_name_known(const char *name);
void backend_free(moda_backend *be); /* accepts NULL */

const char *backend_name(const moda_backend *be); /* "cpu", "cuda" */
/* true: tensors live in plain host memory and ops accept any host pointer.
 * false (CUDA): ops read only memory from backend_alloc, so host buffers
 * are copied in with backend_copy_to_device. */
bool backend_host_memory(const moda_backend *be);
/* Whether the backend runs op. An op it does not run is declared so (an
 * optional one such as the MODA terms then runs on the host); a missing
 * op that is not declared is a bug the parity test reports. */
bool backend_supports_op(moda_backend *be, backend_op op);

/* OpenMP threads that ops run with on whichever thread uses be (0:
 * OpenMP's default). Set once, when the backend is created. */
void backend_set_threads(moda_backend *be, int threads);

/* Memory in the backend's address space; NULL when out of memory. */
void *backend_alloc(moda_backend *be, size_t bytes);
void backend_dealloc(moda_backend *be, void *p); /* accepts NULL */
/* Copies between host and backend memory (plain copies on the CPU). */
moda_status backend_copy_to_device(moda_backend *be, void *dst, const void *src, size_t bytes);
moda_status backend_copy_to_host(moda_backend *be, void *dst, const void *src, size_t bytes);
/* Wait for every queued op. */
moda_status backend_synchronize(moda_backend *be);
/* A backend with memory of its own queues its ops: wait for them before
 * host code reads the results (logits, activations, parameters). */
moda_status backend_sync_for_host(moda_backend *be);
/* A hint that [p, p + bytes) is about to be used by ops; a no-op where
 * memory already sits where ops run. */
void backend_prefetch(moda_backend *be, const void *p, size_t bytes);

/* Elementwise helpers on n floats of backend memory: y = value, and
 * y += alpha * x. */
moda_status backend_fill(moda_backend *be, float *y, size_t n, float value);
moda_status backend_axpy(moda_backend *be, float *y, const float *x, size_t n, float alpha);

#endif
