/* MODA's three activation losses (docs/design.md section 2), computed on the
 * output of every ReLU during the backward pass and fused into its gradient:
 *
 *   z_i   = per-sample activation vector (conv: spatial mean per channel)
 *   S_ij  = <z_i/|z_i|, z_j/|z_j|>          (norm clamped at 1e-12)
 *   a_l   = mean S_ij over same-label pairs i<j   (intra-class affinity)
 *   d_l   = mean S_ij over different-label pairs  (inter-class dispersion)
 *   c_l   = mean of z over the B x C matrix       (compactness)
 *   L     = CE + alpha (1 - mean_l a_l) + beta mean_l d_l + gamma mean_l c_l
 *
 * A batch without a same-label (or different-label) pair skips that term. */
#ifndef MODA_MODA_LOSS_H
#define MODA_MODA_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

typedef struct moda_layer_terms {
    double aff, dis, com; /* a_l, d_l, c_l */
    bool has_same, has_diff;
} moda_layer_terms;

/* Scratch for one layer: z, normalised z and their gradient (B x C), S and
 * its weights (B x B). Sized once for the largest layer. */
typedef struct moda_scratch {
    float *z, *zn, *gz, *s, *w;
    float *norm; /* (B) */
    int max_b, max_c;
} moda_scratch;

moda_status moda_scratch_init(moda_scratch *sc, int max_b, int max_c);
void moda_scratch_free(moda_scratch *sc); /* accepts NULL */

/* One layer. act: (B, C, hw) ReLU output (hw = 1 for FC). Computes the
 * terms; when dact is non-NULL adds
 *   w_aff * da/dact + w_dis * dd/dact + w_com * dc/dact
 * into dact (B, C, hw). */
moda_status moda_layer_loss(moda_scratch *sc, const float *act, int b, int c, int hw, const int32_t *labels,
                            float w_aff, float w_dis, float w_com, float *dact, moda_layer_terms *out);

typedef struct moda_loss {
    float alpha, beta, gamma;
    int n_layers;
    int *layer_of_node;  /* (g->n_nodes): index among tracked layers, or -1; owned */
    moda_scratch scratch;
    /* Where the graph's backend keeps its own memory: z and dL/dz (B x C)
     * and a spread gradient (largest ReLU output), in that memory. */
    moda_backend *be;
    float *dev_z, *dev_gz, *dev_spread;
    /* With the backend's own terms (be->moda_layer): the ReLUs whose
     * gradient reaches the output, and how many this backward has seen;
     * the sums come back after the last. */
    int n_reaching, seen;
    bool begun;
    /* Per batch: set by moda_loss_begin, filled by the hook. */
    const int32_t *labels;
    bool batch_has_same, batch_has_diff;
    double sum_aff, sum_dis, sum_com; /* over layers, this batch */
} moda_loss;

/* Tracks every ReLU node of g, for batches up to max_batch. */
moda_status moda_loss_init(moda_loss *m, const graph *g, int max_batch, float alpha, float beta, float gamma);
void moda_loss_free(moda_loss *m); /* accepts NULL */
/* Before graph_backward: the batch's labels (host, g->batch of them). */
void moda_loss_begin(moda_loss *m, const int32_t *labels, int n);
/* The graph_grad_hook: pass it with the moda_loss as ctx. */
moda_status moda_loss_hook(graph *g, int node, void *ctx);
/* After the backward pass: the batch's mean terms over layers and the
 * weighted sum alpha (1 - aff) + beta dis + gamma com (skipped terms 0). */
void moda_loss_result(const moda_loss *m, double *aff, double *dis, double *com, double *total);

#endif
