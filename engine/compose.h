/* Composition of class modules (docs/design.md section 3).
 *
 * Two modes. COMPOSE_TIED (the default): every node output has a channel space; spaces are tied by union-find:
 * BN, ReLU, pooling and residual adds keep their input's space, a
 * depthwise conv's output is its input's space, conv (groups 1) and linear
 * layers start a new one, flatten maps a conv space to C*H*W features in
 * channel-major order. A space's keep-mask is the union over its tracked
 * ReLUs of their masks; a space with no tracked ReLU (the input image) keeps
 * everything, and the logits keep the rows of T in the caller's order.
 *
 * COMPOSE_PER_LAYER (the reference implementation's semantics): each
 * tracked ReLU keeps its own mask, nothing is tied. Which channels a node
 * keeps follows from two passes over the graph. Forward: the channels that
 * are zero, namely a tracked ReLU's dropped units; ReLU, pooling and adds
 * of two zeros keep them zero, and batch norm and depthwise convs carry
 * them on as zero, so a depthwise channel whose input was dropped is
 * dropped too (the intersection at depthwise layers). Backward: the
 * channels some later node reads, i.e. every non-zero one for a conv or
 * linear layer, the kept ones for per-channel layers. A node keeps what is
 * read and not zero. Where a residual add's addends keep other channels
 * than its output, it becomes a mapped add (graph_add_mapped): it reads
 * each addend's channels through an index map and zero-fills the ones an
 * addend dropped. The composed model equals the full model with the
 * dropped units zeroed (tests/test_compose.c); a depthwise chain's dropped
 * channel must reach a tracked ReLU before anything but per-channel layers
 * reads it, else the plan is MODA_ERR_UNSUPPORTED.
 *
 * A plan holds the kept channels of every node; counting parameters and
 * MACs and slicing weights all follow from it. A model composed per layer
 * can be composed again per layer (its maps compose), not tied
 * (MODA_ERR_UNSUPPORTED). */
#ifndef MODA_COMPOSE_H
#define MODA_COMPOSE_H

#include <stdbool.h>

#include "decompose.h"
#include "graph.h"

typedef enum compose_mode { COMPOSE_TIED, COMPOSE_PER_LAYER } compose_mode;

/* "tied", "per-layer"; parse accepts exactly these. */
const char *compose_mode_name(compose_mode m);
bool compose_mode_parse(const char *s, compose_mode *out);

typedef struct compose_plan {
    compose_mode mode;
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
/* The same in either mode (the two above are COMPOSE_TIED). */
moda_status compose_plan_make_mode(const graph *g, const rates *r, const int *classes, int n_classes, float tau,
                                   compose_mode mode, compose_plan *p);
moda_status compose_plan_from_masks_mode(const graph *g, const rates *r, bool *const *masks, const int *classes,
                                         int n_classes, compose_mode mode, compose_plan *p);
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
/* With each module planned in `mode` (module_stats_compute: COMPOSE_TIED). */
moda_status module_stats_compute_mode(const graph *g, const rates *r, float tau, compose_mode mode, module_stats *s);
void module_stats_free(module_stats *s); /* accepts NULL */

#endif
