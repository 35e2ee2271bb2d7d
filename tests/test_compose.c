/* Composition: hand-counted module sizes on a toy model, exactness at
 * tau = 0, and the property that proves the slicing: for random keep-masks
 * the composed model reproduces the full model with exactly the dropped
 * units zeroed, on VGG16, ResNet18, MobileNet and LeNet5, in both modes
 * (tied, and per-layer with mapped residual adds and the depthwise
 * intersection). */
#include "test_util.h"

#include "compose.h"
#include "decompose.h"
#include "models.h"

static moda_backend *be;

static int setup(void **state) { return tu_backend_setup_into(state, &be); }

/* Random nontrivial parameters, BN statistics included. */
static void randomize(graph *g, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 3);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        size_t n = graph_param_numel(p);
        if (strstr(p->name, "running_var")) rng_fill_uniform(&r, p->data, n, 0.5f, 1.5f);
        else if (p->ndim == 1) rng_fill_uniform(&r, p->data, n, -0.5f, 1.0f);
        else rng_fill_normal(&r, p->data, n, 0.0f, sqrtf(2.0f / (float)(n / p->shape[0])));
    }
}

static float *forward(graph *g, const float *x, int n) {
    assert_int_equal(graph_plan(g, n), MODA_OK);
    assert_int_equal(graph_forward(g, x, n, false), MODA_OK);
    graph_node *o = graph_output(g);
    float *y = tu_alloc(tensor_numel(&o->out));
    memcpy(y, o->out.data, tensor_numel(&o->out) * sizeof(float));
    return y;
}

/* Zero every parameter that produces a dropped unit: the conv/linear rows
 * and biases and the BN affine of channels the plan does not keep. */
static void zero_dropped(graph *g, const compose_plan *p) {
    for (int i = 1; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (i == g->output || !n->n_param) continue;
        int np = n->kind == NODE_BATCHNORM2D ? 2 : n->n_param;
        for (int j = 0; j < np; j++) {
            graph_param *q = &g->params[n->param[j]];
            size_t row = graph_param_numel(q) / (size_t)q->shape[0];
            for (int k = 0; k < q->shape[0]; k++)
                if (!p->keep[i][k]) memset(q->data + (size_t)k * row, 0, row * sizeof(float));
        }
    }
}

/* The full model with the tracked ReLUs' outputs zeroed where the plan
 * drops their units: the reference a composed model must equal. */
typedef struct mask_ctx {
    const compose_plan *p;
    const rates *r;
} mask_ctx;

static moda_status zero_dropped_units(graph *g, int node, void *ctx) {
    const mask_ctx *m = ctx;
    bool tracked = false;
    for (int l = 0; l < m->r->n_layers; l++) tracked |= m->r->node[l] == node;
    if (!tracked) return MODA_OK;
    graph_node *nd = &g->nodes[node];
    size_t plane = (size_t)nd->h * nd->w;
    for (int s = 0; s < g->batch; s++)
        for (int k = 0; k < nd->c; k++)
            if (!m->p->keep[node][k]) memset(nd->out.data + ((size_t)s * nd->c + k) * plane, 0, plane * sizeof(float));
    return MODA_OK;
}

static float *forward_masked(graph *g, const float *x, int n, const compose_plan *p, const rates *r) {
    mask_ctx m = {p, r};
    assert_int_equal(graph_plan(g, n), MODA_OK);
    assert_int_equal(graph_forward_hooked(g, x, n, false, zero_dropped_units, &m), MODA_OK);
    graph_node *o = graph_output(g);
    float *y = tu_alloc(tensor_numel(&o->out));
    memcpy(y, o->out.data, tensor_numel(&o->out) * sizeof(float));
    return y;
}

static void check_shapes(const graph *g, const graph *c, const compose_plan *p) {
    assert_int_equal(c->n_nodes, g->n_nodes);
    for (int i = 1; i < g->n_nodes; i++) {
        assert_int_equal(c->nodes[i].kind, g->nodes[i].kind);
        assert_int_equal(c->nodes[i].c, i == g->output ? p->n_classes : p->kept[i]);
        assert_int_equal(c->nodes[i].h, g->nodes[i].h);
        assert_int_equal(c->nodes[i].w, g->nodes[i].w);
    }
    assert_int_equal(graph_param_count(c), compose_plan_params(g, p));
    assert_true(fabs(graph_macs(c) - compose_plan_macs(g, p)) < 0.5);
}

static void fake_rates(const graph *g, rates *r, uint64_t seed) {
    assert_int_equal(rates_alloc(r, g, graph_output((graph *)g)->c), MODA_OK);
    rng q;
    rng_seed(&q, seed, 9);
    for (int l = 0; l < r->n_layers; l++)
        rng_fill_uniform(&q, r->rate[l], (size_t)r->num_classes * r->units[l], 0.0f, 1.0f);
}

static void property_case(model_arch arch, float width, uint64_t seed) {
    model_config cfg = model_config_default(arch);
    cfg.width = width;
    moda_status st;
    graph *g = model_build(be, &cfg, &st);
    assert_non_null(g);
    randomize(g, seed);
    rates r;
    fake_rates(g, &r, seed);
    rng q;
    rng_seed(&q, seed, 5);
    const int n = 3;
    float *x = tu_randn(&q, (size_t)n * 3 * 32 * 32, 1.0f);
    float *full = forward(g, x, n);

    /* tau 0 keeps every unit: all classes reproduce the logits, a subset
     * their columns in the order asked for. */
    int all[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, sub[3] = {7, 2, 5};
    for (int t = 0; t < 2; t++) {
        const int *cls = t ? sub : all;
        int nc = t ? 3 : 10;
        compose_plan p;
        graph *c = NULL;
        assert_int_equal(compose_plan_make_mode(g, &r, cls, nc, 0.0f, t ? COMPOSE_PER_LAYER : COMPOSE_TIED, &p), MODA_OK);
        assert_int_equal(compose_build(g, &p, be, &c), MODA_OK);
        check_shapes(g, c, &p);
        float *y = forward(c, x, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < nc; j++)
                assert_float_equal(y[i * nc + j], full[i * 10 + cls[j]], 1e-5 + 1e-5 * fabsf(full[i * 10 + cls[j]]));
        free(y);
        graph_free(c);
        compose_plan_free(&p);
    }

    /* Random masks, half the units of every tracked layer. */
    for (int trial = 0; trial < 2; trial++) {
        bool **masks = tu_random_masks(&q, r.n_layers, r.units, 0.5f);
        int cls[4] = {3, 9, 0, 6};
        compose_plan p;
        graph *c = NULL;
        assert_int_equal(compose_plan_from_masks(g, &r, masks, cls, 4, &p), MODA_OK);
        assert_int_equal(compose_build(g, &p, be, &c), MODA_OK);
        check_shapes(g, c, &p);
        assert_true(graph_param_count(c) < graph_param_count(g));
        float *y = forward(c, x, n);

        graph *m = model_build(be, &cfg, &st);
        for (int i = 0; i < g->n_params; i++)
            memcpy(m->params[i].data, g->params[i].data, graph_param_numel(&g->params[i]) * sizeof(float));
        zero_dropped(m, &p);
        float *masked = forward(m, x, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 4; j++) {
                float want = masked[i * 10 + cls[j]];
                if (!(fabsf(y[i * 4 + j] - want) <= 1e-4f + 1e-4f * fabsf(want)))
                    fail_msg("%s sample %d class %d: composed %.6g, masked full %.6g", model_arch_name(arch), i,
                             cls[j], y[i * 4 + j], want);
            }
        free(masked);
        free(y);
        graph_free(m);

        /* Per layer: each ReLU keeps its own units; equal to the full model
         * with exactly those dropped, never larger than tied. */
        compose_plan pl;
        graph *cl = NULL;
        assert_int_equal(compose_plan_from_masks_mode(g, &r, masks, cls, 4, COMPOSE_PER_LAYER, &pl), MODA_OK);
        assert_int_equal(pl.mode, COMPOSE_PER_LAYER);
        assert_int_equal(compose_build(g, &pl, be, &cl), MODA_OK);
        check_shapes(g, cl, &pl);
        assert_true(compose_plan_params(g, &pl) <= compose_plan_params(g, &p));
        assert_int_equal(graph_check_maps(cl), MODA_OK);
        int mapped = 0, narrower = 0;
        for (int i = 1; i < g->n_nodes; i++) {
            mapped += graph_add_is_mapped(&cl->nodes[i]);
            narrower += pl.kept[i] < p.kept[i];
        }
        if (arch == MODEL_RESNET18) assert_true(mapped > 0); /* the residual adds meet other selections */
        else assert_int_equal(mapped, 0);
        if (arch == MODEL_RESNET18 || arch == MODEL_MOBILENET) assert_true(narrower > 0);
        float *yl = forward(cl, x, n);
        for (int pass = 0; pass < 2; pass++) {
            const compose_plan *pp = pass ? &pl : &p;
            const float *got = pass ? yl : NULL;
            float *ytied = pass ? NULL : forward(c, x, n);
            if (!pass) got = ytied;
            graph *mm = model_build(be, &cfg, &st);
            for (int i = 0; i < g->n_params; i++)
                memcpy(mm->params[i].data, g->params[i].data, graph_param_numel(&g->params[i]) * sizeof(float));
            float *ref = forward_masked(mm, x, n, pp, &r);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < 4; j++) {
                    float want = ref[i * 10 + cls[j]];
                    if (!(fabsf(got[i * 4 + j] - want) <= 1e-4f + 1e-4f * fabsf(want)))
                        fail_msg("%s %s sample %d class %d: composed %.6g, full with dropped units zeroed %.6g",
                                 model_arch_name(arch), compose_mode_name(pp->mode), i, cls[j], got[i * 4 + j], want);
                }
            free(ref);
            free(ytied);
            graph_free(mm);
        }
        /* Composed again per layer (its maps compose with the new plan's),
         * from random masks over what it kept: equal to it with those
         * units dropped too. Tied cannot follow mapped adds. */
        rates rc;
        assert_int_equal(compose_rates(g, &r, &pl, cl, &rc), MODA_OK);
        bool **m2 = tu_random_masks(&q, rc.n_layers, rc.units, 0.7f);
        int sub2[2] = {3, 1}; /* of cl's outputs: classes 6 and 9 */
        compose_plan p2;
        graph *c2 = NULL;
        if (mapped) {
            assert_int_equal(compose_plan_from_masks(cl, &rc, m2, sub2, 2, &p2), MODA_ERR_UNSUPPORTED);
        }
        assert_int_equal(compose_plan_from_masks_mode(cl, &rc, m2, sub2, 2, COMPOSE_PER_LAYER, &p2), MODA_OK);
        assert_int_equal(compose_build(cl, &p2, be, &c2), MODA_OK);
        assert_int_equal(graph_check_maps(c2), MODA_OK);
        float *y2 = forward(c2, x, n), *ref2 = forward_masked(cl, x, n, &p2, &rc);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 2; j++) {
                float want = ref2[i * 4 + sub2[j]];
                if (!(fabsf(y2[i * 2 + j] - want) <= 1e-4f + 1e-4f * fabsf(want)))
                    fail_msg("%s composed twice, sample %d output %d: %.6g, want %.6g", model_arch_name(arch), i, j,
                             y2[i * 2 + j], want);
            }
        free(y2);
        free(ref2);
        graph_free(c2);
        compose_plan_free(&p2);
        tu_masks_free(m2, rc.n_layers);
        rates_free(&rc);
        free(yl);
        graph_free(cl);
        compose_plan_free(&pl);
        graph_free(c);
        compose_plan_free(&p);
        tu_masks_free(masks, r.n_layers);
    }
    free(full);
    free(x);
    rates_free(&r);
    graph_free(g);
}

static void test_property_vgg16(void **state) {
    (void)state;
    property_case(MODEL_VGG16, 0.125f, 1);
}

static void test_property_resnet18(void **state) {
    (void)state;
    property_case(MODEL_RESNET18, 0.125f, 2);
}

static void test_property_mobilenet(void **state) {
    (void)state;
    property_case(MODEL_MOBILENET, 0.125f, 3);
}

static void test_property_lenet5(void **state) {
    (void)state;
    property_case(MODEL_LENET5, 1.0f, 4);
}

/* Toy: input 1x4x4 -> conv 3x3 (1->4, bias) -> ReLU [A] -> conv 1x1 (4->4,
 * no bias) -> BN -> add(A) -> ReLU [B] -> GAP -> linear 4->3 (bias).
 * [A] and [B] are tied by the residual add. Full parameters:
 * conv0 4*9+4 = 40, conv1 16, bn 8, fc 12+3 = 15: 79. */
static void test_toy_counts(void **state) {
    (void)state;
    graph *g = graph_new(be, 1, 4, 4);
    int a = graph_relu(g, graph_conv2d(g, "conv0", 0, 4, 3, 1, 1, 1, true));
    int b = graph_batchnorm2d(g, "bn", graph_conv2d(g, "conv1", a, 4, 1, 1, 0, 1, false));
    int r2 = graph_relu(g, graph_add(g, b, a));
    graph_linear(g, "fc", graph_global_avgpool(g, r2), 3, true);
    assert_int_equal(graph_finalize(g), MODA_OK);
    assert_int_equal(graph_param_count(g), 79);

    rates r;
    assert_int_equal(rates_alloc(&r, g, 3), MODA_OK);
    assert_int_equal(r.n_layers, 2);
    /* Class 0: A = {0}, B = {1}  -> tied group keeps {0,1}.
     * Class 1: A = {1}, B = {1}  -> {1}.  Class 2: A = {2,3}, B = {} -> top-1 fallback (unit 3). */
    float ra[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 1}};
    float rb[3][4] = {{0, 1, 0, 0}, {0, 1, 0, 0}, {0.1f, 0.2f, 0.3f, 0.5f}};
    memcpy(r.rate[0], ra, sizeof ra);
    memcpy(r.rate[1], rb, sizeof rb);
    bool mask[4];
    assert_int_equal(decompose_mask(&r, 1, 2, 0.9f, mask), 1);
    assert_true(mask[3] && !mask[0] && !mask[1] && !mask[2]);

    /* Class 0 keeps 2 channels: conv0 2*9+2 = 20, conv1 2*2 = 4, bn 4,
     * fc 1 row: 2+1 = 3 -> 31. Class 1: 1 channel: 10+1+2+2 = 15.
     * Class 2: channels {2,3}: 20+4+4+3 = 31. */
    module_stats s;
    assert_int_equal(module_stats_compute(g, &r, 0.9f, &s), MODA_OK);
    assert_float_equal(s.size[0], 31.0 / 79, 1e-12);
    assert_float_equal(s.size[1], 15.0 / 79, 1e-12);
    assert_float_equal(s.size[2], 31.0 / 79, 1e-12);
    /* Shared: 0&1 channel {1}: 10+1+2 = 13 (no logits row); 0&2 none; 1&2 none. */
    assert_float_equal(s.overlap[0 * 3 + 1], 13.0 / 79, 1e-12);
    assert_float_equal(s.overlap[1 * 3 + 0], 13.0 / 79, 1e-12);
    assert_float_equal(s.overlap[0 * 3 + 2], 0.0, 1e-12);
    assert_float_equal(s.mean_size, (31.0 + 15 + 31) / 3 / 79, 1e-12);
    assert_float_equal(s.mean_overlap, 13.0 / 79 / 3, 1e-12);
    assert_int_equal(s.n_layers, 3);
    /* conv0 shared 10 of 40 in pair (0,1), 0 elsewhere: mean 10/40/3. */
    assert_float_equal(s.layer_overlap[0], 10.0 / 40 / 3, 1e-12);

    /* Composing {2, 0}: channels {0,1,2,3} minus none... class 0 {0,1} or
     * class 2 {2,3} = all 4 channels, 2 logits rows: 40+16+8+8+2 = 74. */
    compose_plan p;
    int cls[2] = {2, 0};
    assert_int_equal(compose_plan_make(g, &r, cls, 2, 0.9f, &p), MODA_OK);
    assert_int_equal(compose_plan_params(g, &p), 74);
    /* MACs: conv0 4*16*9 = 576, conv1 4*16*4 = 256, fc 2*4 = 8. */
    assert_float_equal(compose_plan_macs(g, &p), 840, 1e-9);
    compose_plan_free(&p);

    /* Per layer, class 0: [A] keeps {0}, [B] {1}. The add keeps B's {1}:
     * BN (and conv1's rows) {1}, A's channel 1 dropped so zero-filled;
     * conv1 reads A's {0}. conv0 9+1 = 10, conv1 1, bn 2, fc 1+1 = 2: 15.
     * MACs: conv0 16*9 = 144, conv1 16, fc 1. */
    int c0 = 0;
    assert_int_equal(compose_plan_make_mode(g, &r, &c0, 1, 0.9f, COMPOSE_PER_LAYER, &p), MODA_OK);
    assert_int_equal(compose_plan_params(g, &p), 15);
    assert_float_equal(compose_plan_macs(g, &p), 161, 1e-9);
    graph *cg = NULL;
    assert_int_equal(compose_build(g, &p, be, &cg), MODA_OK);
    const graph_node *add = &cg->nodes[g->nodes[r2].in[0]];
    assert_true(graph_add_is_mapped(add));
    assert_int_equal(add->c, 1);
    assert_float_equal(cg->params[add->param[0]].data[0], 0.0f, 0.0f);  /* bn's only channel */
    assert_float_equal(cg->params[add->param[1]].data[0], -1.0f, 0.0f); /* A dropped channel 1 */
    /* A per-layer composed model is composed again per layer, not tied. */
    rates rc;
    assert_int_equal(compose_rates(g, &r, &p, cg, &rc), MODA_OK);
    compose_plan again;
    assert_int_equal(compose_plan_make_mode(cg, &rc, &c0, 1, 0.9f, COMPOSE_TIED, &again), MODA_ERR_UNSUPPORTED);
    assert_int_equal(compose_plan_make_mode(cg, &rc, &c0, 1, 0.9f, COMPOSE_PER_LAYER, &again), MODA_OK);
    assert_int_equal(compose_plan_params(cg, &again), 15);
    compose_plan_free(&again);
    rates_free(&rc);
    graph_free(cg);
    compose_plan_free(&p);
    module_stats sl;
    assert_int_equal(module_stats_compute_mode(g, &r, 0.9f, COMPOSE_PER_LAYER, &sl), MODA_OK);
    assert_float_equal(sl.size[0], 15.0 / 79, 1e-12);
    module_stats_free(&sl);
    compose_mode mode;
    assert_true(compose_mode_parse("per-layer", &mode) && mode == COMPOSE_PER_LAYER);
    assert_true(compose_mode_parse("tied", &mode) && mode == COMPOSE_TIED);
    assert_false(compose_mode_parse("Tied", &mode));
    assert_string_equal(compose_mode_name(COMPOSE_PER_LAYER), "per-layer");

    /* Bad class sets. */
    int dup[2] = {1, 1}, out[1] = {3};
    assert_int_equal(compose_plan_make(g, &r, dup, 2, 0.9f, &p), MODA_ERR_ARG);
    compose_plan junk; /* a failed make leaves a plan that frees cleanly, whatever it held */
    memset(&junk, 0xA5, sizeof junk);
    assert_int_equal(compose_plan_make(g, &r, dup, 2, 0.9f, &junk), MODA_ERR_ARG);
    compose_plan_free(&junk);
    assert_int_equal(compose_plan_make(g, &r, out, 1, 0.9f, &p), MODA_ERR_ARG);
    assert_int_equal(compose_plan_make(g, &r, cls, 0, 0.9f, &p), MODA_ERR_ARG);
    assert_int_equal(compose_plan_make(g, &r, cls, 2, 1.5f, &p), MODA_ERR_ARG);
    assert_int_equal(compose_plan_make(NULL, &r, cls, 2, 0.9f, &p), MODA_ERR_NULL);
    compose_plan_free(NULL);
    module_stats_free(&s);
    module_stats_free(NULL);
    rates_free(&r);
    graph_free(g);
}

/* Per layer, a depthwise intersection that would be empty: [A] keeps
 * {0}, the depthwise ReLU [B] {1}. B's unit is then kept in A as well
 * (A {0, 1}), and since only the depthwise conv reads A, A keeps {1}:
 * one channel throughout, equal to the full model with A's unit 0 and B's
 * unit 0 dropped. */
static void test_depthwise_fallback(void **state) {
    (void)state;
    graph *g = graph_new(be, 1, 4, 4);
    int a = graph_relu(g, graph_conv2d(g, "conv0", 0, 2, 3, 1, 1, 1, true));
    int d = graph_batchnorm2d(g, "bn", graph_conv2d(g, "dw", a, 2, 3, 1, 1, 2, false));
    int b = graph_relu(g, d);
    graph_linear(g, "fc", graph_global_avgpool(g, b), 3, true);
    assert_int_equal(graph_finalize(g), MODA_OK);
    randomize(g, 31);
    rates r;
    assert_int_equal(rates_alloc(&r, g, 3), MODA_OK);
    bool ma[2] = {true, false}, mb[2] = {false, true};
    bool *masks[2] = {ma, mb};
    int cls[2] = {2, 0};
    compose_plan p;
    assert_int_equal(compose_plan_from_masks_mode(g, &r, masks, cls, 2, COMPOSE_PER_LAYER, &p), MODA_OK);
    assert_int_equal(p.kept[a], 1);
    assert_true(p.keep[a][1]);
    assert_int_equal(p.kept[b], 1);
    assert_true(p.keep[b][1]);
    graph *c = NULL;
    assert_int_equal(compose_build(g, &p, be, &c), MODA_OK);
    rng q;
    rng_seed(&q, 31, 1);
    float *x = tu_randn(&q, 2 * 16, 1.0f);
    float *y = forward(c, x, 2), *ref = forward_masked(g, x, 2, &p, &r);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) assert_float_equal(y[i * 2 + j], ref[i * 3 + cls[j]], 1e-5);
    free(x);
    free(y);
    free(ref);
    graph_free(c);
    compose_plan_free(&p);
    rates_free(&r);
    graph_free(g);
}

/* Forward from a cut: ResNet18's residual blocks leave nodes that later
 * nodes read past (not cuts), the rest are cuts; from every cut the
 * remaining nodes, given that node's activations, give the full forward
 * pass's logits exactly (same batch, same kernels, same data). */
static void test_forward_from_cuts(void **state) {
    (void)state;
    model_config cfg = model_config_default(MODEL_RESNET18);
    cfg.width = 0.125f;
    moda_status st;
    graph *g = model_build(be, &cfg, &st);
    assert_non_null(g);
    randomize(g, 21);
    rng q;
    rng_seed(&q, 21, 5);
    const int n = 3, k = cfg.num_classes;
    float *x = tu_randn(&q, (size_t)n * 3 * 32 * 32, 1.0f);
    assert_int_equal(graph_plan_inference(g, n), MODA_OK);
    assert_int_equal(graph_forward(g, x, n, false), MODA_OK);
    float *want = tu_alloc((size_t)n * k);
    memcpy(want, graph_output(g)->out.data, (size_t)n * k * sizeof(float));
    /* Every node's activations from that one pass. */
    float **acts = calloc((size_t)g->n_nodes, sizeof(*acts));
    assert_non_null(acts);
    for (int i = 0; i < g->n_nodes; i++) {
        size_t numel = tensor_numel(&g->nodes[i].out);
        acts[i] = tu_alloc(numel);
        memcpy(acts[i], g->nodes[i].out.data, numel * sizeof(float));
    }
    int cuts = 0, non_cuts = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!graph_is_cut(g, i)) {
            non_cuts++;
            if (i != g->output) assert_int_equal(graph_forward_from(g, i, acts[i], n), MODA_ERR_ARG);
            continue;
        }
        cuts++;
        assert_int_equal(graph_forward_from(g, i, acts[i], n), MODA_OK);
        assert_memory_equal(graph_output(g)->out.data, want, (size_t)n * k * sizeof(float));
        assert_memory_equal(g->nodes[i].out.data, acts[i], tensor_numel(&g->nodes[i].out) * sizeof(float));
    }
    /* Each of the 8 blocks reads its input again at its add: the nodes
     * inside a block are not cuts. */
    assert_true(non_cuts > 8 * 4);
    assert_true(cuts >= 8 + 1);
    assert_false(graph_is_cut(g, g->output));
    assert_false(graph_is_cut(g, -1));
    assert_false(graph_is_cut(g, g->n_nodes));
    assert_int_equal(graph_forward_from(g, 0, x, n + 1), MODA_ERR_ARG); /* over the plan */
    assert_int_equal(graph_forward_from(g, 0, NULL, n), MODA_ERR_NULL);
    for (int i = 0; i < g->n_nodes; i++) free(acts[i]);
    free(acts);
    free(want);
    free(x);
    graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toy_counts),
        cmocka_unit_test(test_depthwise_fallback),         cmocka_unit_test(test_property_lenet5),
        cmocka_unit_test(test_property_vgg16),     cmocka_unit_test(test_property_resnet18),
        cmocka_unit_test(test_property_mobilenet), cmocka_unit_test(test_forward_from_cuts),
    };
    return cmocka_run_group_tests(tests, setup, tu_backend_teardown);
}
