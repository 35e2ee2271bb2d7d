/* The four classifier architectures (CIFAR-style VGG16-BN, ResNet18,
 * MobileNet v1, and LeNet5) built as graphs, with the reference
 * initialisation.
 *
 * Parameter names follow the PyTorch module layout, so a checkpoint reads
 * naturally there: VGG "features.<i>.*" and "classifier.<i>.*"; ResNet
 * "conv1", "bn1", "layer<s>.<b>.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}",
 * "linear"; MobileNet "conv1", "bn1", "layers.<i>.{conv1,bn1,conv2,bn2}"
 * (conv1 depthwise, conv2 pointwise), "linear"; LeNet5 "conv1", "conv2",
 * "fc1", "fc2", "fc3".
 *
 * Width: every conv channel count c becomes max(1, round(c * width)),
 * rounding halves away from zero. Hidden FC sizes (VGG 4096, LeNet5 120
 * and 84) do not scale; FC inputs follow the scaled conv outputs.
 */
#ifndef MODA_MODELS_H
#define MODA_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "graph.h"
#include "status.h"

typedef enum model_arch {
    MODEL_VGG16,
    MODEL_RESNET18,
    MODEL_MOBILENET,
    MODEL_LENET5,
    MODEL_ARCH_COUNT,
} model_arch;

/* "vgg16", "resnet18", "mobilenet", "lenet5"; NULL for an invalid value. */
const char *model_arch_name(model_arch a);
/* Exact lower-case name; MODA_ERR_NOT_FOUND if unknown, MODA_ERR_NULL for NULL. */
moda_status model_arch_from_name(const char *name, model_arch *out);

typedef struct model_config {
    model_arch arch;
    float width;     /* channel multiplier, (0, 16]; 1 = the paper's models */
    int in_channels; /* 1..4096 */
    int num_classes; /* 1..1000000 */
    int input_size;  /* H = W */
} model_config;

/* width 1, 3 channels, 10 classes, 32x32. */
model_config model_config_default(model_arch a);

/* Channel count c at width w: max(1, round(c * w)). */
int model_scale_channels(int c, float width);

/* Check that the configuration is valid and the input size fits the
 * architecture (VGG16: a multiple of 32; ResNet18: >= 8; MobileNet: >= 16;
 * LeNet5: >= 16). On failure returns MODA_ERR_ARG (MODA_ERR_NULL for NULL)
 * and, when msg is non-NULL, writes a one-line reason into msg[msg_len]. */
moda_status model_validate(const model_config *cfg, char *msg, size_t msg_len);

/* Build and finalize the graph (parameters allocated, not yet initialised:
 * call model_init). Returns NULL and sets *st (may be NULL) on failure. */
graph *model_build(moda_backend *be, const model_config *cfg, moda_status *st);

/* Initialise every parameter as the reference does; the same seed gives the
 * same values. Conv weights: Kaiming normal, fan_out, ReLU gain, i.e.
 * std = sqrt(2 / fan_out) with PyTorch's fan_out = out_channels * kh * kw
 * (groups do not enter); conv bias 0. BN: gamma 1, beta 0, running mean 0,
 * running var 1. Linear: VGG16 and MobileNet N(0, 0.01), bias 0; ResNet18
 * and LeNet5 PyTorch's nn.Linear default, weight and bias
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)). LeNet5 convs use the same Kaiming
 * rule as the others. */
moda_status model_init(graph *g, const model_config *cfg, uint64_t seed);

#endif
