#include "train.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "moda_loss.h"
#include "models.h"
#include "ops.h"
#include "optim.h"
#include "progress.h"
#include "report.h"

#define CHECKPOINT_NAME "checkpoint.safetensors"

train_options train_options_default(void) {
    return (train_options){
        .arch = "lenet5",
        .width = 1.0f,
        .input_size = 32,
        .dataset = "fashion-mnist",
        .epochs = 10,
        .batch_size = 128,
        .lr = 0.05f,
        .momentum = 0.9f,
        .weight_decay = 0.0f,
        .nesterov = true,
        .seed = 0,
        .augment = true,
        .out_dir = "runs/default",
        .device = "cpu",
        .mix_fraction = NAN,
    };
}

/* ---- run metadata ------------------------------------------------------ */

static json_t *floats_json(const float *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static char *build_meta(const train_options *o, const model_info *mi, int epochs_done, const epoch_record *h,
                        int n_hist) {
    json_t *names = json_array();
    for (int k = 0; k < mi->model.num_classes; k++) json_array_append_new(names, json_string(mi->class_names[k]));
    json_t *hist = json_array();
    for (int i = 0; i < n_hist; i++)
        json_array_append_new(
            hist, json_pack("{si,sf,sf,sf,sf,sf,sf,sf,sf,sf,sf}", "epoch", h[i].epoch, "lr", (double)h[i].lr,
                            "train_loss", (double)h[i].train_loss, "train_acc", (double)h[i].train_acc, "test_loss",
                            (double)h[i].test_loss, "test_acc", (double)h[i].test_acc, "seconds",
                            (double)h[i].seconds, "ce", (double)h[i].ce, "l_aff", (double)h[i].aff, "l_dis",
                            (double)h[i].dis, "l_com", (double)h[i].com));
    json_t *root = json_pack(
        "{si,s{ss,sf,si,si,si},s{ss,ss,ss,si,so,so,so,si,sb},s{si,si,sf,sf,sb,sf,sI,sf,sf,sf},si,so}", "format",
        CHECKPOINT_FORMAT, "model", "arch", model_arch_name(mi->model.arch), "width", (double)mi->model.width,
        "in_channels", mi->model.in_channels, "num_classes", mi->model.num_classes, "input_size",
        mi->model.input_size, "data", "dataset", o->dataset, "data_dir", o->data_dir ? o->data_dir : "", "names",
        o->names ? o->names : "", "pad", mi->pad, "mean", floats_json(mi->mean, mi->channels), "std",
        floats_json(mi->std, mi->channels), "class_names", names, "subset", o->subset, "augment", o->augment,
        "train", "epochs", o->epochs, "batch_size", o->batch_size, "lr", (double)o->lr, "momentum",
        (double)o->momentum, "nesterov", o->nesterov, "weight_decay", (double)o->weight_decay, "seed",
        (json_int_t)o->seed, "alpha", (double)o->alpha, "beta", (double)o->beta, "gamma", (double)o->gamma,
        "epochs_done", epochs_done, "history", hist);
    json_t *splits = root && mi->data.present ? dataset_record_splits_json(&mi->data) : NULL;
    if (splits) json_object_set_new(json_object_get(root, "data"), "splits", splits);
    json_t *sel = root && mi->selection.present ? dataset_selection_json(&mi->selection) : NULL;
    if (sel) json_object_set_new(json_object_get(root, "data"), "selection", sel);
    bool complete = root && (splits || !mi->data.present) && (sel || !mi->selection.present);
    char *s = complete ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* Options of a run being resumed, with the strings they point to. */
typedef struct resumed {
    train_options o;
    char arch[32], dataset[64], data_dir[1024], names[1024];
    int epochs_done;
    epoch_record *history;
    int n_history;
} resumed;

static moda_status parse_resume(const char *meta, const train_options *cli, resumed *r, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loads(meta, 0, &jerr);
    const char *arch = NULL, *ds = NULL, *dir = NULL, *names = NULL;
    double width = 0, lr = 0, mom = 0, wd = 0, alpha = 0, beta = 0, gamma = 0;
    int input = 0, subset = 0, augment = 0, epochs = 0, batch = 0, nest = 0, done = 0;
    json_int_t seed = 0;
    json_t *hist = NULL;
    if (!root ||
        json_unpack(root, "{s{ss,sF,si},s{ss,ss,ss,si,sb},s{si,si,sF,sF,sb,sF,sI,sF,sF,sF},si,so}", "model", "arch", &arch,
                    "width", &width, "input_size", &input, "data", "dataset", &ds, "data_dir", &dir, "names",
                    &names, "subset", &subset, "augment", &augment, "train", "epochs", &epochs, "batch_size",
                    &batch, "lr", &lr, "momentum", &mom, "nesterov", &nest, "weight_decay", &wd, "seed", &seed,
                    "alpha", &alpha, "beta", &beta, "gamma", &gamma, "epochs_done", &done, "history", &hist) != 0 ||
        !json_is_array(hist)) {
        json_decref(root);
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "checkpoint metadata is incomplete; cannot resume");
    }
    r->o = *cli;
    snprintf(r->arch, sizeof r->arch, "%s", arch);
    snprintf(r->dataset, sizeof r->dataset, "%s", ds);
    snprintf(r->data_dir, sizeof r->data_dir, "%s", dir);
    snprintf(r->names, sizeof r->names, "%s", names);
    r->o.arch = r->arch;
    r->o.dataset = r->dataset;
    /* The data may have moved since: a --data-dir given now wins (the
     * normalisation check below still proves it is the same data). */
    r->o.data_dir = cli->data_dir ? cli->data_dir : r->data_dir[0] ? r->data_dir : NULL;
    r->o.names = r->names[0] ? r->names : NULL;
    r->o.width = (float)width;
    r->o.input_size = input;
    r->o.subset = subset;
    r->o.augment = augment;
    r->o.epochs = epochs;
    r->o.batch_size = batch;
    r->o.lr = (float)lr;
    r->o.momentum = (float)mom;
    r->o.nesterov = nest;
    r->o.weight_decay = (float)wd;
    r->o.seed = (uint64_t)seed;
    r->o.alpha = (float)alpha;
    r->o.beta = (float)beta;
    r->o.gamma = (float)gamma;
    r->epochs_done = done;
    r->n_history = (int)json_array_size(hist);
    r->history = calloc((size_t)r->n_history + (size_t)epochs + 1, sizeof(epoch_record));
    if (!r->history) {
        json_decref(root);
        return MODA_ERR_NOMEM;
    }
    for (int i = 0; i < r->n_history; i++) {
        epoch_record *e = &r->history[i];
        double v[10] = {0};
        if (json_unpack(json_array_get(hist, (size_t)i), "{si,sF,sF,sF,sF,sF,sF,sF,sF,sF,sF}", "epoch", &e->epoch,
                        "lr", &v[0], "train_loss", &v[1], "train_acc", &v[2], "test_loss", &v[3], "test_acc", &v[4],
                        "seconds", &v[5], "ce", &v[6], "l_aff", &v[7], "l_dis", &v[8], "l_com", &v[9]) != 0) {
            json_decref(root);
            return fileio_fail(err, errlen, MODA_ERR_FORMAT, "checkpoint history entry %d is malformed", i);
        }
        e->lr = (float)v[0];
        e->train_loss = (float)v[1];
        e->train_acc = (float)v[2];
        e->test_loss = (float)v[3];
        e->test_acc = (float)v[4];
        e->seconds = (float)v[5];
        e->ce = (float)v[6];
        e->aff = (float)v[7];
        e->dis = (float)v[8];
        e->com = (float)v[9];
    }
    json_decref(root);
    if (done < 0 || done > epochs || r->n_history != done)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "checkpoint epoch count is inconsistent");
    return MODA_OK;
}

static moda_status check_options(const train_options *o, char *err, size_t errlen) {
    model_arch a;
    if (!o->arch || model_arch_from_name(o->arch, &a) != MODA_OK)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "unknown architecture '%s' (vgg16, resnet18, mobilenet, lenet5)",
                      o->arch ? o->arch : "");
    if (o->epochs < 1) return fileio_fail(err, errlen, MODA_ERR_ARG, "--epochs must be at least 1");
    if (o->batch_size < 1 || o->batch_size > 65536)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "--batch-size must be in 1..65536");
    if (!(o->lr > 0)) return fileio_fail(err, errlen, MODA_ERR_ARG, "--lr must be positive");
    if (o->subset < 0) return fileio_fail(err, errlen, MODA_ERR_ARG, "--subset must be >= 0");
    if (!o->out_dir || !o->out_dir[0]) return fileio_fail(err, errlen, MODA_ERR_ARG, "--out is required");
    if (!(o->alpha >= 0) || !(o->beta >= 0) || !(o->gamma >= 0))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "--alpha, --beta and --gamma must be >= 0");
    return MODA_OK;
}

/* ---- the run ------------------------------------------------------------ */

typedef struct run {
    train_options o;
    moda_backend *be;
    dataset train, test;
    checkpoint ck;   /* resumed runs */
    graph *g;        /* ck.g or owned */
    bool own_graph;
    model_info info; /* fresh runs */
    model_info *mi;
    dataset_record read; /* the data read by this run */
    sgd opt;
    moda_loss moda;
    epoch_record *history;
    int n_history, epochs_done;
    float *x, *probs, *logits;
    int32_t *y;
    char path[1200];
} run;

static void run_free(run *r) {
    if (r->own_graph) graph_free(r->g);
    checkpoint_close(&r->ck);
    model_info_free(&r->info);
    sgd_free(&r->opt);
    moda_loss_free(&r->moda);
    dataset_free(&r->train);
    dataset_free(&r->test);
    if (r->probs) backend_dealloc(r->be, r->probs);
    backend_free(r->be);
    free(r->history);
    free(r->x);
    free(r->logits);
    free(r->y);
}

static moda_status save_epoch(run *r, char *err, size_t errlen) {
    char *meta = build_meta(&r->o, r->mi, r->epochs_done, r->history, r->n_history);
    if (!meta) return fileio_fail(err, errlen, MODA_ERR_NOMEM, "cannot encode checkpoint metadata");
    moda_status s = checkpoint_save(r->path, r->g, &r->opt, meta, err, errlen);
    free(meta);
    if (s != MODA_OK) return s;
    char p[1200], title[256];
    snprintf(p, sizeof p, "%s/metrics.csv", r->o.out_dir);
    MODA_TRY(report_write_csv(p, r->history, r->n_history, err, errlen));
    snprintf(p, sizeof p, "%s/curves.svg", r->o.out_dir);
    snprintf(title, sizeof title, "%s (width %g) on %s", r->o.arch, r->o.width, r->o.dataset);
    return report_write_svg(p, title, r->history, r->n_history, err, errlen);
}

moda_status train_step(graph *g, sgd *opt, moda_loss *moda, const float *x, const int32_t *y, int n, float lr,
                       float *probs, float *logits, float *ce) {
    if (!g || !opt || !moda || !x || !y || !probs || !logits || !ce) return MODA_ERR_NULL;
    graph_node *out = graph_output(g);
    int k = out->c;
    tensor tp = tensor_2d(probs, n, k);
    MODA_TRY(graph_forward(g, x, n, true));
    MODA_TRY(softmax_ce_fwd(g->be, ce, &tp, &out->out, y));
    MODA_TRY(backend_copy_to_host(g->be, logits, out->out.data, (size_t)n * k * sizeof(float)));
    MODA_TRY(softmax_ce_bwd(g->be, &out->grad, &tp, y, 1.0f));
    moda_loss_begin(moda, y, n);
    MODA_TRY(graph_backward(g, moda_loss_hook, moda));
    return sgd_step(opt, g, lr);
}

static moda_status train_epoch(run *r, dataset_iter *it, int epoch, epoch_record *rec) {
    graph *g = r->g;
    int k = graph_output(g)->c;
    float lr = cosine_lr(r->o.lr, epoch, r->o.epochs);
    progress pg;
    progress_begin(&pg, r->o.log, epoch + 1, r->o.epochs, it->num_batches, r->o.log == NULL);
    dataset_iter_begin_epoch(it, epoch);
    double loss_sum = 0, ce_sum = 0, aff_sum = 0, dis_sum = 0, com_sum = 0;
    long seen = 0, right = 0;
    int n, b = 0;
    while ((n = dataset_iter_next(it, r->x, r->y)) > 0) {
        float loss;
        MODA_TRY(train_step(g, &r->opt, &r->moda, r->x, r->y, n, lr, r->probs, r->logits, &loss));
        double aff, dis, com, extra;
        moda_loss_result(&r->moda, &aff, &dis, &com, &extra);
        ce_sum += (double)loss * n;
        aff_sum += (1 - aff) * n;
        dis_sum += dis * n;
        com_sum += com * n;
        loss_sum += ((double)loss + extra) * n;
        seen += n;
        for (int i = 0; i < n; i++) right += logits_argmax(r->logits + (size_t)i * k, k) == r->y[i];
        progress_update(&pg, ++b, seen, loss_sum / seen, (double)right / seen);
    }
    progress_end(&pg);
    rec->epoch = epoch + 1;
    rec->lr = lr;
    rec->train_loss = (float)(loss_sum / seen);
    rec->train_acc = (float)right / (float)seen;
    rec->ce = (float)(ce_sum / seen);
    rec->aff = (float)(aff_sum / seen);
    rec->dis = (float)(dis_sum / seen);
    rec->com = (float)(com_sum / seen);
    return MODA_OK;
}

/* The checkpoint's path, whether it exists, and the backend. Nothing to
 * free on failure but the backend, which run_free frees. */
static moda_status open_backend(const train_options *cli, run *r, bool *have_ck, char *err, size_t errlen) {
    if (!cli->out_dir || !cli->out_dir[0]) return fileio_fail(err, errlen, MODA_ERR_ARG, "--out is required");
    snprintf(r->path, sizeof r->path, "%s/%s", cli->out_dir, CHECKPOINT_NAME);
    struct stat st;
    *have_ck = stat(r->path, &st) == 0;
    const char *device = cli->device ? cli->device : "cpu";
    if (!backend_name_known(device))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "unknown --device '%s' (expected cpu, cuda or auto)", device);
    char why[256] = "";
    r->be = backend_new(device, &cli->backend, why, sizeof why);
    if (!r->be) return fileio_fail(err, errlen, MODA_ERR_BACKEND, "%s", why);
    return MODA_OK;
}

/* A resumed run takes its settings, model and history from the
 * checkpoint; a fresh one must not overwrite one. */
static moda_status resume_or_begin(const train_options *cli, run *r, resumed *res, bool have_ck, char *err,
                                   size_t errlen) {
    if (cli->resume) {
        if (!have_ck) return fileio_fail(err, errlen, MODA_ERR_NOT_FOUND, "%s: no checkpoint to resume from", r->path);
        MODA_TRY(checkpoint_open(r->path, r->be, &r->ck, err, errlen));
        MODA_TRY(parse_resume(r->ck.meta_json, cli, res, err, errlen));
        r->o = res->o;
        r->g = r->ck.g;
        r->mi = &r->ck.info;
        r->history = res->history;
        res->history = NULL;
        r->n_history = r->epochs_done = res->epochs_done;
    } else if (have_ck) {
        return fileio_fail(err, errlen, MODA_ERR_ARG,
                           "%s already exists: pass --resume to continue it, or choose another --out", r->path);
    }
    return check_options(&r->o, err, errlen);
}

/* A fresh run's model, built for the training data and initialised, its
 * history and its output directory. */
static moda_status build_model(run *r, char *err, size_t errlen) {
    model_config mc = {.width = r->o.width, .in_channels = r->train.c, .num_classes = r->train.num_classes,
                       .input_size = r->o.input_size};
    model_arch_from_name(r->o.arch, &mc.arch);
    char why[200];
    moda_status s = model_validate(&mc, why, sizeof why);
    if (s != MODA_OK) return fileio_fail(err, errlen, s, "%s", why);
    r->info.model = mc;
    MODA_TRY(model_info_from_dataset(&r->info, &r->train));
    r->mi = &r->info;
    r->g = model_build(r->be, &mc, &s);
    if (!r->g) return fileio_fail(err, errlen, s, "cannot build %s: %s", r->o.arch, moda_status_string(s));
    r->own_graph = true;
    MODA_TRY(model_init(r->g, &mc, r->o.seed));
    r->history = calloc((size_t)r->o.epochs + 1, sizeof(epoch_record));
    if (!r->history) return MODA_ERR_NOMEM;
    return fileio_mkdir_p(r->o.out_dir, err, errlen);
}

/* How the run reads its data, either split. */
static dataset_load_options load_options(const run *r) {
    return (dataset_load_options){.names_path = r->o.names, .image_size = r->o.input_size,
                                  .strict_images = r->o.strict_images};
}

/* The training data, and the model: a resumed one must have been trained
 * on the same data (its normalisation), a fresh one is built for it. */
static moda_status load_training_data(run *r, char *err, size_t errlen) {
    const dataset_load_options lo = load_options(r);
    MODA_TRY(data_load_raw(&r->train, r->o.dataset, r->o.data_dir, &lo, DATASET_TRAIN, NULL, &r->read, err, errlen));
    /* A fresh run resolves its class selection against the data's names;
     * a resumed one keeps the checkpoint's. */
    dataset_selection *sel = r->mi ? &r->mi->selection : &r->info.selection;
    moda_status s = r->mi ? MODA_OK
                          : dataset_selection_resolve(sel, r->o.classes, r->o.mix_class,
                                                      isnan(r->o.mix_fraction) ? DATASET_MIX_FRACTION_DEFAULT
                                                                               : r->o.mix_fraction,
                                                      !isnan(r->o.mix_fraction), r->o.seed, r->train.class_names,
                                                      r->train.num_classes, err, errlen);
    if (s == MODA_OK) s = dataset_select(&r->train, sel, DATASET_TRAIN, err, errlen);
    if (s != MODA_OK) {
        dataset_free(&r->train);
        return s;
    }
    MODA_TRY(data_prepare_split(&r->train, r->o.input_size, r->o.subset, NULL, err, errlen));
    if (!r->mi) return build_model(r, err, errlen);
    if (r->mi->data.present) return MODA_OK; /* settle_record checks the fingerprints */
    for (int c = 0; c < r->train.c; c++)
        if (r->train.mean[c] != r->mi->mean[c] || r->train.std[c] != r->mi->std[c])
            return fileio_fail(err, errlen, MODA_ERR_STATE, "%s: training data differs from the checkpoint's",
                               r->train.source);
    return MODA_OK;
}

/* The record of the data read: a fresh run (or one resumed from a
 * checkpoint that has none) keeps it; a resumed run must have read the
 * data it recorded. */
static moda_status settle_record(run *r, char *err, size_t errlen) {
    dataset_record *rec = &r->mi->data;
    const char *where = r->o.data_dir ? r->o.data_dir : "the default location";
    if (rec->present) {
        for (int s = DATASET_TRAIN; s <= DATASET_TEST; s++)
            MODA_TRY(dataset_record_check(rec, r->o.dataset, r->path, (dataset_split)s, &r->read.split[s], where, err,
                                          errlen));
        return MODA_OK;
    }
    *rec = r->read;
    snprintf(rec->location, sizeof rec->location, "%s", r->o.data_dir ? r->o.data_dir : "");
    rec->present = true;
    return MODA_OK;
}

/* The test data, the optimiser (with its state when resumed), the plan
 * for a batch, the MODA loss and the batch buffers. */
static moda_status prepare_training(const train_options *cli, run *r, char *err, size_t errlen) {
    const dataset_load_options lo = load_options(r);
    MODA_TRY(data_load_raw(&r->test, r->o.dataset, r->o.data_dir, &lo, DATASET_TEST, r->mi, &r->read, err, errlen));
    moda_status s = dataset_select(&r->test, &r->mi->selection, DATASET_TEST, err, errlen);
    if (s != MODA_OK) {
        dataset_free(&r->test);
        return s;
    }
    MODA_TRY(data_prepare_split(&r->test, r->o.input_size, 0, r->mi, err, errlen));
    if (r->test.num_classes != r->train.num_classes)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: %d classes, the training set has %d", r->test.source,
                           r->test.num_classes, r->train.num_classes);
    MODA_TRY(settle_record(r, err, errlen));
    MODA_TRY(sgd_init(&r->opt, r->g, r->o.momentum, r->o.weight_decay, r->o.nesterov));
    if (cli->resume) MODA_TRY(checkpoint_load_optimizer(&r->ck, &r->opt, err, errlen));
    MODA_TRY(graph_plan(r->g, r->o.batch_size));
    MODA_TRY(moda_loss_init(&r->moda, r->g, r->o.batch_size, r->o.alpha, r->o.beta, r->o.gamma));
    int k = r->train.num_classes;
    size_t per = (size_t)r->train.c * r->train.h * r->train.w;
    r->x = malloc((size_t)r->o.batch_size * per * sizeof(float));
    r->probs = backend_alloc(r->be, (size_t)r->o.batch_size * k * sizeof(float)); /* an op's output */
    r->logits = malloc((size_t)r->o.batch_size * k * sizeof(float));
    r->y = malloc((size_t)r->o.batch_size * sizeof(int32_t));
    return r->x && r->probs && r->logits && r->y ? MODA_OK : MODA_ERR_NOMEM;
}

/* Epoch after epoch: train, evaluate on the test data, save the
 * checkpoint and the reports, log a line; until the last epoch, or
 * stop_after epochs of this run. */
static moda_status train_epochs(const train_options *cli, run *r, char *err, size_t errlen) {
    dataset_augment aug = {.crop_pad = r->o.augment ? 4 : 0, .flip = r->o.augment};
    dataset_iter it;
    MODA_TRY(dataset_iter_init(&it, &r->train, r->o.batch_size, 1, &aug, r->o.seed));
    if (r->o.log)
        fprintf(r->o.log, "%s %s: %s (width %g), %zu parameters, %d train / %d test images, %d classes, %s, on %s\n",
                cli->resume ? "resuming" : "training", r->o.out_dir, r->o.arch, r->o.width, graph_param_count(r->g),
                r->train.n, r->test.n, r->train.num_classes,
                r->o.alpha > 0 || r->o.beta > 0 || r->o.gamma > 0 ? "modular (MODA)" : "standard", backend_name(r->be));
    moda_status s = MODA_OK;
    int ran = 0;
    for (int epoch = r->epochs_done; epoch < r->o.epochs; epoch++) {
        double t0 = progress_now();
        epoch_record rec = {0};
        eval_result ev;
        if ((s = train_epoch(r, &it, epoch, &rec)) != MODA_OK) break;
        if ((s = evaluate(r->g, &r->test, r->o.batch_size, &ev)) != MODA_OK) break;
        rec.test_loss = (float)ev.loss;
        rec.test_acc = (float)ev.acc;
        eval_result_free(&ev);
        rec.seconds = (float)(progress_now() - t0);
        r->history[r->n_history++] = rec;
        r->epochs_done = epoch + 1;
        if ((s = save_epoch(r, err, errlen)) != MODA_OK) break;
        if (r->o.log)
            fprintf(r->o.log,
                    "epoch %d/%d  lr %.4f  loss %.4f (ce %.4f aff %.4f dis %.4f com %.4f)  acc %.2f%%  "
                    "test loss %.4f  test acc %.2f%%  %.1fs\n",
                    rec.epoch, r->o.epochs, rec.lr, rec.train_loss, rec.ce, rec.aff, rec.dis, rec.com,
                    100 * rec.train_acc, rec.test_loss, 100 * rec.test_acc, rec.seconds);
        if (r->o.stop_after && ++ran >= r->o.stop_after) break;
    }
    dataset_iter_free(&it);
    if (s != MODA_OK && err && !err[0]) fileio_fail(err, errlen, s, "training failed: %s", moda_status_string(s));
    return s;
}

moda_status train_run(const train_options *cli, char *err, size_t errlen) {
    if (!cli) return MODA_ERR_NULL;
    if (err && errlen) err[0] = '\0';
    run r = {.o = *cli};
    resumed res = {0};
    bool have_ck = false;
    moda_status s = open_backend(cli, &r, &have_ck, err, errlen);
    if (s == MODA_OK) s = resume_or_begin(cli, &r, &res, have_ck, err, errlen);
    if (s == MODA_OK) s = load_training_data(&r, err, errlen);
    if (s == MODA_OK) s = prepare_training(cli, &r, err, errlen);
    if (s == MODA_OK) s = train_epochs(cli, &r, err, errlen);
    free(res.history);
    run_free(&r);
    return s;
}
