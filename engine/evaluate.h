/* Eval-mode passes of a model over a prepared split. */
#ifndef MODA_EVALUATE_H
#define MODA_EVALUATE_H

#include "dataset.h"
#include "graph.h"
#include "status.h"

typedef struct eval_result {
    double loss, acc;
    int *correct, *total; /* (K) per class, owned */
} eval_result;

/* Index of the largest of v[0..k); the first on ties. */
int logits_argmax(const float *v, int k);

/* Eval-mode pass over ds in order; g must be planned for batch_size. */
moda_status evaluate(graph *g, const dataset *ds, int batch_size, eval_result *r);
void eval_result_free(eval_result *r);

/* Eval-mode outputs of g for every sample of ds, in order, in batches of
 * at most `batch` (g planned for it): out (n, outputs) on the host and,
 * when capture (backend memory) is set, node `node`'s activations (n, its
 * numel). */
moda_status evaluate_outputs(graph *g, const dataset *ds, int batch, float *out, int node, float *capture);

#endif
