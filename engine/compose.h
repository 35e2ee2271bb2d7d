/* Composition of class modules (docs/design.md section 3).
 *
 * Every node output has a channel space; spaces are tied by union-find:
 * BN, ReLU, pooling and residual adds keep their input's space, a
 * depthwise conv's output is its input's space, conv (groups 1) and linear
 * layers start a new one, flatten maps a conv space to C*H*W features in
 * channel-major order. A space's keep-mask is the union over its tracked
 * ReLUs of their masks; a space with no tracked ReLU (the input image) keeps
 * everything, and the logits keep the rows of T in the caller's order.
 *
 * A plan holds the kept channels of every node; counting parameters and
 * MACs and slicing weights all follow from it. */
#ifndef MODA_COMPOSE_H
#define MODA_COMPOSE_H

#include <stdbool.h>

#include "decompose.h"
#include "graph.h"

typedef struct compose_plan {
    int n_nodes;
    int *space;      /* (n_nodes) channel-space id of each node's output, owned */
    bool **keep;     /* (n_nodes) keep-mask over each node's output channels
                      * (features for 2-D nodes), owned; shared storage per space */
    int *kept;       /* (n_nodes) number kept */
    int n_classes;   /* |T| */
    int *classes;    /* (|T|) original class indices in output order, owned */
} compose_plan;

/* Plan for class set T (n_classes entries, distinct, in [0,K)) at
 * threshold tau: per tracked layer the OR of the class masks, then ties. */
moda_status compose_plan_make(const graph *g, const rates *r, const int *classes, int n_classes, float tau,
                              compose_plan *p);
/* Plan from explicit per-ReLU keep masks (masks[l] over rates layer l's
 * units) — used by tests to force arbitrary masks. */
moda_status compose_plan_from_masks(const graph *g, const rates *r, bool *const *masks, const int *classes,
                                    int n_classes, compose_plan *p);
void compose_plan_free(compose_plan *p); /* accepts NULL */

/* Trainable parameters and MACs (conv and linear multiply-adds per sample)
 * the composed model has. */
size_t compose_plan_params(const graph *g, const compose_plan *p);
double compose_plan_macs(const graph *g, const compose_plan *p);

/* Build the composed model: a new finalized graph with the kept channels
 * and the parent's weights sliced into it. No fine-tuning. */
moda_status compose_build(const graph *g, const compose_plan *p, moda_backend *be, graph **out);

/* The parent's rates restricted to what the composed model `composed`
 * (built from p by compose_build) keeps: per tracked layer the kept units
 * in ascending order, rows the classes of T in output order, and their
 * class counts. The result has composed's rates layout (rates_alloc), so a
 * composed model can itself be decomposed and composed again. */
moda_status compose_rates(const graph *g, const rates *r, const compose_plan *p, const graph *composed, rates *out);

/* Module metrics at threshold tau (docs/design.md section 2): size of each
 * single-class module and the overlap of each pair, as fractions of the
 * full model's trainable parameters, plus per-layer overlap. */
typedef struct module_stats {
    int num_classes;
    float tau;
    double *size;         /* (K) params of class c's module / full params */
    double *overlap;      /* (K x K) params shared by modules a and b / full params */
    double mean_size, mean_overlap; /* mean over classes, over pairs a < b */
    int n_layers;         /* parameterised layers (conv, linear) */
    int *layer_node;      /* (n_layers) their node indices */
    double *layer_overlap; /* (n_layers) mean over pairs of shared / layer params */
} module_stats;

moda_status module_stats_compute(const graph *g, const rates *r, float tau, module_stats *s);
void module_stats_free(module_stats *s); /* accepts NULL */

#endif
