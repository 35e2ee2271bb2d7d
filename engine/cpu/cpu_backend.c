/* The CPU backend: oneDNN primitives for conv, BN, pooling, inner product
 * and eltwise; plain OpenMP loops for the rest. Registers the vtable. */
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

void *cpu_cache_get(cpu_ctx *c, const void *key, size_t key_len) {
    for (int i = 0; i < c->n_entries; i++) {
        cpu_cache_entry *e = &c->entries[i];
        if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0) {
            e->last_use = ++c->clock;
            return e->value;
        }
    }
    return NULL;
}

moda_status cpu_cache_put(cpu_ctx *c, const void *key, size_t key_len, void *value,
                          void (*destroy)(void *)) {
    if (c->n_entries == CPU_CACHE_MAX_ENTRIES) {
        int lru = 0;
        for (int i = 1; i < c->n_entries; i++)
            if (c->entries[i].last_use < c->entries[lru].last_use) lru = i;
        cpu_cache_entry *e = &c->entries[lru];
        if (e->destroy) e->destroy(e->value);
        free(e->key);
        *e = c->entries[--c->n_entries];
    }
    if (c->n_entries == c->cap_entries) {
        int cap = c->cap_entries ? 2 * c->cap_entries : 32;
        cpu_cache_entry *e = realloc(c->entries, (size_t)cap * sizeof(*e));
        if (!e) goto fail;
        c->entries = e;
        c->cap_entries = cap;
    }
    void *k = malloc(key_len);
    if (!k) goto fail;
    memcpy(k, key, key_len);
    c->entries[c->n_entries++] = (cpu_cache_entry){k, key_len, value, destroy, ++c->clock};
    return MODA_OK;
fail:
    if (destroy) destroy(value);
    return MODA_ERR_NOMEM;
}

void *cpu_scratch(cpu_ctx *c, size_t bytes) {
    if (bytes == 0) bytes = 64; /* a valid pointer even when nothing is needed */
    if (bytes <= c->scratch_bytes) return c->scratch;
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) return NULL;
    free(c->scratch);
    c->scratch = p;
    c->scratch_bytes = bytes;
    return p;
}

dnnl_primitive_attr_t cpu_attr_new(void) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    return attr;
}

size_t cpu_pd_scratch_bytes(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static void *cpu_alloc(moda_backend *be, size_t bytes) {
    (void)be;
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static void cpu_free(moda_backend *be, void *p) {
    (void)be;
    free(p);
}

static moda_status cpu_copy(moda_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && (!dst || !src)) return MODA_ERR_NULL;
    if (dst != src) memmove(dst, src, bytes);
    return MODA_OK;
}

static moda_status cpu_synchronize(moda_backend *be) {
    DNNL_TRY(dnnl_stream_wait(cpu_ctx_of(be)->stream));
    return MODA_OK;
}

/* The MODA terms are the one optional op: with host memory the engine
 * computes them on the host (moda_loss.c) at no copying cost. */
static bool cpu_supports_op(moda_backend *be, backend_op op) {
    (void)be;
    return op != BACKEND_OP_MODA_TERMS;
}

static void cpu_destroy(moda_backend *be) {
    cpu_ctx *c = cpu_ctx_of(be);
    if (c) {
        for (int i = 0; i < c->n_entries; i++) {
            if (c->entries[i].destroy) c->entries[i].destroy(c->entries[i].value);
            free(c->entries[i].key);
        }
        free(c->entries);
        free(c->scratch);
        if (c->stream) dnnl_stream_destroy(c->stream);
        if (c->engine) dnnl_engine_destroy(c->engine);
        free(c);
    }
    free(be);
}

moda_backend *backend_cpu_new(void) {
    moda_backend *be = calloc(1, sizeof(*be));
    cpu_ctx *c = calloc(1, sizeof(*c));
    if (!be || !c) {
        free(be);
        free(c);
        return NULL;
    }
    *be = (moda_backend){
        .name = "cpu",
        .ctx = c,
        .host_memory = true,
        .destroy = cpu_destroy,
        .supports_op = cpu_supports_op,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .copy_to_device = cpu_copy,
        .copy_to_host = cpu_copy,
        .synchronize = cpu_synchronize,
        .fill = cpu_fill,
        .axpy = cpu_axpy,
        .conv2d_fwd = cpu_conv2d_fwd,
        .conv2d_bwd = cpu_conv2d_bwd,
        .batchnorm2d_fwd_train = cpu_batchnorm2d_fwd_train,
        .batchnorm2d_fwd_eval = cpu_batchnorm2d_fwd_eval,
        .batchnorm2d_bwd = cpu_batchnorm2d_bwd,
        .relu_fwd = cpu_relu_fwd,
        .relu_bwd = cpu_relu_bwd,
        .maxpool2d_ws_bytes = cpu_maxpool2d_ws_bytes,
        .maxpool2d_fwd = cpu_maxpool2d_fwd,
        .maxpool2d_bwd = cpu_maxpool2d_bwd,
        .global_avgpool_fwd = cpu_global_avgpool_fwd,
        .global_avgpool_bwd = cpu_global_avgpool_bwd,
        .linear_fwd = cpu_linear_fwd,
        .linear_bwd = cpu_linear_bwd,
        .add_fwd = cpu_add_fwd,
        .add_mapped_fwd = cpu_add_mapped_fwd,
        .softmax_ce_fwd = cpu_softmax_ce_fwd,
        .softmax_ce_bwd = cpu_softmax_ce_bwd,
        .sgd_update = cpu_sgd_update,
        .frozen = &cpu_frozen_ops,
    };
    /* Every primitive the backend builds is kept where it is used (the
     * conv cache above, frozen plans), so oneDNN's process-wide primitive
     * cache would only hold second references to them, and keep the
     * primitives (JIT code included) of plans already freed: a server
     * composing models on demand grew by its 1024 entries. Off. */
    dnnl_set_primitive_cache_capacity(0);
    if (dnnl_engine_create(&c->engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags) != dnnl_success) {
        cpu_destroy(be);
        return NULL;
    }
    return be;
}
