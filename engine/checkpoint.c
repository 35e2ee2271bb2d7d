#include "checkpoint.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "safetensors.h"

moda_status checkpoint_save(const char *path, const graph *g, const sgd *opt, const char *meta_json, char *err,
                            size_t errlen) {
    if (!path || !g || !meta_json) return MODA_ERR_NULL;
    int n = g->n_params * 2;
    safetensors_entry *entries = calloc((size_t)n, sizeof(*entries));
    char (*names)[GRAPH_NAME_MAX + 32] = calloc((size_t)g->n_params, sizeof(*names));
    if (!entries || !names) {
        free(entries);
        free(names);
        return fileio_fail(err, errlen, MODA_ERR_NOMEM, "%s: out of memory", path);
    }
    int k = 0;
    for (int i = 0; i < g->n_params; i++) {
        const graph_param *p = &g->params[i];
        entries[k++] = (safetensors_entry){.name = p->name, .ndim = p->ndim, .shape = p->shape, .data = p->data};
    }
    if (opt)
        for (int i = 0; i < g->n_params; i++) {
            const graph_param *p = &g->params[i];
            if (!p->trainable) continue;
            snprintf(names[i], sizeof names[i], "optim.%s.momentum_buffer", p->name);
            entries[k++] =
                (safetensors_entry){.name = names[i], .ndim = p->ndim, .shape = p->shape, .data = opt->velocity[i]};
        }
    safetensors_kv meta = {"moda", meta_json};
    moda_status s = safetensors_write_file(path, entries, k, &meta, 1, err, errlen);
    free(entries);
    free(names);
    return s;
}

static moda_status parse_info(json_t *root, model_info *mi, const char *path, char *err, size_t errlen) {
    json_t *m = json_object_get(root, "model"), *d = json_object_get(root, "data");
    const char *arch = json_string_value(json_object_get(m, "arch"));
    if (!json_is_object(m) || !json_is_object(d) || !arch)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: metadata lacks model or data", path);
    if (model_arch_from_name(arch, &mi->model.arch) != MODA_OK)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: unknown architecture '%s'", path, arch);
    json_t *w = json_object_get(m, "width"), *ic = json_object_get(m, "in_channels"),
           *nc = json_object_get(m, "num_classes"), *is = json_object_get(m, "input_size");
    if (!json_is_number(w) || !json_is_integer(ic) || !json_is_integer(nc) || !json_is_integer(is))
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: model metadata has wrong types", path);
    mi->model.width = (float)json_number_value(w);
    mi->model.in_channels = (int)json_integer_value(ic);
    mi->model.num_classes = (int)json_integer_value(nc);
    mi->model.input_size = (int)json_integer_value(is);
    char why[160];
    if (model_validate(&mi->model, why, sizeof why) != MODA_OK)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: %s", path, why);
    if (mi->model.in_channels > DATASET_MAX_CHANNELS)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: %d input channels", path, mi->model.in_channels);

    const char *ds = json_string_value(json_object_get(d, "dataset"));
    snprintf(mi->dataset, sizeof mi->dataset, "%s", ds ? ds : "");
    const char *dir = json_string_value(json_object_get(d, "data_dir"));
    snprintf(mi->data.location, sizeof mi->data.location, "%s", dir ? dir : "");
    json_t *splits = json_object_get(d, "splits"); /* absent from older checkpoints */
    if (splits && !dataset_record_splits_parse(splits, &mi->data, why, sizeof why))
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: \"data.splits\" %s", path, why);
    json_t *sel = json_object_get(d, "selection"); /* only a model trained on a class selection has one */
    mi->selection.mix = -1;
    if (sel && !dataset_selection_parse(sel, &mi->selection, why, sizeof why))
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: \"data.selection\" %s", path, why);
    if (mi->selection.present && dataset_selection_classes(&mi->selection) != mi->model.num_classes)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: its class selection gives %d classes, the model has %d",
                           path, dataset_selection_classes(&mi->selection), mi->model.num_classes);
    json_t *pad = json_object_get(d, "pad"), *mean = json_object_get(d, "mean"), *std = json_object_get(d, "std"),
           *names = json_object_get(d, "class_names");
    mi->channels = mi->model.in_channels;
    if (!json_is_integer(pad) || !json_is_array(mean) || !json_is_array(std) || !json_is_array(names) ||
        json_array_size(mean) != (size_t)mi->channels || json_array_size(std) != (size_t)mi->channels ||
        json_array_size(names) != (size_t)mi->model.num_classes)
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: data metadata is inconsistent with the model", path);
    mi->pad = (int)json_integer_value(pad);
    for (int c = 0; c < mi->channels; c++) {
        mi->mean[c] = (float)json_number_value(json_array_get(mean, (size_t)c));
        mi->std[c] = (float)json_number_value(json_array_get(std, (size_t)c));
        if (!(mi->std[c] > 0)) return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: std must be positive", path);
    }
    mi->class_names = calloc((size_t)mi->model.num_classes, sizeof(char *));
    if (!mi->class_names) return MODA_ERR_NOMEM;
    for (int k = 0; k < mi->model.num_classes; k++) {
        const char *s = json_string_value(json_array_get(names, (size_t)k));
        if (!s) return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: class name %d is not a string", path, k);
        mi->class_names[k] = strdup(s);
        if (!mi->class_names[k]) return MODA_ERR_NOMEM;
    }
    return MODA_OK;
}

moda_status checkpoint_open(const char *path, moda_backend *be, checkpoint *ck, char *err, size_t errlen) {
    if (!path || !be || !ck) return MODA_ERR_NULL;
    memset(ck, 0, sizeof(*ck));
    safetensors_file *f = NULL;
    moda_status s = safetensors_open(path, CHECKPOINT_MAX_BYTES, &f, err, errlen);
    if (s != MODA_OK) return s;
    ck->file = f;
    const char *meta = safetensors_meta_get(f, "moda");
    if (!meta) {
        checkpoint_close(ck);
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: not a moda checkpoint (no \"moda\" metadata)", path);
    }
    json_error_t jerr;
    json_t *root = json_loads(meta, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        checkpoint_close(ck);
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: metadata is not a JSON object", path);
    }
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_integer(fmt) || json_integer_value(fmt) != CHECKPOINT_FORMAT) {
        json_decref(root);
        checkpoint_close(ck);
        return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: unsupported checkpoint format", path);
    }
    s = parse_info(root, &ck->info, path, err, errlen);
    json_decref(root);
    if (s == MODA_OK && !(ck->meta_json = strdup(meta))) s = MODA_ERR_NOMEM;
    if (s == MODA_OK) {
        ck->g = model_build(be, &ck->info.model, &s);
        if (!ck->g) fileio_fail(err, errlen, s, "%s: cannot build the model: %s", path, moda_status_string(s));
    }
    for (int i = 0; s == MODA_OK && i < ck->g->n_params; i++) {
        graph_param *p = &ck->g->params[i];
        s = safetensors_read_f32(f, p->name, p->ndim, p->shape, p->data, graph_param_numel(p), err, errlen);
    }
    if (s != MODA_OK) checkpoint_close(ck);
    return s;
}

moda_status checkpoint_load_optimizer(const checkpoint *ck, sgd *opt, char *err, size_t errlen) {
    if (!ck || !opt || !ck->g) return MODA_ERR_NULL;
    char name[GRAPH_NAME_MAX + 32];
    for (int i = 0; i < ck->g->n_params; i++) {
        const graph_param *p = &ck->g->params[i];
        if (!p->trainable) continue;
        snprintf(name, sizeof name, "optim.%s.momentum_buffer", p->name);
        MODA_TRY(safetensors_read_f32(ck->file, name, p->ndim, p->shape, opt->velocity[i], graph_param_numel(p),
                                      err, errlen));
    }
    return MODA_OK;
}

void checkpoint_close(checkpoint *ck) {
    if (!ck) return;
    graph_free(ck->g);
    model_info_free(&ck->info);
    free(ck->meta_json);
    safetensors_free(ck->file);
    memset(ck, 0, sizeof(*ck));
}
