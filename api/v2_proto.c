/* Open Inference Protocol v2: request framing and parsing, response
 * encoding (see v2_proto.h). */
#include "v2_proto.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fast.h"

/* Binary tensors are little-endian on the wire and copied as is. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the v2 binary tensor encoding assumes a little-endian host"
#endif

static const char *const OUTPUT_NAMES[V2_OUT_COUNT_] = {"probabilities", "logits", "class_index"};

const char *v2_output_name(v2_output o) { return o >= 0 && o < V2_OUT_COUNT_ ? OUTPUT_NAMES[o] : "?"; }

/* ---- request -------------------------------------------------------------- */

/* The header's value: decimal digits, optionally blank-padded, at most
 * body_len. */
static int parse_header_length(const char *s, size_t body_len, size_t *out, api_error *e) {
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    size_t v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        v = v * 10 + (size_t)(*p - '0');
        if (v > body_len) /* also stops any overflow */
            return api_error_set(e, "bad_request", "%s (%.32s) exceeds the body's %zu bytes", V2_HEADER_LENGTH, s,
                                 body_len);
    }
    while (*p == ' ' || *p == '\t') p++;
    if (!digits || *p)
        return api_error_set(e, "bad_request", "%s must be a byte count, got \"%.32s\"", V2_HEADER_LENGTH, s);
    *out = v;
    return 0;
}

/* Member key of obj: NULL when absent; -1 (with invalid_type) when present
 * but not of the given type. */
static int member(const json_t *obj, const char *where, const char *key, json_type type, json_t **out,
                  api_error *e) {
    static const char *const TYPE_NAMES[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",   [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "a boolean",
        [JSON_FALSE] = "a boolean",  [JSON_NULL] = "null",
    };
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) return 0;
    bool ok = type == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == type;
    if (!ok) return api_error_set(e, "invalid_type", "%s\"%s\" must be %s", where, key, TYPE_NAMES[type]);
    *out = v;
    return 0;
}

static int parse_shape(const json_t *shape, int dims[4], api_error *e) {
    size_t n = json_array_size(shape);
    for (size_t i = 0; i < n; i++)
        if (!json_is_integer(json_array_get(shape, i)))
            return api_error_set(e, "invalid_type", "input 'input': \"shape\" must hold integers");
    if (n != 4)
        return api_error_set(e, "invalid_shape", "input 'input': shape must be [N, C, H, W], got %zu dimensions", n);
    for (size_t i = 0; i < 4; i++) {
        json_int_t d = json_integer_value(json_array_get(shape, i));
        if (d < 1 || d > INT_MAX)
            return api_error_set(e, "invalid_shape", "input 'input': shape[%zu] is %" JSON_INTEGER_FORMAT
                                 ", must be a positive size", i, d);
        dims[i] = (int)d;
    }
    return 0;
}

/* The one input: name, datatype, shape, and where its values are. *bin_size
 * is its binary_data_size, or -1 when it has "data". */
static int parse_input(v2_request *r, const json_t *in, long long *bin_size, api_error *e) {
    json_t *name, *dtype, *shape, *params = NULL, *size = NULL, *data;
    if (!json_is_object(in)) return api_error_set(e, "invalid_type", "\"inputs[0]\" must be an object");
    if (member(in, "inputs[0].", "name", JSON_STRING, &name, e) ||
        member(in, "inputs[0].", "datatype", JSON_STRING, &dtype, e) ||
        member(in, "inputs[0].", "shape", JSON_ARRAY, &shape, e) ||
        member(in, "inputs[0].", "parameters", JSON_OBJECT, &params, e) ||
        (params && member(params, "inputs[0].parameters.", "binary_data_size", JSON_INTEGER, &size, e)))
        return -1;
    if (!name || !dtype || !shape)
        return api_error_set(e, "bad_request", "inputs[0] needs \"name\", \"datatype\" and \"shape\"");
    if (strcmp(json_string_value(name), V2_INPUT_NAME) != 0)
        return api_error_set(e, "bad_request", "unexpected inference input '%.64s': the model's input is '%s'",
                             json_string_value(name), V2_INPUT_NAME);
    const char *dt = json_string_value(dtype);
    if (!strcmp(dt, "FP32"))
        r->dtype = V2_DTYPE_FP32;
    else if (!strcmp(dt, "UINT8"))
        r->dtype = V2_DTYPE_UINT8;
    else
        return api_error_set(e, "invalid_type", "input 'input': datatype '%.32s' is not supported (FP32 or UINT8)",
                             dt);
    if (parse_shape(shape, r->shape, e)) return -1;

    data = json_object_get(in, "data");
    if (!!data == !!size)
        return api_error_set(e, "bad_request",
                             "input 'input' must set exactly one of \"data\" and \"binary_data_size\" in "
                             "\"parameters\"");
    if (data) {
        if (!json_is_array(data)) return api_error_set(e, "invalid_type", "input 'input': \"data\" must be an array");
        r->data = data;
        *bin_size = -1;
        return 0;
    }
    json_int_t b = json_integer_value(size);
    if (b < 0) return api_error_set(e, "invalid_type", "input 'input': binary_data_size must be >= 0");
    *bin_size = (long long)b;
    return 0;
}

static int parse_outputs(v2_request *r, const json_t *outputs, bool default_binary, api_error *e) {
    size_t n = json_array_size(outputs);
    if (n == 0) { /* none named: all of them, in the metadata's order */
        r->n_outputs = V2_OUT_COUNT_;
        for (int i = 0; i < V2_OUT_COUNT_; i++) {
            r->outputs[i] = (v2_output)i;
            r->out_binary[i] = default_binary;
        }
        return 0;
    }
    if (n > V2_OUT_COUNT_)
        return api_error_set(e, "bad_request", "%zu outputs requested; the model has %d", n, V2_OUT_COUNT_);
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(outputs, i);
        char where[32];
        snprintf(where, sizeof where, "outputs[%zu].", i);
        json_t *name, *params = NULL, *binary = NULL;
        if (!json_is_object(o)) return api_error_set(e, "invalid_type", "\"outputs[%zu]\" must be an object", i);
        if (member(o, where, "name", JSON_STRING, &name, e) ||
            member(o, where, "parameters", JSON_OBJECT, &params, e))
            return -1;
        /* "classification" (Triton's top-k extension) is ignored. */
        if (params) {
            snprintf(where, sizeof where, "outputs[%zu].parameters.", i);
            if (member(params, where, "binary_data", JSON_TRUE, &binary, e)) return -1;
        }
        if (!name) return api_error_set(e, "bad_request", "outputs[%zu] needs a \"name\"", i);
        const char *s = json_string_value(name);
        int which = -1;
        for (int k = 0; k < V2_OUT_COUNT_; k++)
            if (!strcmp(s, OUTPUT_NAMES[k])) which = k;
        if (which < 0)
            return api_error_set(e, "bad_request",
                                 "unexpected inference output '%.64s': outputs are probabilities, logits, "
                                 "class_index",
                                 s);
        for (int k = 0; k < r->n_outputs; k++)
            if (r->outputs[k] == (v2_output)which)
                return api_error_set(e, "bad_request", "output '%s' is requested twice", s);
        r->outputs[r->n_outputs] = (v2_output)which;
        r->out_binary[r->n_outputs] = binary ? json_is_true(binary) : default_binary;
        r->n_outputs++;
    }
    return 0;
}

static int parse_root(v2_request *r, const char *body, size_t body_len, size_t json_len, bool framed,
                      api_error *e) {
    json_t *id, *params = NULL, *bdo = NULL, *inputs, *outputs;
    json_t *root = r->root;
    if (!json_is_object(root)) return api_error_set(e, "invalid_type", "the inference request must be a JSON object");
    if (member(root, "", "id", JSON_STRING, &id, e) || member(root, "", "parameters", JSON_OBJECT, &params, e) ||
        (params && member(params, "parameters.", "binary_data_output", JSON_TRUE, &bdo, e)) ||
        member(root, "", "inputs", JSON_ARRAY, &inputs, e) || member(root, "", "outputs", JSON_ARRAY, &outputs, e))
        return -1;
    r->id = id ? json_string_value(id) : NULL;
    if (!inputs) return api_error_set(e, "bad_request", "the inference request needs \"inputs\"");
    if (json_array_size(inputs) != 1)
        return api_error_set(e, "bad_request", "%zu inputs given; the model has one, '%s'", json_array_size(inputs),
                             V2_INPUT_NAME);
    long long bin_size = -1;
    if (parse_input(r, json_array_get(inputs, 0), &bin_size, e)) return -1;

    /* Binary tensors follow the JSON header in input order and fill the
     * rest of the body exactly. */
    size_t rest = body_len - json_len, used = 0;
    if (bin_size >= 0) {
        if (!framed)
            return api_error_set(e, "bad_request", "input 'input' has binary_data_size but the request has no %s",
                                 V2_HEADER_LENGTH);
        if ((unsigned long long)bin_size > rest)
            return api_error_set(e, "bad_request",
                                 "input 'input' has binary_data_size %lld but only %zu bytes follow the JSON", bin_size,
                                 rest);
        r->binary = body + json_len;
        r->binary_len = (size_t)bin_size;
        used = (size_t)bin_size;
    }
    if (used != rest)
        return api_error_set(e, "bad_request", "%zu unexpected bytes after the inference request's tensors",
                             rest - used);
    return parse_outputs(r, outputs, bdo && json_is_true(bdo), e);
}

int v2_request_parse(const char *body, size_t body_len, const char *header_length, v2_request *out,
                     api_error *e) {
    memset(out, 0, sizeof(*out));
    if (!body) { /* an empty body may come as NULL */
        body = "";
        body_len = 0;
    }
    size_t json_len = body_len;
    if (header_length && parse_header_length(header_length, body_len, &json_len, e)) return -1;
    json_error_t jerr;
    out->root = json_fast_or_jansson_packed(body, json_len, 0, "data", &out->packed, &jerr);
    if (!out->root)
        return api_error_set(e, "invalid_json", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                             jerr.text);
    if (parse_root(out, body, body_len, json_len, header_length != NULL, e)) {
        v2_request_free(out);
        return -1;
    }
    return 0;
}

void v2_request_free(v2_request *r) {
    if (!r) return;
    json_decref(r->root);
    json_fast_packed_free(&r->packed);
    memset(r, 0, sizeof(*r));
}

/* ---- response ------------------------------------------------------------- */

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* One output's values as a flat JSON array. */
static json_t *output_data(v2_output o, size_t count, const float *values, const int32_t *index) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++)
        if (json_array_append_new(arr, o == V2_OUT_CLASS_INDEX ? json_integer(index[i]) : json_real(values[i]))) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static void oom(api_response *resp) {
    api_error e;
    api_error_set(&e, "internal", "out of memory");
    api_response_error_v2(resp, &e);
}

void v2_response_infer(api_response *resp, const v2_request *r, const char *model_name, int n, int k,
                       const float *logits, const float *probs) {
    size_t nk = (size_t)n * (size_t)k;
    for (int i = 0; i < r->n_outputs; i++)
        if ((r->outputs[i] == V2_OUT_LOGITS && !all_finite(logits, nk)) ||
            (r->outputs[i] != V2_OUT_LOGITS && !all_finite(probs, nk))) {
            api_error e;
            api_error_set(&e, "invalid_input", "the model's output is not finite for this input");
            api_response_error_v2(resp, &e);
            return;
        }
    int32_t *index = malloc((size_t)(n ? n : 1) * sizeof(*index));
    json_t *root = json_pack("{s:s,s:s}", "model_name", model_name, "model_version", "1");
    json_t *outs = json_array();
    if (!index || !root || !outs || (r->id && json_object_set_new(root, "id", json_string(r->id))) ||
        json_object_set(root, "outputs", outs))
        goto fail;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < k; j++)
            if (probs[(size_t)i * k + j] > probs[(size_t)i * k + best]) best = j;
        index[i] = best;
    }

    size_t bin_len = 0, bytes[V2_OUT_COUNT_];
    const void *src[V2_OUT_COUNT_];
    for (int i = 0; i < r->n_outputs; i++) {
        v2_output o = r->outputs[i];
        bool is_index = o == V2_OUT_CLASS_INDEX;
        src[i] = is_index ? (const void *)index : o == V2_OUT_LOGITS ? (const void *)logits : (const void *)probs;
        bytes[i] = is_index ? (size_t)n * sizeof(int32_t) : nk * sizeof(float);
        json_t *t = is_index ? json_pack("{s:s,s:s,s:[i]}", "name", v2_output_name(o), "datatype", "INT32", "shape", n)
                             : json_pack("{s:s,s:s,s:[i,i]}", "name", v2_output_name(o), "datatype", "FP32", "shape",
                                         n, k);
        if (!t || json_array_append_new(outs, t)) goto fail;
        json_t *v = r->out_binary[i] ? json_pack("{s:I}", "binary_data_size", (json_int_t)bytes[i])
                                     : output_data(o, is_index ? (size_t)n : nk, src[i], index);
        if (!v || json_object_set_new(t, r->out_binary[i] ? "parameters" : "data", v)) goto fail;
        if (r->out_binary[i]) bin_len += bytes[i];
    }

    /* Same precision as the v1 encoder: 9 digits round-trip a float32. */
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!text) goto fail;
    size_t text_len = strlen(text);
    char *body = bin_len ? malloc(text_len + bin_len) : text;
    if (!body) {
        free(text);
        goto fail;
    }
    if (bin_len) {
        memcpy(body, text, text_len);
        free(text);
        size_t at = text_len;
        for (int i = 0; i < r->n_outputs; i++)
            if (r->out_binary[i]) {
                memcpy(body + at, src[i], bytes[i]);
                at += bytes[i];
            }
    }
    free(resp->body);
    resp->body = body;
    resp->body_len = text_len + bin_len;
    resp->status = 200;
    resp->error_code = NULL;
    snprintf(resp->content_type, sizeof resp->content_type, "%s",
             bin_len ? "application/octet-stream" : "application/json");
    if (bin_len) {
        char len[32];
        snprintf(len, sizeof len, "%zu", text_len);
        if (!api_response_add_header(resp, V2_HEADER_LENGTH, len)) {
            free(resp->body);
            resp->body = NULL;
            resp->body_len = 0;
            goto fail;
        }
    }
    json_decref(outs);
    json_decref(root);
    free(index);
    return;
fail:
    json_decref(outs);
    json_decref(root);
    free(index);
    oom(resp);
}
