/* Frozen inference plans: a finalized graph compiled for eval-mode
 * inference on one backend.
 *
 * Freezing copies the weights at that moment, folding every batch norm that
 * follows a conv into the conv's weights and bias, so a plan's forward pass
 * is a pure function of the weights it was frozen with (the graph may then
 * change or be freed). A backend decides how to run the plan; the CPU
 * backend fuses ReLU and residual adds into the convs as oneDNN post-ops,
 * keeps activations in oneDNN's preferred blocked layout from the first
 * conv to the classifier, and builds each batch size's primitives once.
 *
 * A backend without frozen plans (CUDA), or a graph with a node the plan
 * does not handle (a batch norm that follows no conv, an output that is
 * not a linear layer), gives MODA_ERR_UNSUPPORTED: run graph_forward then.
 *
 * A plan is used by one thread at a time, like the backend it runs on. */
#ifndef MODA_FROZEN_H
#define MODA_FROZEN_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "graph.h"

typedef struct frozen frozen;

/* Freeze g (finalized, parameters written) for batches of 1..max_batch
 * samples on be (which must outlive the plan). No batch size is prepared
 * yet. MODA_ERR_UNSUPPORTED as above; *out NULL on any error. */
moda_status frozen_new(const graph *g, moda_backend *be, int max_batch, frozen **out);
void frozen_free(frozen *f); /* accepts NULL */

/* Build batch size n's primitives and buffers now, so that batches of n
 * samples run as one pass. A plan keeps a few batch sizes; the least
 * recently used one beyond them is released. */
moda_status frozen_prepare(frozen *f, int n);

/* logits (n, K) = the eval-mode network on x (n, in_c, in_h, in_w), both
 * NCHW float32 host memory (as for every backend: the plan copies in and
 * out). 1 <= n <= max_batch. A prepared batch size runs as one pass; any
 * other as passes of powers of two (37 = 32 + 4 + 1), each built on its
 * first use. A pass on a built batch size creates no primitive, reorders
 * no weights and allocates nothing. */
moda_status frozen_run(frozen *f, const float *x, int n, float *logits);

/* OpenMP threads for batches of up to small_n samples: a count > 0, 0 for
 * the backend's, or FROZEN_THREADS_MEASURE: when such a batch size is
 * built, it is built both on the backend's threads and on one, the two
 * are timed in turns, and the faster is kept (a no-op for a backend of
 * one thread). Other batch sizes run on the backend's threads. Default:
 * batch 1, measured. Takes effect for batch sizes built after the call:
 * set it right after frozen_new. */
#define FROZEN_THREADS_MEASURE (-1)
void frozen_set_small_batch_threads(frozen *f, int small_n, int threads);

int frozen_max_batch(const frozen *f);
int frozen_classes(const frozen *f); /* K */
/* Bytes held: weights and every prepared batch size's buffers. */
size_t frozen_bytes(const frozen *f);
/* Layout changes (reorders) a pass at batch n runs, the input's and the
 * output's included; -1 when n is not prepared. For tests. */
int frozen_reorders(const frozen *f, int n);
/* Primitives a pass at batch n runs, reorders included; -1 when n is not
 * prepared. For tests. */
int frozen_steps(const frozen *f, int n);
/* OpenMP threads batch n runs on (0: OpenMP's default); -1 when n is not
 * prepared. */
int frozen_threads(const frozen *f, int n);

#endif
