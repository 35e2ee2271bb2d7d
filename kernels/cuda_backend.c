/* The CUDA backend: cuDNN for convolution and batch norm, cuBLAS for the
 * linear layers and axpy, our own kernels (cuda_kernels.cu) for the rest.
 *
 * Memory is CUDA managed memory. The graph, the trainer, checkpoints,
 * composition and decomposition all read and write parameters from host
 * code, and managed memory lets every one of those paths work unchanged;
 * the per-step traffic (inputs, labels, MODA's per-layer matrices) goes
 * through explicit copies instead. Freed blocks are kept for reuse
 * (cuda_pool.c), and planned arenas are prefetched to the device.
 *
 * Ops are queued in order on the legacy default stream and return at once.
 * Host code may touch managed memory only after a synchronize: the graph
 * calls it at the end of every forward and backward pass and the optimiser
 * after its step, and the blocking copies (cudaMemcpy) order themselves.
 * The option cuda_sync_each_op (MODA_CUDA_SYNC=1 for the programs)
 * synchronises after every op instead, to find a failing kernel.
 *
 * Convolutions run in full fp32 (CUDNN_FMA_MATH) by default, so results
 * agree with the CPU backend to rounding; the option cuda_tf32
 * (MODA_CUDA_TF32=1) lets cuDNN and cuBLAS use TF32 tensor cores instead. */
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cudnn.h>

#include "backend_impl.h"
#include "cuda_internal.h"

#define CONV_CACHE_MAX 256
/* Freed memory kept for reuse, as a share of the device's memory. */
#define POOL_KEEP_SHARE 8

typedef struct conv_key {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, groups;
} conv_key;

typedef struct conv_desc {
    cudnnTensorDescriptor_t x, y, b;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
} conv_desc;

/* Per shape: the descriptors and the chosen algorithms, made once. */
typedef struct conv_algos {
    conv_key key;
    conv_desc d;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t fwd_ws, bwd_data_ws, bwd_filter_ws;
    bool have_bwd; /* backward algorithms are picked on the first backward pass */
} conv_algos;

typedef struct cuda_ctx {
    int device;
    cuda_pool *pool; /* every alloc() */
    bool tf32;
    bool sync_every_op; /* backend_options.cuda_sync_each_op: find a failing kernel */
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    void *ws; /* cuDNN workspace, device memory */
    size_t ws_bytes;
    float *tmp; /* small scratch: BN statistics, unwanted gradients */
    size_t tmp_bytes;
    int32_t *labels; /* device copy of the batch's labels */
    int labels_cap;
    float *row_loss; /* (labels_cap) */
    float *host_row_loss;
    conv_algos *algos;
    int n_algos, next_evict;
    /* MODA terms: per batch labels and pair counts, per layer scratch. */
    int32_t *mz_labels;
    double *mz_acc; /* (3): sums over layers of aff, dis, com */
    float *mz_zn, *mz_norm, *mz_s, *mz_w;
    size_t mz_labels_bytes, mz_zn_bytes, mz_norm_bytes, mz_s_bytes, mz_w_bytes;
    int mz_b;
    long mz_same, mz_diff;
} cuda_ctx;

static cuda_ctx *ctx_of(moda_backend *be) { return (cuda_ctx *)be->ctx; }

static moda_status cuda_fail(const char *what, const char *why) {
    fprintf(stderr, "cuda backend: %s: %s\n", what, why);
    return MODA_ERR_BACKEND;
}

#define CUDA_TRY(call)                                                                  \
    do {                                                                                \
        cudaError_t e_ = (call);                                                        \
        if (e_ != cudaSuccess) return cuda_fail(#call, cudaGetErrorString(e_));         \
    } while (0)
#define CUDNN_TRY(call)                                                                 \
    do {                                                                                \
        cudnnStatus_t e_ = (call);                                                      \
        if (e_ != CUDNN_STATUS_SUCCESS) return cuda_fail(#call, cudnnGetErrorString(e_)); \
    } while (0)
#define CUBLAS_TRY(call)                                                                \
    do {                                                                                \
        cublasStatus_t e_ = (call);                                                     \
        if (e_ != CUBLAS_STATUS_SUCCESS) return cuda_fail(#call, cublasGetStatusString(e_)); \
    } while (0)

/* Launch errors surface here; execution errors at the next synchronize. */
static moda_status done(moda_backend *be) {
    CUDA_TRY(cudaGetLastError());
    if (ctx_of(be)->sync_every_op) CUDA_TRY(cudaDeviceSynchronize());
    return MODA_OK;
}

/* ---- memory ------------------------------------------------------------ */

static void *cu_alloc(moda_backend *be, size_t bytes) { return cuda_pool_alloc(ctx_of(be)->pool, bytes); }

static void cu_free(moda_backend *be, void *p) { cuda_pool_free(ctx_of(be)->pool, p); }

static moda_status cu_copy(moda_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (!bytes) return MODA_OK;
    if (!dst || !src) return MODA_ERR_NULL;
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    return MODA_OK;
}

static void cu_prefetch(moda_backend *be, const void *p, size_t bytes) {
    if (!p || !bytes) return;
    struct cudaMemLocation to = {.type = cudaMemLocationTypeDevice, .id = ctx_of(be)->device};
    /* Only a hint: a device without managed-memory prefetch still works. */
    if (cudaMemPrefetchAsync(p, bytes, to, 0, 0) != cudaSuccess) cudaGetLastError();
}

static moda_status cu_synchronize(moda_backend *be) {
    (void)be;
    CUDA_TRY(cudaDeviceSynchronize());
    return MODA_OK;
}

/* Device scratch that grows; the previous contents are not kept. Queued
 * ops may still read the old buffer, so the device finishes first. */
static moda_status grow(void **buf, size_t *have, size_t need) {
    if (need <= *have) return MODA_OK;
    CUDA_TRY(cudaDeviceSynchronize());
    if (*buf) cudaFree(*buf);
    *buf = NULL;
    *have = 0;
    CUDA_TRY(cudaMalloc(buf, need));
    *have = need;
    return MODA_OK;
}

static moda_status tmp_floats(cuda_ctx *c, size_t n, float **out) {
    MODA_TRY(grow((void **)&c->tmp, &c->tmp_bytes, n * sizeof(float)));
    *out = c->tmp;
    return MODA_OK;
}

/* ---- elementwise ------------------------------------------------------- */

static moda_status cu_fill(moda_backend *be, float *y, size_t n, float v) {
    (void)be;
    CUDA_TRY(cuda_k_fill(y, n, v));
    return done(be);
}

static moda_status cu_axpy(moda_backend *be, float *y, const float *x, size_t n, float alpha) {
    cuda_ctx *c = ctx_of(be);
    /* cuBLAS counts in int; split larger vectors. */
    for (size_t off = 0; off < n;) {
        int m = n - off > (size_t)1 << 30 ? 1 << 30 : (int)(n - off);
        CUBLAS_TRY(cublasSaxpy(c->blas, m, &alpha, x + off, 1, y + off, 1));
        off += (size_t)m;
    }
    return done(be);
}

static moda_status cu_relu_fwd(moda_backend *be, tensor *y, const tensor *x) {
    (void)be;
    CUDA_TRY(cuda_k_relu_fwd(y->data, x->data, tensor_numel(x)));
    return done(be);
}

static moda_status cu_relu_bwd(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y) {
    (void)be;
    CUDA_TRY(cuda_k_relu_bwd(dx->data, dy->data, y->data, tensor_numel(y)));
    return done(be);
}

static moda_status cu_add_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b) {
    (void)be;
    CUDA_TRY(cuda_k_add(y->data, a->data, b->data, tensor_numel(y)));
    return done(be);
}

static moda_status cu_add_mapped_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b,
                                     const tensor *map_a, const tensor *map_b) {
    size_t plane = 1;
    for (int d = 2; d < y->ndim; d++) plane *= (size_t)y->shape[d];
    CUDA_TRY(cuda_k_add_mapped(y->data, a->data, b->data, map_a->data, map_b->data, y->shape[0], y->shape[1],
                               a->shape[1], b->shape[1], plane));
    return done(be);
}

static moda_status cu_gap_fwd(moda_backend *be, tensor *y, const tensor *x) {
    (void)be;
    CUDA_TRY(cuda_k_gap_fwd(y->data, x->data, x->shape[0] * x->shape[1], x->shape[2] * x->shape[3]));
    return done(be);
}

static moda_status cu_gap_bwd(moda_backend *be, tensor *dx, const tensor *dy) {
    (void)be;
    CUDA_TRY(cuda_k_gap_bwd(dx->data, dy->data, dx->shape[0] * dx->shape[1], dx->shape[2] * dx->shape[3]));
    return done(be);
}

static size_t cu_maxpool_ws_bytes(moda_backend *be, const tensor *y) {
    (void)be;
    return tensor_numel(y) * sizeof(int32_t);
}

static moda_status cu_maxpool_fwd(moda_backend *be, tensor *y, void *ws, const tensor *x, const pool2d_params *p) {
    (void)be;
    CUDA_TRY(cuda_k_maxpool_fwd(y->data, ws, x->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3],
                                y->shape[2], y->shape[3], p->kh, p->kw, p->stride_h, p->stride_w, p->pad_h,
                                p->pad_w));
    return done(be);
}

static moda_status cu_maxpool_bwd(moda_backend *be, tensor *dx, const tensor *dy, const void *ws,
                                  const pool2d_params *p) {
    (void)be;
    (void)p;
    CUDA_TRY(cuda_k_fill(dx->data, tensor_numel(dx), 0.0f));
    CUDA_TRY(cuda_k_maxpool_bwd(dx->data, dy->data, ws, dx->shape[0] * dx->shape[1], dx->shape[2] * dx->shape[3],
                                dy->shape[2] * dy->shape[3]));
    return done(be);
}

static moda_status labels_to_device(cuda_ctx *c, const int32_t *labels, int n) {
    if (n > c->labels_cap) {
        CUDA_TRY(cudaDeviceSynchronize());
        cudaFree(c->labels);
        cudaFree(c->row_loss);
        free(c->host_row_loss);
        c->labels = NULL;
        c->row_loss = c->host_row_loss = NULL;
        c->labels_cap = 0;
        CUDA_TRY(cudaMalloc((void **)&c->labels, (size_t)n * sizeof(int32_t)));
        CUDA_TRY(cudaMalloc((void **)&c->row_loss, (size_t)n * sizeof(float)));
        c->host_row_loss = malloc((size_t)n * sizeof(float));
        if (!c->host_row_loss) return MODA_ERR_NOMEM;
        c->labels_cap = n;
    }
    CUDA_TRY(cudaMemcpy(c->labels, labels, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice));
    return MODA_OK;
}

static moda_status cu_softmax_ce_fwd(moda_backend *be, float *loss, tensor *probs, const tensor *logits,
                                     const int32_t *labels) {
    cuda_ctx *c = ctx_of(be);
    int n = logits->shape[0], k = logits->shape[1];
    MODA_TRY(labels_to_device(c, labels, n));
    CUDA_TRY(cuda_k_softmax_ce_fwd(probs->data, c->row_loss, logits->data, c->labels, n, k));
    CUDA_TRY(cudaMemcpy(c->host_row_loss, c->row_loss, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    double total = 0.0;
    for (int i = 0; i < n; i++) total += c->host_row_loss[i];
    *loss = (float)(total / n);
    return done(be);
}

static moda_status cu_softmax_ce_bwd(moda_backend *be, tensor *dlogits, const tensor *probs,
                                     const int32_t *labels, float scale) {
    cuda_ctx *c = ctx_of(be);
    int n = probs->shape[0], k = probs->shape[1];
    MODA_TRY(labels_to_device(c, labels, n));
    CUDA_TRY(cuda_k_softmax_ce_bwd(dlogits->data, probs->data, c->labels, n, k, scale / (float)n));
    return done(be);
}

static moda_status cu_sgd(moda_backend *be, float *param, float *velocity, const float *grad, size_t n, float lr,
                          float momentum, float weight_decay, bool nesterov) {
    (void)be;
    CUDA_TRY(cuda_k_sgd(param, velocity, grad, n, lr, momentum, weight_decay, nesterov));
    return done(be);
}

/* ---- linear (cuBLAS) ----------------------------------------------------
 * Row-major X (N,I) and W (O,I) are column-major X^T and W^T, so
 * Y^T (O,N) = W (O,I) X^T (I,N) is gemm(T, N) on the stored arrays. */

static moda_status cu_linear_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    cuda_ctx *c = ctx_of(be);
    int n = x->shape[0], in = x->shape[1], out = w->shape[0];
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_TRY(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w->data, in, x->data, in, &zero,
                           y->data, out));
    if (b) CUDA_TRY(cuda_k_add_row_bias(y->data, b->data, n, out));
    return done(be);
}

static moda_status cu_linear_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                                 const tensor *x, const tensor *w) {
    cuda_ctx *c = ctx_of(be);
    int n = x->shape[0], in = x->shape[1], out = w->shape[0];
    const float one = 1.0f, zero = 0.0f;
    /* dX^T (I,N) = W^T (I,O) dY^T (O,N) */
    if (dx)
        CUBLAS_TRY(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w->data, in, dy->data, out,
                               &zero, dx->data, in));
    /* dW^T (I,O) = X^T (I,N) dY (N,O) */
    if (dw)
        CUBLAS_TRY(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x->data, in, dy->data, out,
                               &zero, dw->data, in));
    if (db) {
        /* db = dY^T 1: a gemv over the (O,N) column-major view of dY. */
        float *ones;
        MODA_TRY(tmp_floats(c, (size_t)n, &ones));
        CUDA_TRY(cuda_k_fill(ones, (size_t)n, 1.0f));
        CUBLAS_TRY(cublasSgemv(c->blas, CUBLAS_OP_N, out, n, &one, dy->data, out, ones, 1, &zero, db->data, 1));
    }
    return done(be);
}

/* ---- convolution (cuDNN) ----------------------------------------------- */

static void conv_desc_free(conv_desc *d) {
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->y) cudnnDestroyTensorDescriptor(d->y);
    if (d->b) cudnnDestroyTensorDescriptor(d->b);
    if (d->w) cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
}

static moda_status conv_desc_make(cuda_ctx *c, conv_desc *d, const tensor *x, const tensor *w, const tensor *y,
                                  const conv2d_params *p) {
    memset(d, 0, sizeof(*d));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&d->x));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&d->y));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&d->b));
    CUDNN_TRY(cudnnCreateFilterDescriptor(&d->w));
    CUDNN_TRY(cudnnCreateConvolutionDescriptor(&d->conv));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, x->shape[0], x->shape[1],
                                         x->shape[2], x->shape[3]));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, y->shape[0], y->shape[1],
                                         y->shape[2], y->shape[3]));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(d->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, y->shape[1], 1, 1));
    CUDNN_TRY(cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, w->shape[0], w->shape[1],
                                         w->shape[2], w->shape[3]));
    CUDNN_TRY(cudnnSetConvolution2dDescriptor(d->conv, p->pad_h, p->pad_w, p->stride_h, p->stride_w, 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_TRY(cudnnSetConvolutionGroupCount(d->conv, p->groups));
    CUDNN_TRY(cudnnSetConvolutionMathType(d->conv, c->tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    return MODA_OK;
}

/* The heuristics' first workable choice, preferring deterministic ones. */
#define PICK_ALGO(results, count, out, ws)                                                      \
    do {                                                                                        \
        int pick_ = -1;                                                                         \
        for (int i_ = 0; i_ < (count) && pick_ < 0; i_++)                                       \
            if ((results)[i_].status == CUDNN_STATUS_SUCCESS &&                                 \
                (results)[i_].determinism == CUDNN_DETERMINISTIC)                               \
                pick_ = i_;                                                                     \
        for (int i_ = 0; i_ < (count) && pick_ < 0; i_++)                                       \
            if ((results)[i_].status == CUDNN_STATUS_SUCCESS) pick_ = i_;                       \
        if (pick_ < 0) return cuda_fail("convolution", "cuDNN offers no algorithm for this shape"); \
        (out) = (results)[pick_].algo;                                                          \
        (ws) = (results)[pick_].memory;                                                         \
    } while (0)

static moda_status pick_fwd(cuda_ctx *c, conv_algos *a) {
    const conv_desc *d = &a->d;
    int count = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, d->x, d->w, d->conv, d->y,
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, fwd));
    PICK_ALGO(fwd, count, a->fwd, a->fwd_ws);
    /* The heuristics' memory figures are estimates: ask for the exact size. */
    CUDNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(c->dnn, d->x, d->w, d->conv, d->y, a->fwd, &a->fwd_ws));
    return MODA_OK;
}

/* Separate from pick_fwd because inference never needs them, and composed
 * models bring many new shapes, each a heuristics query. */
static moda_status pick_bwd(cuda_ctx *c, conv_algos *a) {
    const conv_desc *d = &a->d;
    int count = 0;
    cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, d->w, d->y, d->conv, d->x,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, bd));
    PICK_ALGO(bd, count, a->bwd_data, a->bwd_data_ws);
    cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->dnn, d->x, d->y, d->conv, d->w,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, bf));
    PICK_ALGO(bf, count, a->bwd_filter, a->bwd_filter_ws);
    CUDNN_TRY(cudnnGetConvolutionBackwardDataWorkspaceSize(c->dnn, d->w, d->y, d->conv, d->x, a->bwd_data,
                                                           &a->bwd_data_ws));
    CUDNN_TRY(cudnnGetConvolutionBackwardFilterWorkspaceSize(c->dnn, d->x, d->y, d->conv, d->w, a->bwd_filter,
                                                             &a->bwd_filter_ws));
    a->have_bwd = true;
    return MODA_OK;
}

/* The cache entry for this shape, made on first use. */
static moda_status conv_algos_for(cuda_ctx *c, const tensor *x, const tensor *w, const tensor *y,
                                  const conv2d_params *p, conv_algos **out) {
    conv_key key = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], p->kh, p->kw,
                    p->stride_h, p->stride_w, p->pad_h, p->pad_w, p->groups};
    for (int i = 0; i < c->n_algos; i++)
        if (memcmp(&c->algos[i].key, &key, sizeof(key)) == 0) {
            *out = &c->algos[i];
            return MODA_OK;
        }
    conv_algos a = {.key = key};
    moda_status s = conv_desc_make(c, &a.d, x, w, y, p);
    if (s == MODA_OK) s = pick_fwd(c, &a);
    if (s != MODA_OK) {
        conv_desc_free(&a.d);
        return s;
    }
    int slot;
    if (c->n_algos < CONV_CACHE_MAX) {
        slot = c->n_algos++;
    } else {
        slot = c->next_evict; /* composing many models makes many shapes */
        c->next_evict = (c->next_evict + 1) % CONV_CACHE_MAX;
        conv_desc_free(&c->algos[slot].d);
    }
    c->algos[slot] = a;
    *out = &c->algos[slot];
    return MODA_OK;
}

static moda_status cu_conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b,
                                 const conv2d_params *p) {
    cuda_ctx *c = ctx_of(be);
    conv_algos *a;
    MODA_TRY(conv_algos_for(c, x, w, y, p, &a));
    MODA_TRY(grow(&c->ws, &c->ws_bytes, a->fwd_ws));
    const conv_desc *d = &a->d;
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(cudnnConvolutionForward(c->dnn, &one, d->x, x->data, d->w, w->data, d->conv, a->fwd, c->ws,
                                      a->fwd_ws, &zero, d->y, y->data));
    if (b) CUDNN_TRY(cudnnAddTensor(c->dnn, &one, d->b, b->data, &one, d->y, y->data));
    return done(be);
}

static moda_status cu_conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                                 const tensor *x, const tensor *w, const conv2d_params *p) {
    cuda_ctx *c = ctx_of(be);
    conv_algos *a;
    MODA_TRY(conv_algos_for(c, x, w, dy, p, &a));
    if (!a->have_bwd) MODA_TRY(pick_bwd(c, a));
    const conv_desc *d = &a->d;
    const float one = 1.0f, zero = 0.0f;
    if (dx) {
        MODA_TRY(grow(&c->ws, &c->ws_bytes, a->bwd_data_ws));
        CUDNN_TRY(cudnnConvolutionBackwardData(c->dnn, &one, d->w, w->data, d->y, dy->data, d->conv, a->bwd_data,
                                               c->ws, a->bwd_data_ws, &zero, d->x, dx->data));
    }
    if (dw) {
        MODA_TRY(grow(&c->ws, &c->ws_bytes, a->bwd_filter_ws));
        CUDNN_TRY(cudnnConvolutionBackwardFilter(c->dnn, &one, d->x, x->data, d->y, dy->data, d->conv,
                                                 a->bwd_filter, c->ws, a->bwd_filter_ws, &zero, d->w, dw->data));
    }
    if (db) CUDNN_TRY(cudnnConvolutionBackwardBias(c->dnn, &one, d->y, dy->data, &zero, d->b, db->data));
    return done(be);
}

/* ---- batch norm (cuDNN, spatial mode) ------------------------------------ */

typedef struct bn_desc {
    cudnnTensorDescriptor_t x, stats;
} bn_desc;

static void bn_desc_free(bn_desc *d) {
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->stats) cudnnDestroyTensorDescriptor(d->stats);
}

static moda_status bn_desc_make(bn_desc *d, const tensor *x) {
    memset(d, 0, sizeof(*d));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&d->x));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&d->stats));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, x->shape[0], x->shape[1],
                                         x->shape[2], x->shape[3]));
    CUDNN_TRY(cudnnDeriveBNTensorDescriptor(d->stats, d->x, CUDNN_BATCHNORM_SPATIAL));
    return MODA_OK;
}

static moda_status cu_bn_fwd_train(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var,
                                   tensor *running_mean, tensor *running_var, const tensor *x, const tensor *gamma,
                                   const tensor *beta, const batchnorm_params *p) {
    cuda_ctx *c = ctx_of(be);
    int ch = x->shape[1];
    bn_desc d;
    moda_status s = bn_desc_make(&d, x);
    const float one = 1.0f, zero = 0.0f;
    /* cuDNN saves 1/sqrt(var + eps) where the engine keeps the variance;
     * running variance is the unbiased one in both. */
    if (s == MODA_OK &&
        cudnnBatchNormalizationForwardTraining(c->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x->data, d.x,
                                               y->data, d.stats, gamma->data, beta->data, p->momentum,
                                               running_mean->data, running_var->data, p->eps, save_mean->data,
                                               save_var->data) != CUDNN_STATUS_SUCCESS)
        s = cuda_fail("cudnnBatchNormalizationForwardTraining", "failed");
    if (s == MODA_OK && cuda_k_invstd_to_var(save_var->data, save_var->data, ch, p->eps) != cudaSuccess)
        s = cuda_fail("batch norm", "variance kernel failed");
    bn_desc_free(&d);
    return s == MODA_OK ? done(be) : s;
}

static moda_status cu_bn_fwd_eval(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma,
                                  const tensor *beta, const tensor *running_mean, const tensor *running_var,
                                  const batchnorm_params *p) {
    cuda_ctx *c = ctx_of(be);
    bn_desc d;
    moda_status s = bn_desc_make(&d, x);
    const float one = 1.0f, zero = 0.0f;
    if (s == MODA_OK &&
        cudnnBatchNormalizationForwardInference(c->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x->data, d.x,
                                                y->data, d.stats, gamma->data, beta->data, running_mean->data,
                                                running_var->data, p->eps) != CUDNN_STATUS_SUCCESS)
        s = cuda_fail("cudnnBatchNormalizationForwardInference", "failed");
    bn_desc_free(&d);
    return s == MODA_OK ? done(be) : s;
}

static moda_status cu_bn_bwd(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *dy,
                             const tensor *x, const tensor *gamma, const tensor *save_mean, const tensor *save_var,
                             const batchnorm_params *p) {
    cuda_ctx *c = ctx_of(be);
    int ch = x->shape[1];
    /* Scratch: invstd (C), then dgamma and dbeta (C each) when the caller
     * wants neither, then dx when it is not wanted. */
    size_t extra = dx ? 0 : tensor_numel(x);
    float *tmp;
    MODA_TRY(tmp_floats(c, 3 * (size_t)ch + extra, &tmp));
    float *invstd = tmp, *dg = dgamma ? dgamma->data : tmp + ch, *dbt = dbeta ? dbeta->data : tmp + 2 * ch;
    float *dxp = dx ? dx->data : tmp + 3 * ch;
    CUDA_TRY(cuda_k_var_to_invstd(invstd, save_var->data, ch, p->eps));
    bn_desc d;
    moda_status s = bn_desc_make(&d, x);
    const float one = 1.0f, zero = 0.0f;
    if (s == MODA_OK &&
        cudnnBatchNormalizationBackward(c->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, d.x, x->data,
                                        d.x, dy->data, d.x, dxp, d.stats, gamma->data, dg, dbt, p->eps,
                                        save_mean->data, invstd) != CUDNN_STATUS_SUCCESS)
        s = cuda_fail("cudnnBatchNormalizationBackward", "failed");
    bn_desc_free(&d);
    return s == MODA_OK ? done(be) : s;
}

/* ---- MODA terms ---------------------------------------------------------
 * The host path (engine/moda_loss.c) on the device, so that a training
 * step needs no synchronise per ReLU: S = Zn Zn^T and W Zn are cuBLAS
 * GEMMs, the rest small kernels; the terms accumulate over layers on the
 * device and come back once, at moda_end. */

static moda_status cu_moda_begin(moda_backend *be, const int32_t *labels, int n) {
    cuda_ctx *c = ctx_of(be);
    MODA_TRY(grow((void **)&c->mz_labels, &c->mz_labels_bytes, (size_t)n * sizeof(int32_t)));
    if (!c->mz_acc) CUDA_TRY(cudaMalloc((void **)&c->mz_acc, 3 * sizeof(double)));
    CUDA_TRY(cudaMemcpy(c->mz_labels, labels, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemset(c->mz_acc, 0, 3 * sizeof(double)));
    c->mz_b = n;
    c->mz_same = c->mz_diff = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (labels[i] == labels[j])
                c->mz_same++;
            else
                c->mz_diff++;
        }
    return MODA_OK;
}

static moda_status cu_moda_layer(moda_backend *be, float *gz, const float *z, int b, int ch, float w_aff,
                                 float w_dis, float w_com) {
    cuda_ctx *c = ctx_of(be);
    if (b != c->mz_b) return MODA_ERR_STATE;
    size_t bc = (size_t)b * ch, bb = (size_t)b * b;
    MODA_TRY(grow((void **)&c->mz_zn, &c->mz_zn_bytes, bc * sizeof(float)));
    MODA_TRY(grow((void **)&c->mz_norm, &c->mz_norm_bytes, (size_t)b * sizeof(float)));
    MODA_TRY(grow((void **)&c->mz_s, &c->mz_s_bytes, bb * sizeof(float)));
    MODA_TRY(grow((void **)&c->mz_w, &c->mz_w_bytes, bb * sizeof(float)));
    const float one = 1.0f, zero = 0.0f;
    CUDA_TRY(cuda_k_moda_rows(c->mz_zn, c->mz_norm, c->mz_acc, z, b, ch, 1.0 / (double)bc));
    /* Row-major Zn (B x C) is column-major A (C x B): S = A^T A. */
    CUBLAS_TRY(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, b, b, ch, &one, c->mz_zn, ch, c->mz_zn, ch, &zero,
                           c->mz_s, b));
    float ws = c->mz_same ? w_aff / (float)c->mz_same : 0.0f, wd = c->mz_diff ? w_dis / (float)c->mz_diff : 0.0f;
    CUDA_TRY(cuda_k_moda_pairs(gz ? c->mz_w : NULL, c->mz_acc, c->mz_s, c->mz_labels, b, ws, wd,
                               c->mz_same ? 1.0 / (double)c->mz_same : 0.0,
                               c->mz_diff ? 1.0 / (double)c->mz_diff : 0.0));
    if (gz) {
        /* G = W Zn, column-major G^T = A W (W is symmetric); then dL/dz. */
        CUBLAS_TRY(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, ch, b, b, &one, c->mz_zn, ch, c->mz_w, b, &zero,
                               gz, ch));
        CUDA_TRY(cuda_k_moda_dz(gz, c->mz_zn, c->mz_norm, b, ch, w_com / (float)bc));
    }
    return done(be);
}

static moda_status cu_moda_end(moda_backend *be, double sums[3]) {
    cuda_ctx *c = ctx_of(be);
    if (!c->mz_acc) return MODA_ERR_STATE;
    CUDA_TRY(cudaMemcpy(sums, c->mz_acc, 3 * sizeof(double), cudaMemcpyDeviceToHost));
    return MODA_OK;
}

/* ---- lifetime ---------------------------------------------------------- */

static void cu_destroy(moda_backend *be) {
    cuda_ctx *c = ctx_of(be);
    if (c) {
        if (c->dnn) cudnnDestroy(c->dnn);
        if (c->blas) cublasDestroy(c->blas);
        cudaFree(c->ws);
        cudaFree(c->tmp);
        cudaFree(c->labels);
        cudaFree(c->row_loss);
        free(c->host_row_loss);
        for (int i = 0; i < c->n_algos; i++) conv_desc_free(&c->algos[i].d);
        void *mz[] = {c->mz_labels, c->mz_acc, c->mz_zn, c->mz_norm, c->mz_s, c->mz_w};
        for (size_t i = 0; i < sizeof mz / sizeof mz[0]; i++) cudaFree(mz[i]);
        free(c->algos);
        cuda_pool_destroy(c->pool);
        free(c);
    }
    free(be);
}

bool backend_cuda_available(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

moda_backend *backend_cuda_new(int device, const backend_options *opts) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || device < 0 || device >= count) return NULL;
    if (cudaSetDevice(device) != cudaSuccess) return NULL;
    moda_backend *be = calloc(1, sizeof(*be));
    cuda_ctx *c = calloc(1, sizeof(*c));
    if (!be || !c) {
        free(be);
        free(c);
        return NULL;
    }
    be->ctx = c;
    be->destroy = cu_destroy;
    c->device = device;
    c->tf32 = opts && opts->cuda_tf32;
    c->sync_every_op = opts && opts->cuda_sync_each_op;
    c->algos = calloc(CONV_CACHE_MAX, sizeof(*c->algos));
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
    c->pool = cuda_pool_new(total_bytes / POOL_KEEP_SHARE);
    if (!c->algos || !c->pool || cudnnCreate(&c->dnn) != CUDNN_STATUS_SUCCESS ||
        cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(c->blas, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) !=
            CUBLAS_STATUS_SUCCESS) {
        cu_destroy(be);
        return NULL;
    }
    *be = (moda_backend){
        .name = "cuda",
        .ctx = c,
        .host_memory = false,
        .destroy = cu_destroy,
        .alloc = cu_alloc,
        .free = cu_free,
        .copy_to_device = cu_copy,
        .copy_to_host = cu_copy,
        .synchronize = cu_synchronize,
        .prefetch = cu_prefetch,
        .fill = cu_fill,
        .axpy = cu_axpy,
        .conv2d_fwd = cu_conv2d_fwd,
        .conv2d_bwd = cu_conv2d_bwd,
        .batchnorm2d_fwd_train = cu_bn_fwd_train,
        .batchnorm2d_fwd_eval = cu_bn_fwd_eval,
        .batchnorm2d_bwd = cu_bn_bwd,
        .relu_fwd = cu_relu_fwd,
        .relu_bwd = cu_relu_bwd,
        .maxpool2d_ws_bytes = cu_maxpool_ws_bytes,
        .maxpool2d_fwd = cu_maxpool_fwd,
        .maxpool2d_bwd = cu_maxpool_bwd,
        .global_avgpool_fwd = cu_gap_fwd,
        .global_avgpool_bwd = cu_gap_bwd,
        .linear_fwd = cu_linear_fwd,
        .linear_bwd = cu_linear_bwd,
        .add_fwd = cu_add_fwd,
        .add_mapped_fwd = cu_add_mapped_fwd,
        .softmax_ce_fwd = cu_softmax_ce_fwd,
        .softmax_ce_bwd = cu_softmax_ce_bwd,
        .sgd_update = cu_sgd,
        .moda_begin = cu_moda_begin,
        .moda_layer = cu_moda_layer,
        .moda_end = cu_moda_end,
    };
    return be;
}
