/* Decomposition: per-class activation rates of every tracked unit, and the
 * class masks derived from them (docs/design.md section 2).
 *
 * Tracked layers are the model's ReLU nodes, in graph order. A unit is a
 * channel of a conv-layer ReLU (active for a sample when its spatial mean
 * is > 0) or a neuron of an FC-layer ReLU (active when > 0). */
#ifndef MODA_DECOMPOSE_H
#define MODA_DECOMPOSE_H

#include <stdbool.h>
#include <stdint.h>

#include "dataset.h"
#include "graph.h"

#define DECOMPOSE_DEFAULT_TAU 0.9f

typedef struct rates {
    int num_classes;   /* K */
    int n_layers;      /* L tracked layers */
    int *node;         /* (L) graph node index of each tracked ReLU, owned */
    int *units;        /* (L) N_l */
    float **rate;      /* (L) arrays of (K x N_l), rate[l][c * N_l + k], owned */
    int *class_count;  /* (K) samples per class the rates came from, owned */
} rates;

/* Allocate zeroed rates for g's ReLU nodes and K classes. */
moda_status rates_alloc(rates *r, const graph *g, int num_classes);
void rates_free(rates *r); /* accepts NULL */

/* Called after each batch with the samples done so far. */
typedef void (*decompose_progress_fn)(int done, int total, void *ctx);

/* Eval-mode pass over ds (no augmentation) in batches of batch_size (g
 * must be planned for it). progress may be NULL. */
moda_status decompose_rates(graph *g, const dataset *ds, int batch_size, rates *r, decompose_progress_fn progress,
                            void *ctx);

/* Fallback size for a layer of n units: max(1, floor(0.005 n)). */
int decompose_min_units(int n);

/* Class c's mask of layer l at threshold tau: rate >= tau; if fewer than
 * decompose_min_units(N_l) units pass, the that many highest-rate units
 * instead (ties broken by lower index). mask: (N_l). Returns units kept. */
int decompose_mask(const rates *r, int l, int c, float tau, bool *mask);

#endif
