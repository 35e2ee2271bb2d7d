/* Private to the CPU backend: the oneDNN engine and stream, the primitive
 * cache, and the per-op implementations that cpu_backend.c registers. */
#ifndef MODA_CPU_INTERNAL_H
#define MODA_CPU_INTERNAL_H

#include <dnnl.h>

#include "backend_impl.h"

/* Primitive cache: an op builds its primitives (and any reorders and
 * blocked-layout buffers they need) once per distinct key, e.g. the op id
 * and all its sizes, and finds them again on later calls. */
typedef struct cpu_cache_entry {
    void *key; /* owned copy */
    size_t key_len;
    void *value; /* owned; released with destroy */
    void (*destroy)(void *value);
    unsigned long last_use; /* for least-recently-used eviction */
} cpu_cache_entry;

/* Composing many models creates many shapes; beyond this many entries the
 * least recently used one is released. A network needs far fewer. */
#define CPU_CACHE_MAX_ENTRIES 512

typedef struct cpu_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    cpu_cache_entry *entries; /* owned */
    int n_entries, cap_entries;
    unsigned long clock;       /* cache use counter */
    void *scratch;             /* user-mode scratchpad, owned */
    size_t scratch_bytes;
} cpu_ctx;

static inline cpu_ctx *cpu_ctx_of(moda_backend *be) { return (cpu_ctx *)be->ctx; }

void *cpu_cache_get(cpu_ctx *c, const void *key, size_t key_len);
/* Takes ownership of value; on failure destroys it and returns MODA_ERR_NOMEM. */
moda_status cpu_cache_put(cpu_ctx *c, const void *key, size_t key_len, void *value,
                          void (*destroy)(void *));
/* Scratchpad of at least `bytes`; grown at primitive-creation time only, so
 * executing a cached primitive never allocates. NULL on failure. */
void *cpu_scratch(cpu_ctx *c, size_t bytes);
/* Attributes with a user-managed scratchpad; caller destroys. */
dnnl_primitive_attr_t cpu_attr_new(void);
/* Scratchpad bytes a primitive descriptor needs. */
size_t cpu_pd_scratch_bytes(const_dnnl_primitive_desc_t pd);

#define DNNL_TRY(call)                                                        \
    do {                                                                      \
        if ((call) != dnnl_success) return MODA_ERR_BACKEND;                  \
    } while (0)

/* Frozen inference plans (cpu_frozen.c). */
extern const backend_frozen_ops cpu_frozen_ops;

/* Per-op implementations (engine/cpu/cpu_<op>.c). */
moda_status cpu_conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b,
                           const conv2d_params *p);
moda_status cpu_conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                           const tensor *x, const tensor *w, const conv2d_params *p);
moda_status cpu_batchnorm2d_fwd_train(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var,
                                      tensor *running_mean, tensor *running_var, const tensor *x,
                                      const tensor *gamma, const tensor *beta, const batchnorm_params *p);
moda_status cpu_batchnorm2d_fwd_eval(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma,
                                     const tensor *beta, const tensor *running_mean,
                                     const tensor *running_var, const batchnorm_params *p);
moda_status cpu_batchnorm2d_bwd(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta,
                                const tensor *dy, const tensor *x, const tensor *gamma,
                                const tensor *save_mean, const tensor *save_var, const batchnorm_params *p);
moda_status cpu_relu_fwd(moda_backend *be, tensor *y, const tensor *x);
moda_status cpu_relu_bwd(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y);
size_t cpu_maxpool2d_ws_bytes(moda_backend *be, const tensor *y);
moda_status cpu_maxpool2d_fwd(moda_backend *be, tensor *y, void *ws, const tensor *x, const pool2d_params *p);
moda_status cpu_maxpool2d_bwd(moda_backend *be, tensor *dx, const tensor *dy, const void *ws,
                              const pool2d_params *p);
moda_status cpu_global_avgpool_fwd(moda_backend *be, tensor *y, const tensor *x);
moda_status cpu_global_avgpool_bwd(moda_backend *be, tensor *dx, const tensor *dy);
moda_status cpu_linear_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b);
moda_status cpu_linear_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                           const tensor *x, const tensor *w);
moda_status cpu_add_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b);
moda_status cpu_add_mapped_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b, const tensor *map_a,
                               const tensor *map_b);
moda_status cpu_softmax_ce_fwd(moda_backend *be, float *loss, tensor *probs, const tensor *logits,
                               const int32_t *labels);
moda_status cpu_softmax_ce_bwd(moda_backend *be, tensor *dlogits, const tensor *probs,
                               const int32_t *labels, float scale);
moda_status cpu_sgd_update(moda_backend *be, float *param, float *velocity, const float *grad, size_t n,
                           float lr, float momentum, float weight_decay, bool nesterov);
moda_status cpu_fill(moda_backend *be, float *y, size_t n, float value);
moda_status cpu_axpy(moda_backend *be, float *y, const float *x, size_t n, float alpha);

#endif
