/* moda: the offline trainer and tool CLI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "cli_env.h"
#include "cmd_compose.h"
#include "cmd_eval.h"
#include "cmd_registry.h"
#include "cmd_replace.h"
#include "cmd_reuse.h"
#include "cmd_verify.h"
#include "models.h"
#include "train.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: moda <command> [options]\n\n"
            "commands:\n"
            "  train       train a model, standard or modular (--moda)\n"
            "  eval        test accuracy and per-class accuracy of a checkpoint\n"
            "  info        layer table, parameters and FLOPs of an architecture\n"
            "  decompose   activation rates and module stats of a checkpoint into a registry\n"
            "  inspect     models, classes, module sizes and overlaps in a registry\n"
            "  verify      check every file of a registry (or of one model): sizes, hashes, structure\n"
            "  compose     compose a model's modules for a class subset; optionally store it\n"
            "  eval-reuse  accuracy of composed models over class subsets\n"
            "  replace     patch a weak model's class with a strong model's module, calibrated\n\n"
            "Run 'moda <command> --help' for its options.\n");
}

static int cmd_train(int argc, char **argv) {
    train_options o = train_options_default();
    bool no_augment = false, help = false, moda = false;
    float alpha = NAN, beta = NAN, gamma = NAN;
    o.log = stderr;
    const arg_spec specs[] = {
        {"arch", ARG_STRING, &o.arch, "A", "vgg16 | resnet18 | mobilenet | lenet5 (lenet5)"},
        {"width", ARG_FLOAT, &o.width, "W", "channel width multiplier (1)"},
        {"input-size", ARG_INT, &o.input_size, "S", "zero-pad images up to SxS; folder images are fitted to it (32)"},
        {"dataset", ARG_STRING, &o.dataset, "D", "fashion-mnist | mnist | idx | cifar10 | cifar100 | folder (fashion-mnist)"},
        {"data-dir", ARG_STRING, &o.data_dir, "DIR", "dataset directory; folder: DIR/{train,test}/<class>/<PNG or JPEG "
                                                     "files> (default for fashion-mnist: " DATASET_FASHION_MNIST_DIR ")"},
        {"names", ARG_STRING, &o.names, "FILE", "class names, one per line (IDX data)"},
        {"strict-images", ARG_BOOL, &o.strict_images, NULL, "folder: fail on a file that is not a readable image "
                                                            "(default: report and skip it)"},
        {"epochs", ARG_INT, &o.epochs, "N", "training epochs (10)"},
        {"batch-size", ARG_INT, &o.batch_size, "N", "batch size (128)"},
        {"lr", ARG_FLOAT, &o.lr, "LR", "initial learning rate, cosine-annealed to 0 (0.05)"},
        {"momentum", ARG_FLOAT, &o.momentum, "M", "SGD momentum, Nesterov (0.9)"},
        {"weight-decay", ARG_FLOAT, &o.weight_decay, "WD", "weight decay (0)"},
        {"seed", ARG_U64, &o.seed, "N", "seed for initialisation, order and augmentation (0)"},
        {"subset", ARG_INT, &o.subset, "N", "use the first N training samples of each class"},
        {"classes", ARG_STRING, &o.classes, "LIST", "train on these classes only (names or indices, comma-separated), "
                                                    "relabelled 0.. in the order given (default: all)"},
        {"mix-class", ARG_STRING, &o.mix_class, "C", "with --classes: add class C as the last label, keeping only "
                                                    "--mix-fraction of its training images (all of its test images)"},
        {"mix-fraction", ARG_FLOAT, &o.mix_fraction, "F", "share of --mix-class's training images kept, in (0, 1], "
                                                         "drawn with --seed (0.1)"},
        {"no-augment", ARG_BOOL, &no_augment, NULL, "no random crop and flip"},
        {"moda", ARG_BOOL, &moda, NULL, "modular training: alpha 1, beta 1, gamma 0.3"},
        {"alpha", ARG_FLOAT, &alpha, "A", "weight of intra-class affinity (0; 1 with --moda)"},
        {"beta", ARG_FLOAT, &beta, "B", "weight of inter-class dispersion (0; 1 with --moda)"},
        {"gamma", ARG_FLOAT, &gamma, "G", "weight of compactness (0; 0.3 with --moda)"},
        {"out", ARG_STRING, &o.out_dir, "DIR", "output directory (runs/default)"},
        {"resume", ARG_BOOL, &o.resume, NULL, "continue the run in --out from its last checkpoint"},
        {"stop-after", ARG_INT, &o.stop_after, "N", "stop after N epochs of this run, to --resume later (0: never)"},
        {"device", ARG_STRING, &o.device, "D", "cpu | cuda | auto: cuda where a GPU is present (cpu)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    if (!args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help) || help) {
        FILE *f = help ? stdout : stderr;
        fprintf(f, "usage: moda train [options]\n\n"
                   "Trains with SGD (Nesterov momentum) and cosine annealing, evaluates on the test\n"
                   "split after every epoch, and writes DIR/checkpoint.safetensors (atomically, each\n"
                   "epoch), DIR/metrics.csv and DIR/curves.svg. With --resume the run's settings\n"
                   "come from the checkpoint; --data-dir (data that moved) and --device may be given\n"
                   "anew.\n\n"
                   "--classes selects and relabels classes: the model's classes are the listed\n"
                   "classes' names, in order, then --mix-class's. Of the mixed class only the share\n"
                   "--mix-fraction of its training images is kept (a draw fixed by --seed and the\n"
                   "class); its test images are all kept. The selection is recorded with the model,\n"
                   "and every command that reads the model's data (eval, decompose, compose --save,\n"
                   "eval-reuse, replace) derives the same subset again.\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    if (o.stop_after < 0) {
        fprintf(stderr, "moda train: --stop-after must be >= 0\n");
        return EXIT_USAGE;
    }
    o.augment = !no_augment;
    o.alpha = !isnan(alpha) ? alpha : moda ? 1.0f : 0.0f;
    o.beta = !isnan(beta) ? beta : moda ? 1.0f : 0.0f;
    o.gamma = !isnan(gamma) ? gamma : moda ? 0.3f : 0.0f;
    o.backend = cli_env_backend_options();
    char err[1024] = "";
    moda_status s = train_run(&o, err, sizeof err);
    if (s != MODA_OK) {
        fprintf(stderr, "moda train: %s\n", err[0] ? err : moda_status_string(s));
        return s == MODA_ERR_ARG ? EXIT_USAGE : 1;
    }
    return 0;
}

static int cmd_info(int argc, char **argv) {
    const char *arch = NULL;
    model_config cfg = model_config_default(MODEL_LENET5);
    bool help = false;
    const arg_spec specs[] = {
        {"arch", ARG_STRING, &arch, "A", "vgg16 | resnet18 | mobilenet | lenet5"},
        {"width", ARG_FLOAT, &cfg.width, "W", "channel width multiplier (1)"},
        {"in-channels", ARG_INT, &cfg.in_channels, "C", "input channels (3)"},
        {"classes", ARG_INT, &cfg.num_classes, "K", "classes (10)"},
        {"input-size", ARG_INT, &cfg.input_size, "S", "input height = width (32)"},
    };
    int n = (int)(sizeof specs / sizeof specs[0]);
    if (!args_parse(argc, argv, 2, specs, n, NULL, 0, NULL, &help) || help || !arch) {
        FILE *f = help ? stdout : stderr;
        if (!help && !arch) fprintf(stderr, "moda info: --arch is required\n");
        fprintf(f, "usage: moda info --arch A [options]\n\noptions:\n");
        args_print_options(f, specs, n);
        return help ? 0 : EXIT_USAGE;
    }
    if (model_arch_from_name(arch, &cfg.arch) != MODA_OK) {
        fprintf(stderr, "moda info: unknown architecture '%s' (vgg16, resnet18, mobilenet, lenet5)\n", arch);
        return EXIT_USAGE;
    }
    char why[256];
    if (model_validate(&cfg, why, sizeof why) != MODA_OK) {
        fprintf(stderr, "moda info: %s\n", why);
        return EXIT_USAGE;
    }
    moda_backend *be = backend_cpu_new();
    moda_status s;
    graph *g = be ? model_build(be, &cfg, &s) : NULL;
    if (!g) {
        fprintf(stderr, "moda info: cannot build the model\n");
        backend_free(be);
        return 1;
    }
    printf("%-4s %-28s %-15s %-16s %12s %14s\n", "#", "name", "op", "output", "params", "MACs");
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *nd = &g->nodes[i];
        char shape[48];
        if (nd->ndim == 4) snprintf(shape, sizeof shape, "%dx%dx%d", nd->c, nd->h, nd->w);
        else snprintf(shape, sizeof shape, "%d", nd->c);
        size_t params = 0;
        for (int j = 0; j < nd->n_param; j++)
            if (g->params[nd->param[j]].trainable) params += graph_param_numel(&g->params[nd->param[j]]);
        double macs = 0;
        if (nd->kind == NODE_CONV2D)
            macs = (double)nd->c * nd->h * nd->w * (g->nodes[nd->in[0]].c / nd->p.conv.groups) * nd->p.conv.kh *
                   nd->p.conv.kw;
        else if (nd->kind == NODE_LINEAR)
            macs = (double)nd->c * g->nodes[nd->in[0]].c;
        printf("%-4d %-28s %-15s %-16s %12zu %14.0f\n", i, nd->name[0] ? nd->name : "-", node_kind_name(nd->kind),
               shape, params, macs);
    }
    printf("\n%s width %g, input %dx%dx%d, %d classes: %zu trainable parameters, %.2f M MACs per image\n"
           "(MACs: multiply-adds of conv and linear layers; BN, ReLU, pooling and adds not counted)\n",
           arch, cfg.width, cfg.in_channels, cfg.input_size, cfg.input_size, cfg.num_classes,
           graph_param_count(g), graph_macs(g) / 1e6);
    graph_free(g);
    backend_free(be);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(cmd, "info")) return cmd_info(argc, argv);
    if (!strcmp(cmd, "decompose")) return cmd_decompose(argc, argv);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc, argv);
    if (!strcmp(cmd, "verify")) return cmd_verify(argc, argv);
    if (!strcmp(cmd, "compose")) return cmd_compose(argc, argv);
    if (!strcmp(cmd, "eval-reuse")) return cmd_eval_reuse(argc, argv);
    if (!strcmp(cmd, "replace")) return cmd_replace(argc, argv);
    fprintf(stderr, "moda: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
