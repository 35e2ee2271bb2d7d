/* Open Inference Protocol v2 per-model routes: metadata, readiness and
 * inference on pinned cache entries (see v2.h). */
#include "v2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_internal.h"
#include "v2_ext.h"
#include "v2_proto.h"

#define V2_PATH_MAX 512
#define V2_VERSION "1"

typedef enum v2_action { V2_METADATA, V2_READY, V2_INFER, V2_CONFIG, V2_STATS } v2_action;

/* Split rest into {name}[/versions/{v}][/ready|/infer|/config|/stats]; false when it is no
 * such path. name and version point into buf. */
static bool parse_path(char *buf, const char **name, const char **version, v2_action *action) {
    char *seg[6];
    int n = 0;
    for (char *p = buf;;) {
        if (n == 6) return false;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash) break;
        *slash = '\0';
        p = slash + 1;
    }
    for (int i = 0; i < n; i++)
        if (!seg[i][0]) return false;
    *name = seg[0];
    *version = NULL;
    int at = 1;
    if (n >= 3 && !strcmp(seg[1], "versions")) {
        *version = seg[2];
        at = 3;
    }
    if (n == at) {
        *action = V2_METADATA;
        return true;
    }
    if (n != at + 1) return false;
    if (!strcmp(seg[at], "ready"))
        *action = V2_READY;
    else if (!strcmp(seg[at], "infer"))
        *action = V2_INFER;
    else if (!strcmp(seg[at], "config"))
        *action = V2_CONFIG;
    else if (!strcmp(seg[at], "stats"))
        *action = V2_STATS;
    else
        return false;
    return true;
}

static json_t *tensor_meta(const char *name, const char *datatype, json_t *shape) {
    return json_pack("{s:s,s:s,s:o}", "name", name, "datatype", datatype, "shape", shape);
}

static void respond_metadata(api_response *resp, const char *name, const api_entry_info *mi) {
    json_t *root = json_pack(
        "{s:s,s:[s],s:s,s:[o],s:[o,o,o]}", "name", name, "versions", V2_VERSION, "platform", "moda_c", "inputs",
        tensor_meta(V2_INPUT_NAME, "FP32", json_pack("[i,i,i,i]", -1, mi->channels, mi->height, mi->width)),
        "outputs", tensor_meta(v2_output_name(V2_OUT_PROBABILITIES), "FP32", json_pack("[i,i]", -1, mi->n_classes)),
        tensor_meta(v2_output_name(V2_OUT_LOGITS), "FP32", json_pack("[i,i]", -1, mi->n_classes)),
        tensor_meta(v2_output_name(V2_OUT_CLASS_INDEX), "INT32", json_pack("[i]", -1)));
    api_response_json(resp, 200, root);
}

/* Bodies are taken as sent: a compressed one (tritonclient's
 * request_compression_algorithm) is refused rather than misread. */
static int check_encoding(const api_request *req, api_error *e) {
    const char *enc = api_request_header(req, "Content-Encoding");
    if (enc && enc[0] && strcasecmp(enc, "identity") != 0)
        return api_error_set(e, "unsupported_media_type",
                             "Content-Encoding '%.32s' is not supported; send the body uncompressed", enc);
    return 0;
}

/* Decode, prepare and run r's input through e; fills resp either way. */
static void run_infer(api *a, int worker, api_entry *entry, const char *name, const v2_request *r,
                      uint64_t deadline_us, api_response *resp) {
    const api_entry_info *mi = api_entry_info_of(entry);
    api_dtype dt = r->dtype == V2_DTYPE_UINT8 ? API_DTYPE_UINT8 : API_DTYPE_FLOAT32;
    api_input in = {0};
    api_error e = {0};
    float *x = NULL, *logits = NULL, *probs = NULL;
    int rc = r->data ? api_input_from_json_packed(r->data, &r->packed, r->shape, dt, api_max_batch(a), &in, &e)
                     : api_input_from_binary(r->binary, r->binary_len, r->shape, dt, api_max_batch(a), &in, &e);
    if (!rc) rc = api_input_prepare(mi, &in, &x, &e);
    if (!rc) {
        size_t nk = (size_t)in.n * (size_t)mi->n_classes;
        logits = malloc(nk * sizeof(float));
        probs = malloc(nk * sizeof(float));
        rc = logits && probs
                 ? api_infer_run_until(a, worker, entry, x, in.n, logits, probs, api_metrics(a), deadline_us, &e)
                 : api_error_set(&e, "internal", "out of memory");
    }
    if (rc)
        api_response_error_v2(resp, &e);
    else
        v2_response_infer(resp, r, name, in.n, mi->n_classes, logits, probs);
    free(logits);
    free(probs);
    free(x);
    api_input_free(&in);
}

void api_v2_model_route(api *a, int worker, const api_request *req, const char *rest, api_response *resp) {
    char buf[V2_PATH_MAX];
    const char *name, *version;
    v2_action action;
    if (strlen(rest) >= sizeof buf) {
        api_response_errorf_v2(resp, "unknown_model", "unknown model '%.64s...'", rest);
        return;
    }
    strcpy(buf, rest);
    if (!parse_path(buf, &name, &version, &action)) {
        api_response_errorf_v2(resp, "not_found", "no such route: /v2/models/%.128s", rest);
        return;
    }
    resp->is_inference = action == V2_INFER;
    const char *method = action == V2_INFER ? "POST" : "GET";
    if (!req->method || strcmp(req->method, method) != 0) {
        api_response_errorf_v2(resp, "method_not_allowed", "this route takes %s", method);
        api_response_add_header(resp, "Allow", strcmp(method, "GET") ? method : "GET, HEAD");
        return;
    }
    if (version && strcmp(version, V2_VERSION) != 0) {
        api_response_errorf_v2(resp, "unknown_model", "model '%.128s' has no version '%.16s' (only '" V2_VERSION "')", name,
                       version);
        return;
    }

    /* Resolve first: unknown models are 404 whatever the body, and every
     * later failure is counted under the model. */
    api_entry *entry = NULL;
    api_error e = {0};
    if (api_entry_resolve(a, worker, name, &entry, &e)) {
        api_response_error_v2(resp, &e);
        return;
    }
    const api_entry_info *mi = api_entry_info_of(entry);
    snprintf(resp->model, sizeof resp->model, "%s", mi->id);
    v2_request r = {0};
    if (action == V2_METADATA)
        respond_metadata(resp, name, mi);
    else if (action == V2_READY)
        api_response_json(resp, 200, json_pack("{s:s,s:b}", "name", name, "ready", 1));
    else if (action == V2_CONFIG)
        v2_model_config(a, mi, resp);
    else if (action == V2_STATS)
        v2_model_stats(a, mi->id, resp);
    else if (check_encoding(req, &e) ||
             v2_request_parse(req->body, req->body_len, api_request_header(req, V2_HEADER_LENGTH), &r, &e))
        api_response_error_v2(resp, &e);
    else
        run_infer(a, worker, entry, name, &r, req->deadline_us, resp);
    api_entry_release(a, entry);
    v2_request_free(&r);
}
