/* POST /v1/replace, POST /v1/calibrate and /v1/jobs: module replacement as
 * background jobs (jobs.h) that write patched models into the registry and
 * serve them as soon as they are written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_state.h"
#include "entry.h"
#include "jobs.h"
#include "replace.h"
#include "v1.h"

#define CALIB_EPOCHS_MAX 1000
#define CALIB_BATCH_MAX 65536

/* What a replacement job needs; the models are store slots, which stay put
 * while the api lives. */
typedef struct replace_job {
    api *a;
    const api_model *weak, *strong;
    char cls[256];      /* the weak model's class name */
    float tau;
    calibration_options calib;
    char name[REGISTRY_NAME_MAX + 1];
    char *data_dir;     /* from --data, or NULL: the weak model's recorded location */
} replace_job;

static void replace_job_free(void *p) {
    replace_job *rj = p;
    if (rj) free(rj->data_dir);
    free(rj);
}

/* ---- the job --------------------------------------------------------------- */

static bool on_progress(void *ctx, const replace_progress *p) {
    job *j = ctx;
    job_progress_info info = {
        .phase = p->phase == REPLACE_PHASE_LOAD      ? "loading"
                 : p->phase == REPLACE_PHASE_FORWARD ? "forward"
                                                     : "calibrating",
        .epoch = p->epoch,
        .epochs = p->epochs,
        .step = p->done,
        .steps = p->total,
        .loss = p->phase == REPLACE_PHASE_CALIBRATE ? p->loss : NAN,
        .images_per_s = p->images_per_s,
    };
    job_progress(j, &info);
    return !job_cancelled(j);
}

/* Accuracies (percent) as the API gives them: fractions. */
static json_t *accuracy_json(const double acc[REPLACE_ROWS][2]) {
    static const char *const rows[REPLACE_ROWS] = {"weak", "patched", "weak_calibrated", "patched_calibrated",
                                                   "baseline"};
    json_t *o = json_object();
    for (int i = 0; o && i < REPLACE_ROWS; i++)
        json_object_set_new(o, rows[i], json_pack("{s:f,s:f}", "overall", acc[i][0] / 100, "class", acc[i][1] / 100));
    return o;
}

/* An engine failure as the job's error. */
static int run_error(moda_status s, const char *what, const char *msg, api_error *e) {
    if (s == MODA_ERR_CANCELLED) return api_error_set(e, "cancelled", "cancelled while running");
    if (s == MODA_ERR_NOT_FOUND) return api_error_set(e, "data_unavailable", "%s", msg);
    if (s == MODA_ERR_NOMEM || s == MODA_ERR_BACKEND) return api_error_set(e, "internal", "%s: %s", what, msg);
    return api_error_set(e, "replace_failed", "%s: %s", what, msg);
}

static int replace_job_run(job *j, void *arg, json_t **result, api_error *e) {
    replace_job *rj = arg;
    api *a = rj->a;
    char err[1024] = "";
    moda_backend *be = backend_new(backend_name(a->store.be), &a->cfg.backend, err, sizeof err);
    if (!be) return api_error_set(e, "internal", "%s", err);
    backend_set_threads(be, 1); /* one core: inference keeps the others */
    replace_request rq = {
        .weak = &rj->weak->rm,
        .strong = &rj->strong->rm,
        .cls = rj->cls,
        .tau = rj->tau,
        .calib = rj->calib,
        .data = {.data_dir = rj->data_dir, .hint = "start moda-server with --data KIND=DIR"},
        .be = be,
        .progress = on_progress,
        .ctx = j,
    };
    replace_result res;
    moda_status s = replace_run(&rq, &res, err, sizeof err);
    int rc = s == MODA_OK ? 0 : run_error(s, "replacing", err, e);
    if (rc == 0 && job_cancelled(j)) rc = run_error(MODA_ERR_CANCELLED, "", "", e);
    if (rc == 0) {
        job_phase(j, "saving");
        /* One writer at a time, so two jobs cannot both take a name. */
        pthread_mutex_lock(&a->save_lock);
        if (job_cancelled(j))
            rc = run_error(MODA_ERR_CANCELLED, "", "", e);
        else if (model_store_find(&a->store, rj->name))
            rc = api_error_set(e, "model_exists", "a model named \"%s\" appeared while the job ran", rj->name);
        else if ((s = replace_save(registry_root(a->store.reg), rj->name, &rq, &res, err, sizeof err)) != MODA_OK)
            rc = api_error_set(e, "registry_write_failed", "%s", err);
        else if (model_store_add(&a->store, rj->name, err, sizeof err))
            rc = api_error_set(e, "internal", "written, but not served: %s", err);
        pthread_mutex_unlock(&a->save_lock);
    }
    if (rc == 0) {
        api_note_model(a, model_store_find(&a->store, rj->name));
        *result = json_pack("{s:s,s:{s:s,s:i,s:i},s:f,s:o,s:f}", "model", rj->name, "class", "name", res.class_name,
                            "weak_index", res.cls, "strong_index", res.strong_cls, "module_params", res.module_params,
                            "accuracy", accuracy_json((const double(*)[2])res.acc), "test_accuracy",
                            res.acc[REPLACE_PATCHED_CALIBRATED][0] / 100);
    }
    replace_result_free(&res);
    backend_free(be);
    return rc;
}

/* ---- requests ---------------------------------------------------------------- */

/* The data directory --data gives for a dataset kind, or NULL. */
static char *data_dir_for(const api *a, const char *kind) {
    const char *list = a->data_dirs;
    size_t klen = strlen(kind);
    while (list && *list) {
        const char *end = strchr(list, ',');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len > klen && !strncmp(list, kind, klen) && list[klen] == '=') {
            char *dir = strndup(list + klen + 1, len - klen - 1);
            return dir;
        }
        list = end ? end + 1 : NULL;
    }
    return NULL;
}

/* calibration: {epochs, lr, batch_size, seed, optimizer}, each optional. */
static int parse_calibration(json_t *v, calibration_options *o, api_error *e) {
    *o = calibration_options_default();
    if (!v) return 0;
    if (!json_is_object(v)) return api_error_set(e, "invalid_type", "\"calibration\" must be an object");
    json_t *x;
    if ((x = json_object_get(v, "epochs"))) {
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > CALIB_EPOCHS_MAX)
            return api_error_set(e, "invalid_calibration", "calibration.epochs must be an integer from 1 to %d",
                                 CALIB_EPOCHS_MAX);
        o->epochs = (int)json_integer_value(x);
    }
    if ((x = json_object_get(v, "batch_size"))) {
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > CALIB_BATCH_MAX)
            return api_error_set(e, "invalid_calibration", "calibration.batch_size must be an integer from 1 to %d",
                                 CALIB_BATCH_MAX);
        o->batch = (int)json_integer_value(x);
    }
    if ((x = json_object_get(v, "lr"))) {
        double lr = json_number_value(x);
        if (!json_is_number(x) || !(lr > 0 && lr <= 10))
            return api_error_set(e, "invalid_calibration", "calibration.lr must be a number in (0, 10]");
        o->lr = (float)lr;
    }
    if ((x = json_object_get(v, "seed"))) {
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return api_error_set(e, "invalid_calibration", "calibration.seed must be a non-negative integer");
        o->seed = (uint64_t)json_integer_value(x);
    }
    if ((x = json_object_get(v, "optimizer")) && !calibration_optimizer_parse(json_string_value(x), &o->optimizer))
        return api_error_set(e, "invalid_calibration", "calibration.optimizer must be \"adam\" or \"sgd\"");
    return 0;
}

/* A model of the store named by member key of body. */
static const api_model *model_member(api *a, json_t *body, const char *key, api_error *e) {
    json_t *v = json_object_get(body, key);
    if (!v) return api_error_set(e, "bad_request", "\"%s\" is required", key), NULL;
    if (!json_is_string(v)) return api_error_set(e, "invalid_type", "\"%s\" must be a model name", key), NULL;
    const api_model *m = model_store_find(&a->store, json_string_value(v));
    if (!m) api_error_set(e, "unknown_model", "no model named \"%.80s\"", json_string_value(v));
    return m;
}

/* Checks shared by replace and calibrate, made before a job is queued:
 * a writable registry, a free name, parents that fit, readable data. */
static int check_job(api *a, replace_job *rj, api_error *e) {
    const registry_model *w = &rj->weak->rm, *s = &rj->strong->rm;
    if (a->store.remote)
        return api_error_set(e, "read_only_registry",
                             "the registry is served from a URL and is read-only: patched models cannot be written");
    if (!registry_name_valid(rj->name))
        return api_error_set(e, "invalid_name", "\"%.80s\" is not a valid model name ([A-Za-z0-9._-], at most %d)",
                             rj->name, REGISTRY_NAME_MAX);
    if (model_store_find(&a->store, rj->name))
        return api_error_set(e, "model_exists", "a model named \"%s\" exists; give another \"name\"", rj->name);
    if (s->patched || !s->r.n_layers)
        return api_error_set(e, "invalid_combination", "%s has no modules to take one from (a patched model)",
                             s->name);
    int ts = -1;
    for (int c = 0; c < s->info.model.num_classes; c++)
        if (!strcmp(s->info.class_names[c], rj->cls)) ts = c;
    if (ts < 0)
        return api_error_set(e, "class_not_in_parent", "%s has no class \"%.80s\" to take the module from", s->name,
                             rj->cls);
    char why[512];
    if (strcmp(w->info.dataset, s->info.dataset))
        return api_error_set(e, "incompatible_models", "%s was trained on %s and %s on %s", w->name, w->info.dataset,
                             s->name, s->info.dataset);
    if (!model_info_same_input(&w->info, &s->info, why, sizeof why))
        return api_error_set(e, "incompatible_models", "%s and %s read different inputs: %s", w->name, s->name, why);
    /* The data, as the job will read it: fails now rather than later. */
    dataset probe = {0};
    char where[DATASET_LOCATION_LEN + 64], err[1024] = "";
    model_data_options o = {.data_dir = rj->data_dir, .hint = "start moda-server with --data KIND=DIR"};
    moda_status st = model_data_read(&probe, &o, w->name, &w->info, DATASET_TEST, where, sizeof where, err, sizeof err);
    dataset_free(&probe);
    if (st != MODA_OK)
        return api_error_set(e, st == MODA_ERR_NOT_FOUND ? "data_unavailable" : "data_mismatch", "%s", err);
    return 0;
}

static void answer_accepted(api *a, json_t *request, replace_job *rj, const char *kind, api_response *resp) {
    api_error e = {0};
    char id[JOB_ID_LEN];
    if (job_submit(a->jobs, kind, request, replace_job_run, rj, replace_job_free, id, &e)) {
        api_response_error(resp, &e);
        return;
    }
    char location[64];
    snprintf(location, sizeof location, "/v1/jobs/%s", id);
    json_t *rec = job_describe(a->jobs, id, &e);
    if (!rec) {
        api_response_error(resp, &e);
        return;
    }
    api_response_json(resp, 202, rec);
    api_response_add_header(resp, "Location", location);
}

static json_t *parse_body(const api_request *req, const char *const *allowed, api_error *e) {
    json_t *body = NULL;
    if (v1_body_object(req, &body, e)) return NULL;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        bool known = false;
        for (int i = 0; allowed[i] && !known; i++) known = !strcmp(key, allowed[i]);
        if (!known) {
            api_error_set(e, "bad_request", "unknown member \"%.40s\"", key);
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

void v1_replace(api *a, const api_request *req, api_response *resp) {
    static const char *const allowed[] = {"weak", "strong", "class", "threshold", "calibration", "name", NULL};
    api_error e = {0};
    json_t *body = parse_body(req, allowed, &e);
    replace_job *rj = body ? calloc(1, sizeof(*rj)) : NULL;
    if (body && !rj) api_error_set(&e, "internal", "out of memory");
    if (rj) {
        rj->a = a;
        rj->tau = a->cfg.default_tau;
        rj->weak = model_member(a, body, "weak", &e);
        rj->strong = rj->weak ? model_member(a, body, "strong", &e) : NULL;
    }
    json_t *cls = body ? json_object_get(body, "class") : NULL, *thr = body ? json_object_get(body, "threshold") : NULL;
    json_t *name = body ? json_object_get(body, "name") : NULL;
    int rc = e.code ? -1 : 0;
    if (!rc && !cls) rc = api_error_set(&e, "bad_request", "\"class\" is required");
    int t = -1;
    if (!rc && (t = model_store_class_json(rj->weak, cls, &e)) < 0) {
        if (!strcmp(e.code, "unknown_class")) e.code = "class_not_in_parent";
        rc = -1;
    }
    if (!rc && thr && (!json_is_number(thr) || api_tau_check(json_number_value(thr), &e)))
        rc = e.code ? -1 : api_error_set(&e, "invalid_threshold", "\"threshold\" must be a number in [0, 1]");
    if (!rc && thr) rj->tau = (float)json_number_value(thr);
    if (!rc) rc = parse_calibration(json_object_get(body, "calibration"), &rj->calib, &e);
    if (!rc && name && !json_is_string(name)) rc = api_error_set(&e, "invalid_type", "\"name\" must be a string");
    if (!rc) {
        snprintf(rj->cls, sizeof rj->cls, "%s", rj->weak->rm.info.class_names[t]);
        if (name) snprintf(rj->name, sizeof rj->name, "%.*s", REGISTRY_NAME_MAX, json_string_value(name));
        else snprintf(rj->name, sizeof rj->name, "%.48s-patched-%d", rj->weak->rm.name, t % 1000000);
        if (name && strlen(json_string_value(name)) > REGISTRY_NAME_MAX)
            rc = api_error_set(&e, "invalid_name", "\"name\" is longer than %d characters", REGISTRY_NAME_MAX);
        rj->data_dir = data_dir_for(a, rj->weak->rm.info.dataset);
    }
    if (!rc) rc = check_job(a, rj, &e);
    if (rc) {
        replace_job_free(rj);
        json_decref(body);
        api_response_error(resp, &e);
        return;
    }
    answer_accepted(a, body, rj, "replace", resp);
}

void v1_calibrate(api *a, const api_request *req, api_response *resp) {
    static const char *const allowed[] = {"model", "calibration", "name", NULL};
    api_error e = {0};
    json_t *body = parse_body(req, allowed, &e);
    const api_model *m = body ? model_member(a, body, "model", &e) : NULL;
    replace_job *rj = m ? calloc(1, sizeof(*rj)) : NULL;
    int rc = e.code ? -1 : 0;
    if (!rc && !m->rm.patched)
        rc = api_error_set(&e, "not_patched", "%s is not a patched model: only a patched model's calibration layer "
                           "can be retrained", m->rm.name);
    if (!rc && !rj) rc = api_error_set(&e, "internal", "out of memory");
    const registry_patch *p = m ? &m->rm.patch : NULL;
    if (!rc) {
        rj->a = a;
        rj->weak = model_store_find(&a->store, p->weak.model);
        rj->strong = model_store_find(&a->store, p->strong.model);
        if (!rj->weak || !rj->strong)
            rc = api_error_set(&e, "unknown_model", "%s's parent %s is not served", m->rm.name,
                               rj->weak ? p->strong.model : p->weak.model);
    }
    if (!rc) rc = parse_calibration(json_object_get(body, "calibration"), &rj->calib, &e);
    json_t *name = body ? json_object_get(body, "name") : NULL;
    if (!rc && name && !json_is_string(name)) rc = api_error_set(&e, "invalid_type", "\"name\" must be a string");
    if (!rc && name && strlen(json_string_value(name)) > REGISTRY_NAME_MAX)
        rc = api_error_set(&e, "invalid_name", "\"name\" is longer than %d characters", REGISTRY_NAME_MAX);
    if (!rc) {
        rj->tau = p->tau;
        snprintf(rj->cls, sizeof rj->cls, "%s", p->class_name);
        if (name) snprintf(rj->name, sizeof rj->name, "%s", json_string_value(name));
        else snprintf(rj->name, sizeof rj->name, "%.50s-recalibrated", m->rm.name);
        rj->data_dir = data_dir_for(a, rj->weak->rm.info.dataset);
        rc = check_job(a, rj, &e);
    }
    if (rc) {
        replace_job_free(rj);
        json_decref(body);
        api_response_error(resp, &e);
        return;
    }
    answer_accepted(a, body, rj, "calibrate", resp);
}

void v1_jobs_list(api *a, api_response *resp) { api_response_json(resp, 200, job_list(a->jobs)); }

void v1_job_get(api *a, const char *id, api_response *resp) {
    api_error e = {0};
    json_t *rec = job_describe(a->jobs, id, &e);
    if (!rec) api_response_error(resp, &e);
    else api_response_json(resp, 200, rec);
}

void v1_job_cancel(api *a, const char *id, api_response *resp) {
    api_error e = {0};
    json_t *rec = job_cancel(a->jobs, id, &e);
    if (!rec) api_response_error(resp, &e);
    else api_response_json(resp, 200, rec);
}
