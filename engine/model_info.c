#include "model_info.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

#define LIST_NAMES_MAX 20 /* an unknown class lists the model's classes up to this many */

int class_resolve(const char *item, char *const *names, int k, char *why, size_t len) {
    for (int c = 0; c < k; c++)
        if (!strcmp(names[c], item)) return c;
    int found = -1, matches = 0;
    for (int c = 0; c < k; c++)
        if (!strcasecmp(names[c], item)) {
            found = c;
            matches++;
        }
    if (matches == 1) return found;
    if (matches > 1) {
        snprintf(why, len, "class \"%s\" matches %d class names when case is ignored; give its exact name or index",
                 item, matches);
        return -1;
    }
    size_t n = strlen(item);
    bool digits = n > 0 && n <= 9;
    for (size_t i = 0; digits && i < n; i++) digits = isdigit((unsigned char)item[i]);
    if (digits) {
        int idx = atoi(item);
        if (idx < k) return idx;
        snprintf(why, len, "class index %d is out of range: the model has %d classes (0 to %d)", idx, k, k - 1);
        return -1;
    }
    int off = snprintf(why, len, "unknown class \"%s\"", item);
    if (k > LIST_NAMES_MAX && off > 0 && (size_t)off < len)
        snprintf(why + off, len - (size_t)off, "; 'moda inspect' lists the model's classes");
    for (int c = 0; k <= LIST_NAMES_MAX && c < k && off > 0 && (size_t)off < len; c++)
        off += snprintf(why + off, len - (size_t)off, "%s\"%s\"", c ? ", " : "; the model's classes are ", names[c]);
    return -1;
}

bool model_info_same_input(const model_info *a, const model_info *b, char *why, size_t len) {
    if (a->model.input_size != b->model.input_size || a->channels != b->channels || a->pad != b->pad) {
        snprintf(why, len, "%dx%dx%d inputs (padding %d) against %dx%dx%d (padding %d)", a->channels,
                 a->model.input_size, a->model.input_size, a->pad, b->channels, b->model.input_size,
                 b->model.input_size, b->pad);
        return false;
    }
    for (int c = 0; c < a->channels; c++)
        if (a->mean[c] != b->mean[c] || a->std[c] != b->std[c]) {
            snprintf(why, len, "channel %d is normalised with mean %g, std %g against mean %g, std %g", c, a->mean[c],
                     a->std[c], b->mean[c], b->std[c]);
            return false;
        }
    return true;
}
