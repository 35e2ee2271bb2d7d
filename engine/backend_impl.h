/* The backend vtable: what a backend implements (engine/cpu/, kernels/)
 * and what the engine's validated wrappers (backend.c, ops/) dispatch to.
 * Nothing outside the engine and the backends includes this header. The
 * conventions are in backend.h.
 *
 * A backend fills the table with designated initialisers. An op it leaves
 * NULL must be declared in supports_op, or the parity test fails. */
#ifndef MODA_BACKEND_IMPL_H
#define MODA_BACKEND_IMPL_H

#include "backend.h"

struct graph;

/* Frozen inference plans (engine/frozen.h), for a backend that has them:
 * frozen.c validates arguments and dispatches here; `impl` is the
 * backend's plan. */
typedef struct backend_frozen_ops {
    moda_status (*build)(moda_backend *be, const struct graph *g, int max_batch, void **impl);
    void (*destroy)(void *impl);
    moda_status (*prepare)(void *impl, int n);
    moda_status (*run)(void *impl, const float *x, int n, float *logits);
    void (*set_small_batch_threads)(void *impl, int small_n, int threads);
    size_t (*bytes)(const void *impl);
    int (*reorders)(const void *impl, int n);
    int (*steps)(const void *impl, int n);
    int (*threads)(const void *impl, int n);
} backend_frozen_ops;

struct moda_backend {
    const char *name;
    void *ctx; /* backend-private state, owned */
    /* true: tensors live in plain host memory and ops accept any host
     * pointer. false (CUDA): ops read only memory from alloc(), so host
     * buffers are copied in, and hot host-side reads use copy_to_host. */
    bool host_memory;
    /* OpenMP threads for the ops run with this backend, set once by
     * backend_set_threads; 0: OpenMP's default. */
    int threads;

    void (*destroy)(moda_backend *be);
    /* Optional, NULL: every op is run. Otherwise false for each op the
     * backend does not run. */
    bool (*supports_op)(moda_backend *be, backend_op op);

    /* Memory in the backend's address space. */
    void *(*alloc)(moda_backend *be, size_t bytes);
    void (*free)(moda_backend *be, void *p);
    /* to/from host: plain copies for the CPU backend. */
    moda_status (*copy_to_device)(moda_backend *be, void *dst, const void *src, size_t bytes);
    moda_status (*copy_to_host)(moda_backend *be, void *dst, const void *src, size_t bytes);
    moda_status (*synchronize)(moda_backend *be);
    /* Optional, NULL where alloc() memory already sits where ops run. A
     * hint that [p, p + bytes) is about to be used by ops: CUDA moves the
     * managed pages there in bulk instead of page fault by page fault. */
    void (*prefetch)(moda_backend *be, const void *p, size_t bytes);

    /* Elementwise helpers used by the graph and optimiser. */
    moda_status (*fill)(moda_backend *be, float *y, size_t n, float value);
    moda_status (*axpy)(moda_backend *be, float *y, const float *x, size_t n, float alpha); /* y += alpha*x */

    /* y = conv(x, w) + b.  x (N,C,H,W), w (K, C/groups, kh, kw), b (K) or NULL. */
    moda_status (*conv2d_fwd)(moda_backend *be, tensor *y, const tensor *x, const tensor *w,
                              const tensor *b, const conv2d_params *p);
    moda_status (*conv2d_bwd)(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                              const tensor *x, const tensor *w, const conv2d_params *p);

    /* Train mode: normalise with batch statistics, write them to
     * save_mean/save_var (biased variance, (C)), and update running_mean and
     * running_var (unbiased variance, as PyTorch does). */
    moda_status (*batchnorm2d_fwd_train)(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var,
                                         tensor *running_mean, tensor *running_var, const tensor *x,
                                         const tensor *gamma, const tensor *beta, const batchnorm_params *p);
    /* Eval mode: normalise with running statistics. */
    moda_status (*batchnorm2d_fwd_eval)(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma,
                                        const tensor *beta, const tensor *running_mean,
                                        const tensor *running_var, const batchnorm_params *p);
    moda_status (*batchnorm2d_bwd)(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta,
                                   const tensor *dy, const tensor *x, const tensor *gamma,
                                   const tensor *save_mean, const tensor *save_var,
                                   const batchnorm_params *p);

    /* y = max(x, 0); backward uses the forward output y. Any shape. */
    moda_status (*relu_fwd)(moda_backend *be, tensor *y, const tensor *x);
    moda_status (*relu_bwd)(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y);

    /* Max pooling. `ws` is an opaque workspace of maxpool2d_ws_bytes bytes
     * written by forward and read by backward. Padding never wins a max. */
    size_t (*maxpool2d_ws_bytes)(moda_backend *be, const tensor *y);
    moda_status (*maxpool2d_fwd)(moda_backend *be, tensor *y, void *ws, const tensor *x,
                                 const pool2d_params *p);
    moda_status (*maxpool2d_bwd)(moda_backend *be, tensor *dx, const tensor *dy, const void *ws,
                                 const pool2d_params *p);

    /* (N,C,H,W) -> (N,C): spatial mean. */
    moda_status (*global_avgpool_fwd)(moda_backend *be, tensor *y, const tensor *x);
    moda_status (*global_avgpool_bwd)(moda_backend *be, tensor *dx, const tensor *dy);

    /* y = x w^T + b.  x (N,I), w (O,I), b (O) or NULL. */
    moda_status (*linear_fwd)(moda_backend *be, tensor *y, const tensor *x, const tensor *w,
                              const tensor *b);
    moda_status (*linear_bwd)(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                              const tensor *x, const tensor *w);

    /* y = a + b (same shapes). */
    moda_status (*add_fwd)(moda_backend *be, tensor *y, const tensor *a, const tensor *b);
    /* y channel j = a[map_a[j]] + b[map_b[j]]; an index outside [0, the
     * addend's channels) reads zero (ops.h). */
    moda_status (*add_mapped_fwd)(moda_backend *be, tensor *y, const tensor *a, const tensor *b,
                                  const tensor *map_a, const tensor *map_b);

    /* Mean softmax cross-entropy over the batch. logits (N,K), labels
     * int32 (N) in [0,K). probs (N,K) is written for the backward pass and
     * *loss is a host float. Backward: dlogits = scale * (probs - onehot)/N. */
    moda_status (*softmax_ce_fwd)(moda_backend *be, float *loss, tensor *probs, const tensor *logits,
                                  const int32_t *labels);
    moda_status (*softmax_ce_bwd)(moda_backend *be, tensor *dlogits, const tensor *probs,
                                  const int32_t *labels, float scale);

    /* SGD step on n values: with nesterov, v = mu*v + g + wd*p;
     * p -= lr*(g + wd*p + mu*v); without, p -= lr*v (PyTorch's formulas). */
    moda_status (*sgd_update)(moda_backend *be, float *param, float *velocity, const float *grad,
                              size_t n, float lr, float momentum, float weight_decay, bool nesterov);

    /* Optional (NULL: the host computes them, see moda_loss.c): MODA's
     * terms in the backend. begin takes the batch's labels (host) and
     * clears the sums; layer takes z (B x C, backend memory), adds the
     * layer's affinity, dispersion and compactness to the sums and, with gz
     * non-NULL, writes w_aff dA/dz + w_dis dD/dz + w_com dC/dz (B x C)
     * into gz; end reads the sums over layers to the host. */
    moda_status (*moda_begin)(moda_backend *be, const int32_t *labels, int n);
    moda_status (*moda_layer)(moda_backend *be, float *gz, const float *z, int b, int c, float w_aff, float w_dis,
                              float w_com);
    moda_status (*moda_end)(moda_backend *be, double sums[3]);

    /* Optional, NULL: no frozen plans (frozen_new answers
     * MODA_ERR_UNSUPPORTED and callers run graph_forward). */
    const backend_frozen_ops *frozen;
};

/* Make the calling thread run ops with be->threads OpenMP threads (the
 * count is per thread in OpenMP); a no-op once it does. The graph calls it
 * before each pass. */
void backend_bind_threads(moda_backend *be);

#endif
