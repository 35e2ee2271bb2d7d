/* A model as a DAG of nodes with named parameters.
 *
 * Build: graph_new(), then graph_* builder calls, each returning the new
 * node's index (its inputs must already exist, so insertion order is a
 * topological order). A builder error is remembered in g->err and reported
 * by graph_finalize(). Finalize allocates the parameter and gradient slabs;
 * graph_plan() allocates activations for a maximum batch size.
 *
 * Run: graph_forward() on a batch of n <= planned samples, then, for
 * training, write d(loss)/d(logits) into graph_output(g)->grad and call
 * graph_backward(), which writes every parameter gradient (overwriting). */
#ifndef MODA_GRAPH_H
#define MODA_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "tensor.h"

#define GRAPH_NAME_MAX 96

typedef enum node_kind {
    NODE_INPUT,
    NODE_CONV2D,
    NODE_BATCHNORM2D,
    NODE_RELU,
    NODE_MAXPOOL2D,
    NODE_GLOBAL_AVGPOOL,
    NODE_FLATTEN,
    NODE_LINEAR,
    NODE_ADD,
} node_kind;

const char *node_kind_name(node_kind k);

typedef struct graph_param {
    char name[GRAPH_NAME_MAX]; /* PyTorch-style, e.g. "features.0.weight" */
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    bool trainable; /* false for BN running statistics */
    float *data;    /* (shape), in the params slab */
    float *grad;    /* (shape), in the grads slab; NULL if not trainable or
                     * before graph_alloc_grads() */
} graph_param;

size_t graph_param_numel(const graph_param *p);

typedef struct graph_node {
    node_kind kind;
    char name[GRAPH_NAME_MAX]; /* module prefix, e.g. "features.0" */
    int in[2];                 /* input node indices */
    int n_in;
    int ndim;                  /* 4: (N,c,h,w) maps; 2: (N,c) vectors */
    int c, h, w;               /* per-sample output shape (h = w = 1 if ndim 2) */
    union {
        conv2d_params conv;
        pool2d_params pool;
        batchnorm_params bn;
    } p;
    bool has_bias;   /* conv2d, linear */
    int param[4];    /* conv/linear: weight[, bias]; bn: gamma, beta, running mean, running var */
    int n_param;

    /* Set by graph_plan() / graph_forward(); batch dim = current batch. */
    tensor out;      /* forward output */
    tensor grad;     /* d(loss)/d(out) */
    float *save_a;   /* BN: batch mean (c) */
    float *save_b;   /* BN: batch variance (c) */
    void *ws;        /* maxpool workspace */
    int n_consumers; /* nodes that read this output */
} graph_node;

typedef struct graph {
    int in_c, in_h, in_w;
    graph_node *nodes; /* owned */
    int n_nodes, cap_nodes;
    graph_param *params; /* owned */
    int n_params, cap_params;
    int output;          /* index of the logits node (the last node added) */
    moda_status err;     /* first builder error */
    bool finalized;

    moda_backend *be;   /* not owned */
    arena param_slab;   /* all parameter and buffer values */
    arena grad_slab;    /* gradients of trainable parameters, allocated lazily */
    arena act_slab;     /* activations, their gradients, saved statistics */
    int max_batch;      /* planned by graph_plan(), 0 before */
    int batch;          /* samples in the last forward pass */
    bool trained_forward; /* last forward ran in train mode */
    float *scratch;     /* fan-in gradients, largest activation; NULL when inference_only */
    float *input_buf;   /* the input, copied in; only where the backend has memory of its own */
    bool inference_only; /* planned without activation gradients */
    bool shares_params;  /* a graph_share() handle: parameter values belong to another graph */
    bool *grad_ready;   /* per node, during backward; owned */
} graph;

graph *graph_new(moda_backend *be, int in_c, int in_h, int in_w);
void graph_free(graph *g); /* accepts NULL */

/* Builders. `name` is the module prefix used for parameter names; it may be
 * NULL for parameter-free nodes. Return the node index, or -1 on error. */
int graph_input(graph *g); /* always node 0; added by graph_new() */
int graph_conv2d(graph *g, const char *name, int x, int out_c, int k, int stride, int pad, int groups,
                 bool bias);
int graph_batchnorm2d(graph *g, const char *name, int x);
int graph_relu(graph *g, int x);
int graph_maxpool2d(graph *g, int x, int k, int stride, int pad);
int graph_global_avgpool(graph *g, int x);
int graph_flatten(graph *g, int x);
int graph_linear(graph *g, const char *name, int x, int out_features, bool bias);
int graph_add(graph *g, int a, int b);
/* An add whose addends are channel selections: output channel j (of out_c)
 * is a[map_a[j]] + b[map_b[j]], an index of -1 reading zero. The maps are
 * two non-trainable parameters "<name>.map_a" and "<name>.map_b" (float
 * (out_c), integral values), set once the graph is finalized; they travel
 * with the weights. a and b must agree in every dimension but channels.
 * This is how a composed model keeps each layer's own channels where a
 * residual add meets two different selections (compose.h). Forward only. */
int graph_add_mapped(graph *g, const char *name, int a, int b, int out_c);
/* True for an add made by graph_add_mapped. */
bool graph_add_is_mapped(const graph_node *n);
/* Every mapped add's maps hold integral values in [-1, input channels),
 * no input channel twice: MODA_ERR_FORMAT naming nothing otherwise (the
 * caller knows the file). */
moda_status graph_check_maps(const graph *g);

/* Replay src's layers (all but its input) in dst, reading dst's node `at`
 * where src reads its input, parameter names prefixed with prefix. map
 * (room for src->n_nodes) receives dst's index of each src node. Returns
 * dst's node of src's output, or -1 when dst is finalized, `at`'s shape is
 * not src's input shape or a builder fails. Parameter values follow with
 * graph_copy_params once dst is finalized. */
int graph_extend(graph *dst, const graph *src, int at, const char *prefix, int *map);
/* Copy every parameter and buffer of src into dst's parameter of the same
 * name with prefix (MODA_ERR_NOT_FOUND, MODA_ERR_SHAPE when it is missing
 * or differs). */
moda_status graph_copy_params(graph *dst, const graph *src, const char *prefix);

/* Allocate the parameter slab: weights zero, BN gamma 1 and running var 1. */
moda_status graph_finalize(graph *g);
/* Allocate the gradient slab (zeroed); done by graph_backward and sgd_init,
 * so models that only run inference never carry one. Idempotent. */
moda_status graph_alloc_grads(graph *g);
/* Allocate activations for batches of up to max_batch samples. */
moda_status graph_plan(graph *g, int max_batch);

/* As graph_plan, without activation gradients: forward only (backward
 * returns MODA_ERR_STATE). About half the memory. */
moda_status graph_plan_inference(graph *g, int max_batch);

/* A second handle on g's parameters, for running inference on another
 * thread with its own backend: nodes and parameter descriptors are copied,
 * parameter values are shared (g must outlive it and not change while it
 * runs). It has no activations until graph_plan_inference(), never
 * gradients, and rejects train-mode forward passes. Free with graph_free().
 * NULL on bad arguments or out of memory. */
graph *graph_share(const graph *g, moda_backend *be);

/* Bytes held: parameter values and gradients; activations as planned. */
size_t graph_param_bytes(const graph *g);
size_t graph_activation_bytes(const graph *g);

/* x: (n, in_c, in_h, in_w) in backend memory. train selects BN batch
 * statistics (and updates running statistics). */
moda_status graph_forward(graph *g, const float *x, int n, bool train);
/* graph_forward, calling hook(g, i, ctx) once node i's output is computed
 * (and readable from the host), before any later node reads it; the hook
 * may change node->out. For inspecting or masking activations. */
typedef moda_status (*graph_fwd_hook)(graph *g, int node, void *ctx);
moda_status graph_forward_hooked(graph *g, const float *x, int n, bool train, graph_fwd_hook hook, void *ctx);
/* A cut is a node (not the logits) that no later node reads past: every
 * node after it reads only it or later nodes, so the rest of the network
 * depends on the input through this one activation alone. A flatten of
 * the input is not one: it shares the caller's input buffer. */
bool graph_is_cut(const graph *g, int node);
/* Eval-mode forward of the nodes after cut `node`, given that node's
 * activations act (n samples, its per-sample shape; copied in). Node 0 is
 * the input, making this graph_forward. For running many models that share
 * a prefix of layers on activations computed once. */
moda_status graph_forward_from(graph *g, int node, const float *act, int n);

/* Called for each node just before its backward step, once node->grad holds
 * the gradient from every consumer; it may add to node->grad (this is how
 * auxiliary losses on hidden activations enter). NULL for none. */
typedef moda_status (*graph_grad_hook)(graph *g, int node, void *ctx);
moda_status graph_backward(graph *g, graph_grad_hook hook, void *ctx);

graph_node *graph_output(graph *g);
int graph_find_param(const graph *g, const char *name); /* index or -1 */

/* Counts. Parameters: trainable only (a 3x3 kernel counts 9). FLOPs:
 * multiply-adds of conv and linear layers for one sample. */
size_t graph_param_count(const graph *g);
double graph_macs(const graph *g);

#endif
