#include "models.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const char *const arch_names[MODEL_ARCH_COUNT] = {
    [MODEL_VGG16] = "vgg16",
    [MODEL_RESNET18] = "resnet18",
    [MODEL_MOBILENET] = "mobilenet",
    [MODEL_LENET5] = "lenet5",
};

const char *model_arch_name(model_arch a) {
    if ((int)a < 0 || a >= MODEL_ARCH_COUNT) return NULL;
    return arch_names[a];
}

moda_status model_arch_from_name(const char *name, model_arch *out) {
    if (!name || !out) return MODA_ERR_NULL;
    for (int i = 0; i < MODEL_ARCH_COUNT; i++) {
        if (strcmp(name, arch_names[i]) == 0) {
            *out = (model_arch)i;
            return MODA_OK;
        }
    }
    return MODA_ERR_NOT_FOUND;
}

model_config model_config_default(model_arch a) {
    return (model_config){.arch = a, .width = 1.0f, .in_channels = 3, .num_classes = 10, .input_size = 32};
}

int model_scale_channels(int c, float width) {
    long v = lround((double)c * (double)width);
    return v < 1 ? 1 : (int)v;
}

/* Limits that keep every size and element count far from int overflow. */
#define MAX_WIDTH 16.0f
#define MAX_IN_CHANNELS 4096
#define MAX_CLASSES 1000000
#define MAX_INPUT_SIZE 4096

static moda_status fail(char *msg, size_t len, const char *fmt, ...) {
    if (msg && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
    }
    return MODA_ERR_ARG;
}

moda_status model_validate(const model_config *cfg, char *msg, size_t msg_len) {
    if (msg && msg_len) msg[0] = '\0';
    if (!cfg) return MODA_ERR_NULL;
    const char *name = model_arch_name(cfg->arch);
    if (!name) return fail(msg, msg_len, "unknown architecture id %d", (int)cfg->arch);
    if (!(cfg->width > 0.0f && cfg->width <= MAX_WIDTH))
        return fail(msg, msg_len, "width %g is out of range (0, %g]", (double)cfg->width, (double)MAX_WIDTH);
    if (cfg->in_channels < 1 || cfg->in_channels > MAX_IN_CHANNELS)
        return fail(msg, msg_len, "input channels %d out of range 1..%d", cfg->in_channels, MAX_IN_CHANNELS);
    if (cfg->num_classes < 1 || cfg->num_classes > MAX_CLASSES)
        return fail(msg, msg_len, "class count %d out of range 1..%d", cfg->num_classes, MAX_CLASSES);
    int s = cfg->input_size;
    if (s < 1 || s > MAX_INPUT_SIZE)
        return fail(msg, msg_len, "input size %d out of range 1..%d", s, MAX_INPUT_SIZE);
    switch (cfg->arch) {
    case MODEL_VGG16:
        /* Five 2x2 poolings; a multiple of 32 keeps every map even. */
        if (s % 32 != 0)
            return fail(msg, msg_len, "vgg16 needs an input size that is a multiple of 32 (got %d)", s);
        break;
    case MODEL_RESNET18:
        if (s < 8) return fail(msg, msg_len, "resnet18 needs an input size of at least 8 (got %d)", s);
        break;
    case MODEL_MOBILENET:
        if (s < 16) return fail(msg, msg_len, "mobilenet needs an input size of at least 16 (got %d)", s);
        break;
    case MODEL_LENET5:
        /* conv5 -> pool2 -> conv5 -> pool2 (floor): ((s-4)/2-4)/2 >= 1. */
        if (s < 16) return fail(msg, msg_len, "lenet5 needs an input size of at least 16 (got %d)", s);
        break;
    default: break;
    }
    return MODA_OK;
}

/* Module prefix into a fixed buffer; names are short and bounded. */
static const char *nm(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, GRAPH_NAME_MAX, fmt, ap);
    va_end(ap);
    return buf;
}

/* VGG16 feature config: channel counts, 0 = 2x2 max pool. */
static const int vgg16_cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};

static void build_vgg16(graph *g, const model_config *cfg) {
    char b[GRAPH_NAME_MAX];
    int x = graph_input(g);
    int idx = 0; /* position in the PyTorch nn.Sequential "features" */
    for (size_t i = 0; i < sizeof vgg16_cfg / sizeof vgg16_cfg[0]; i++) {
        if (vgg16_cfg[i] == 0) {
            x = graph_maxpool2d(g, x, 2, 2, 0);
            idx += 1;
            continue;
        }
        int c = model_scale_channels(vgg16_cfg[i], cfg->width);
        x = graph_conv2d(g, nm(b, "features.%d", idx), x, c, 3, 1, 1, 1, true);
        x = graph_batchnorm2d(g, nm(b, "features.%d", idx + 1), x);
        x = graph_relu(g, x);
        idx += 3;
    }
    x = graph_flatten(g, x); /* c * (input/32)^2 features */
    x = graph_linear(g, "classifier.0", x, 4096, true);
    x = graph_relu(g, x);
    x = graph_linear(g, "classifier.2", x, 4096, true);
    x = graph_relu(g, x);
    graph_linear(g, "classifier.4", x, cfg->num_classes, true);
}

static int resnet_block(graph *g, const char *pre, int x, int in_c, int out_c, int stride) {
    char b[GRAPH_NAME_MAX];
    int y = graph_conv2d(g, nm(b, "%s.conv1", pre), x, out_c, 3, stride, 1, 1, false);
    y = graph_batchnorm2d(g, nm(b, "%s.bn1", pre), y);
    y = graph_relu(g, y);
    y = graph_conv2d(g, nm(b, "%s.conv2", pre), y, out_c, 3, 1, 1, 1, false);
    y = graph_batchnorm2d(g, nm(b, "%s.bn2", pre), y);
    int sc = x;
    if (stride != 1 || in_c != out_c) {
        sc = graph_conv2d(g, nm(b, "%s.shortcut.0", pre), x, out_c, 1, stride, 0, 1, false);
        sc = graph_batchnorm2d(g, nm(b, "%s.shortcut.1", pre), sc);
    }
    return graph_relu(g, graph_add(g, y, sc));
}

static void build_resnet18(graph *g, const model_config *cfg) {
    static const int planes[4] = {64, 128, 256, 512};
    char b[GRAPH_NAME_MAX];
    int c = model_scale_channels(64, cfg->width);
    int x = graph_conv2d(g, "conv1", graph_input(g), c, 3, 1, 1, 1, false);
    x = graph_batchnorm2d(g, "bn1", x);
    x = graph_relu(g, x);
    for (int st = 0; st < 4; st++) {
        int out_c = model_scale_channels(planes[st], cfg->width);
        for (int blk = 0; blk < 2; blk++) {
            int stride = (st > 0 && blk == 0) ? 2 : 1;
            x = resnet_block(g, nm(b, "layer%d.%d", st + 1, blk), x, c, out_c, stride);
            c = out_c;
        }
    }
    x = graph_global_avgpool(g, x);
    graph_linear(g, "linear", x, cfg->num_classes, true);
}

static void build_mobilenet(graph *g, const model_config *cfg) {
    /* Pointwise output channels and depthwise stride of the 13 blocks. */
    static const int out[13] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
    static const int stride[13] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
    char b[GRAPH_NAME_MAX];
    int c = model_scale_channels(32, cfg->width);
    int x = graph_conv2d(g, "conv1", graph_input(g), c, 3, 1, 1, 1, false);
    x = graph_batchnorm2d(g, "bn1", x);
    x = graph_relu(g, x);
    for (int i = 0; i < 13; i++) {
        x = graph_conv2d(g, nm(b, "layers.%d.conv1", i), x, c, 3, stride[i], 1, c, false);
        x = graph_batchnorm2d(g, nm(b, "layers.%d.bn1", i), x);
        x = graph_relu(g, x);
        c = model_scale_channels(out[i], cfg->width);
        x = graph_conv2d(g, nm(b, "layers.%d.conv2", i), x, c, 1, 1, 0, 1, false);
        x = graph_batchnorm2d(g, nm(b, "layers.%d.bn2", i), x);
        x = graph_relu(g, x);
    }
    x = graph_global_avgpool(g, x);
    graph_linear(g, "linear", x, cfg->num_classes, true);
}

static void build_lenet5(graph *g, const model_config *cfg) {
    int x = graph_conv2d(g, "conv1", graph_input(g), model_scale_channels(6, cfg->width), 5, 1, 0, 1, true);
    x = graph_maxpool2d(g, graph_relu(g, x), 2, 2, 0);
    x = graph_conv2d(g, "conv2", x, model_scale_channels(16, cfg->width), 5, 1, 0, 1, true);
    x = graph_maxpool2d(g, graph_relu(g, x), 2, 2, 0);
    x = graph_flatten(g, x);
    x = graph_relu(g, graph_linear(g, "fc1", x, 120, true));
    x = graph_relu(g, graph_linear(g, "fc2", x, 84, true));
    graph_linear(g, "fc3", x, cfg->num_classes, true);
}

graph *model_build(moda_backend *be, const model_config *cfg, moda_status *st) {
    moda_status s = MODA_OK;
    graph *g = NULL;
    if (!be || !cfg) {
        s = MODA_ERR_NULL;
        goto out;
    }
    if ((s = model_validate(cfg, NULL, 0)) != MODA_OK) goto out;
    g = graph_new(be, cfg->in_channels, cfg->input_size, cfg->input_size);
    if (!g) {
        s = MODA_ERR_NOMEM;
        goto out;
    }
    switch (cfg->arch) {
    case MODEL_VGG16: build_vgg16(g, cfg); break;
    case MODEL_RESNET18: build_resnet18(g, cfg); break;
    case MODEL_MOBILENET: build_mobilenet(g, cfg); break;
    case MODEL_LENET5: build_lenet5(g, cfg); break;
    default: s = MODA_ERR_ARG; break;
    }
    /* Builder errors are sticky in the graph and reported here. */
    if (s == MODA_OK) s = graph_finalize(g);
    if (s != MODA_OK) {
        graph_free(g);
        g = NULL;
    }
out:
    if (st) *st = s;
    return g;
}

/* How one parameter is filled. */
typedef enum fill_kind { FILL_CONST, FILL_NORMAL, FILL_UNIFORM } fill_kind;

typedef struct fill_rule {
    fill_kind kind;
    float a, b; /* const: a; normal: mean a, std b; uniform: [a, b) */
} fill_rule;

static fill_rule rule_const(float v) { return (fill_rule){FILL_CONST, v, 0.0f}; }

/* The rule for parameter `slot` of node n (see graph_node.param). */
static fill_rule init_rule(const graph *g, const graph_node *n, int slot, model_arch arch) {
    switch (n->kind) {
    case NODE_CONV2D: {
        if (slot != 0) return rule_const(0.0f);
        /* PyTorch: fan_out = weight.size(0) * kh * kw, groups ignored. */
        double fan_out = (double)n->c * n->p.conv.kh * n->p.conv.kw;
        return (fill_rule){FILL_NORMAL, 0.0f, (float)sqrt(2.0 / fan_out)};
    }
    case NODE_BATCHNORM2D:
        /* gamma, beta, running mean, running var */
        return rule_const(slot == 0 || slot == 3 ? 1.0f : 0.0f);
    case NODE_LINEAR: {
        if (arch == MODEL_VGG16 || arch == MODEL_MOBILENET)
            return slot == 0 ? (fill_rule){FILL_NORMAL, 0.0f, 0.01f} : rule_const(0.0f);
        /* nn.Linear default: kaiming_uniform(a=sqrt(5)) gives bound
         * 1/sqrt(fan_in) for the weight; the bias uses the same bound. */
        const graph_param *w = &g->params[n->param[0]];
        float bound = (float)(1.0 / sqrt((double)w->shape[1]));
        return (fill_rule){FILL_UNIFORM, -bound, bound};
    }
    default: return rule_const(0.0f);
    }
}

moda_status model_init(graph *g, const model_config *cfg, uint64_t seed) {
    if (!g || !cfg || !g->be) return MODA_ERR_NULL;
    if (!model_arch_name(cfg->arch)) return MODA_ERR_ARG;
    if (!g->finalized) return MODA_ERR_STATE;

    size_t max_n = 0;
    for (int i = 0; i < g->n_params; i++) {
        size_t n = graph_param_numel(&g->params[i]);
        if (n > max_n) max_n = n;
    }
    /* Values are generated on the host and copied, so this works for any
     * backend's parameter memory. */
    float *host = malloc((max_n ? max_n : 1) * sizeof *host);
    if (!host) return MODA_ERR_NOMEM;

    moda_status s = MODA_OK;
    for (int ni = 0; ni < g->n_nodes && s == MODA_OK; ni++) {
        const graph_node *n = &g->nodes[ni];
        for (int slot = 0; slot < n->n_param && s == MODA_OK; slot++) {
            int pi = n->param[slot];
            graph_param *p = &g->params[pi];
            size_t cnt = graph_param_numel(p);
            fill_rule r = init_rule(g, n, slot, cfg->arch);
            /* One stream per parameter: a layer's values depend only on
             * the seed and its position, not on how much came before. */
            rng gen;
            rng_seed(&gen, seed, (uint64_t)pi + 1);
            switch (r.kind) {
            case FILL_CONST:
                for (size_t k = 0; k < cnt; k++) host[k] = r.a;
                break;
            case FILL_NORMAL: rng_fill_normal(&gen, host, cnt, r.a, r.b); break;
            case FILL_UNIFORM: rng_fill_uniform(&gen, host, cnt, r.a, r.b); break;
            }
            s = backend_copy_to_device(g->be, p->data, host, cnt * sizeof *host);
        }
    }
    free(host);
    return s;
}
