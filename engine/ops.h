/* Validated op entry points. Each checks its arguments (NULL pointers,
 * ranks, shapes, parameters) and returns a status instead of crashing, then
 * dispatches to the backend. One op per file in engine/ops/. */
#ifndef MODA_OPS_H
#define MODA_OPS_H

#include "backend.h"

/* Output spatial size of a conv or pool window; <= 0 when it does not fit. */
int conv_out_size(int in, int k, int stride, int pad);

moda_status conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b,
                       const conv2d_params *p);
moda_status conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                       const tensor *x, const tensor *w, const conv2d_params *p);

moda_status batchnorm2d_fwd_train(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var,
                                  tensor *running_mean, tensor *running_var, const tensor *x,
                                  const tensor *gamma, const tensor *beta, const batchnorm_params *p);
moda_status batchnorm2d_fwd_eval(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma,
                                 const tensor *beta, const tensor *running_mean,
                                 const tensor *running_var, const batchnorm_params *p);
moda_status batchnorm2d_bwd(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *dy,
                            const tensor *x, const tensor *gamma, const tensor *save_mean,
                            const tensor *save_var, const batchnorm_params *p);

moda_status relu_fwd(moda_backend *be, tensor *y, const tensor *x);
moda_status relu_bwd(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y);

/* Workspace bytes for output y; 0 when y is not a valid 4-D tensor. */
size_t maxpool2d_ws_bytes(moda_backend *be, const tensor *y);
moda_status maxpool2d_fwd(moda_backend *be, tensor *y, void *ws, const tensor *x, const pool2d_params *p);
moda_status maxpool2d_bwd(moda_backend *be, tensor *dx, const tensor *dy, const void *ws,
                          const pool2d_params *p);

moda_status global_avgpool_fwd(moda_backend *be, tensor *y, const tensor *x);
moda_status global_avgpool_bwd(moda_backend *be, tensor *dx, const tensor *dy);

moda_status linear_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b);
moda_status linear_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                       const tensor *x, const tensor *w);

moda_status add_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b);
/* y (N,C,...) channel j = a[map_a[j]] + b[map_b[j]], -1 (or any index
 * outside the addend's channels) reading zero; a and b may have other
 * channel counts than y; maps: float (C) in backend memory. */
moda_status add_mapped_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b, const tensor *map_a,
                           const tensor *map_b);
/* da = db = dy (either may be NULL). */
moda_status add_bwd(moda_backend *be, tensor *da, tensor *db, const tensor *dy);

/* (N,C,H,W) -> (N, C*H*W), channel-major; the data does not move, so
 * forward and backward are copies when y/dx do not alias their source. */
moda_status flatten_fwd(moda_backend *be, tensor *y, const tensor *x);
moda_status flatten_bwd(moda_backend *be, tensor *dx, const tensor *dy);

moda_status softmax_ce_fwd(moda_backend *be, float *loss, tensor *probs, const tensor *logits,
                           const int32_t *labels);
moda_status softmax_ce_bwd(moda_backend *be, tensor *dlogits, const tensor *probs, const int32_t *labels,
                           float scale);

/* One SGD step on n values (PyTorch's formulas; see backend_impl.h):
 * param and velocity are updated in place from grad. */
moda_status sgd_update(moda_backend *be, float *param, float *velocity, const float *grad, size_t n, float lr,
                       float momentum, float weight_decay, bool nesterov);

/* MODA's terms computed by the backend, where it declares
 * BACKEND_OP_MODA_TERMS (see backend_impl.h for the contract): begin
 * takes the batch's labels (host), each layer adds z's (b x c, backend
 * memory) terms and writes their gradient into gz (NULL: none), end reads
 * the sums over layers (affinity, dispersion, compactness) to the host. */
moda_status moda_terms_begin(moda_backend *be, const int32_t *labels, int n);
moda_status moda_terms_layer(moda_backend *be, float *gz, const float *z, int b, int c, float w_aff, float w_dis,
                             float w_com);
moda_status moda_terms_end(moda_backend *be, double sums[3]);

#endif
