#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"

api_entry *entry_new(const api_model *parent, const int *classes, int n, float tau, compose_mode mode,
                     int workers) {
    api_entry *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->classes = malloc((size_t)n * sizeof(int));
    e->names = malloc((size_t)n * sizeof(char *));
    e->exec = calloc((size_t)workers, sizeof(graph *));
    e->plans = calloc((size_t)workers, sizeof(frozen *));
    e->unfrozen = calloc((size_t)workers, sizeof(bool));
    if (!e->classes || !e->names || !e->exec || !e->plans || !e->unfrozen ||
        !api_id_format(e->id, sizeof e->id, parent->rm.name, classes, n, tau, mode)) {
        entry_free(e);
        return NULL;
    }
    e->parent = parent;
    e->workers = workers;
    const model_info *mi = &parent->rm.info;
    for (int i = 0; i < n; i++) {
        e->classes[i] = classes[i];
        e->names[i] = mi->class_names[classes[i]];
    }
    e->info = (api_entry_info){
        .id = e->id,
        .model = parent->rm.name,
        .composed = true,
        .tau = tau,
        .mode = mode,
        .channels = mi->channels,
        .height = parent->rm.g->in_h,
        .width = parent->rm.g->in_w,
        .pad = mi->pad,
        .mean = mi->mean,
        .std = mi->std,
        .n_classes = n,
        .classes = e->classes,
        .class_names = e->names,
    };
    return e;
}

api_entry *entry_new_full(const api_model *m, int workers) {
    int k = m->rm.info.model.num_classes;
    int *all = malloc((size_t)k * sizeof(int));
    if (!all) return NULL;
    for (int c = 0; c < k; c++) all[c] = c;
    api_entry *e = entry_new(m, all, k, m->rm.stats.tau, COMPOSE_TIED, workers);
    free(all);
    if (!e) return NULL;
    snprintf(e->id, sizeof e->id, "%s", m->rm.name);
    e->info.composed = false;
    e->permanent = true;
    e->ready = true;
    entry_set_graph(e, m->rm.g, false);
    return e;
}

void entry_set_graph(api_entry *e, graph *g, bool owns) {
    e->g = g;
    e->owns_graph = owns;
    e->info.params = graph_param_count(g);
    e->info.macs = graph_macs(g);
}

void entry_free(api_entry *e) {
    if (!e) return;
    for (int w = 0; e->exec && w < e->workers; w++) graph_free(e->exec[w]);
    free(e->exec);
    for (int w = 0; e->plans && w < e->workers; w++) frozen_free(e->plans[w]);
    free(e->plans);
    free(e->unfrozen);
    if (e->owns_graph) graph_free(e->g);
    free(e->classes);
    free(e->names);
    free(e);
}
