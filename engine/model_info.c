#include "model_info.h"

#include <stdlib.h>
#include <string.h>

void model_info_free(model_info *mi) {
    if (!mi) return;
    if (mi->class_names)
        for (int k = 0; k < mi->model.num_classes; k++) free(mi->class_names[k]);
    free(mi->class_names);
    mi->class_names = NULL;
}

moda_status model_info_from_dataset(model_info *mi, const dataset *ds) {
    if (!mi || !ds) return MODA_ERR_NULL;
    if (!ds->normalized || ds->c > DATASET_MAX_CHANNELS) return MODA_ERR_STATE;
    mi->pad = ds->pad;
    mi->channels = ds->c;
    for (int c = 0; c < ds->c; c++) {
        mi->mean[c] = ds->mean[c];
        mi->std[c] = ds->std[c];
    }
    mi->class_names = calloc((size_t)ds->num_classes, sizeof(char *));
    if (!mi->class_names) return MODA_ERR_NOMEM;
    for (int k = 0; k < ds->num_classes; k++) {
        mi->class_names[k] = strdup(ds->class_names[k]);
        if (!mi->class_names[k]) return MODA_ERR_NOMEM;
    }
    return MODA_OK;
}
