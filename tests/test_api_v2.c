/* Open Inference Protocol v2: the wire layer on hand-built requests (JSON and
 * binary framing, nested and flat data, outputs and their binary flags, every
 * malformed case mapped to its error code, every truncation of a valid
 * request handled), the response encoding both ways, and the routes end to
 * end through api_handle on the bundled registry, compared with the engine's
 * own output for the same inputs. */
#include "test_util.h"

#include <jansson.h>

#include "api.h"
#include "metrics.h"
#include "compose.h"
#include "registry.h"
#include "v2_proto.h"

/* ---- the wire layer -------------------------------------------------------- */

/* A request body: JSON text followed by len binary bytes (owned). */
typedef struct body {
    char *bytes;
    size_t len;
    char header[32]; /* Inference-Header-Content-Length: the JSON's length */
} body;

static body body_make(const char *json, const void *bin, size_t bin_len) {
    body b;
    size_t j = strlen(json);
    b.len = j + bin_len;
    b.bytes = malloc(b.len ? b.len : 1);
    assert_non_null(b.bytes);
    memcpy(b.bytes, json, j);
    if (bin_len) memcpy(b.bytes + j, bin, bin_len);
    snprintf(b.header, sizeof b.header, "%zu", j);
    return b;
}

static const char *JSON_FLAT =
    "{\"id\":\"42\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,2,2],\"datatype\":\"FP32\","
    "\"data\":[1,2.5,-3,4]}]}";

static void test_parse_json_flat(void **state) {
    (void)state;
    v2_request r;
    api_error e = {0};
    assert_int_equal(v2_request_parse(JSON_FLAT, strlen(JSON_FLAT), NULL, &r, &e), 0);
    assert_string_equal(r.id, "42");
    assert_int_equal(r.dtype, V2_DTYPE_FP32);
    int want[4] = {1, 1, 2, 2};
    assert_memory_equal(r.shape, want, sizeof want);
    /* The numbers are packed, not in the tree (json_fast.h). */
    assert_non_null(r.data);
    assert_ptr_equal(r.data, r.packed.node);
    assert_int_equal(r.packed.ndim, 1);
    assert_int_equal(r.packed.shape[0], 4);
    assert_int_equal(r.packed.count, 4);
    const double flat[4] = {1, 2.5, -3, 4};
    assert_memory_equal(r.packed.values, flat, sizeof flat);
    assert_null(r.binary);
    /* No "outputs": all three, as JSON, in the metadata's order. */
    assert_int_equal(r.n_outputs, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.outputs[i], i);
        assert_false(r.out_binary[i]);
    }
    v2_request_free(&r);
    assert_null(r.root);
    v2_request_free(NULL);
}

static void test_parse_json_nested_uint8(void **state) {
    (void)state;
    const char *json = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,1,1,2],\"datatype\":\"UINT8\","
                       "\"data\":[[[[0,255]]],[[[7,8]]]]}],"
                       "\"outputs\":[{\"name\":\"class_index\"},{\"name\":\"probabilities\",\"parameters\":"
                       "{\"classification\":2}}]}";
    v2_request r;
    api_error e = {0};
    assert_int_equal(v2_request_parse(json, strlen(json), NULL, &r, &e), 0);
    assert_null(r.id);
    assert_int_equal(r.dtype, V2_DTYPE_UINT8);
    assert_int_equal(r.shape[0], 2);
    assert_ptr_equal(r.data, r.packed.node); /* nested as sent, packed; decoded later */
    const int nested[4] = {2, 1, 1, 2};
    assert_int_equal(r.packed.ndim, 4);
    assert_memory_equal(r.packed.shape, nested, sizeof nested);
    const double u8[4] = {0, 255, 7, 8};
    assert_memory_equal(r.packed.values, u8, sizeof u8);
    assert_int_equal(r.n_outputs, 2);
    assert_int_equal(r.outputs[0], V2_OUT_CLASS_INDEX);
    assert_int_equal(r.outputs[1], V2_OUT_PROBABILITIES);
    assert_false(r.out_binary[0]);
    assert_false(r.out_binary[1]);
    v2_request_free(&r);
}

/* As tritonclient.http sends it: binary input, Inference-Header-Content-Length,
 * and either binary_data_output (no outputs named) or binary_data per output,
 * which overrides binary_data_output. */
static void test_parse_binary_framing(void **state) {
    (void)state;
    float x[4] = {0.5f, -1.0f, 2.0f, 3.25f};
    body b = body_make("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,2,2],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":16}}],\"parameters\":{\"binary_data_output\":true}}",
                       x, sizeof x);
    v2_request r;
    api_error e = {0};
    assert_int_equal(v2_request_parse(b.bytes, b.len, b.header, &r, &e), 0);
    assert_null(r.data);
    assert_ptr_equal(r.binary, b.bytes + b.len - 16);
    assert_int_equal(r.binary_len, 16);
    assert_memory_equal(r.binary, x, 16);
    assert_int_equal(r.n_outputs, 3);
    for (int i = 0; i < 3; i++) assert_true(r.out_binary[i]);
    v2_request_free(&r);
    free(b.bytes);

    b = body_make("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,2,2],\"datatype\":\"FP32\","
                  "\"parameters\":{\"binary_data_size\":16}}],\"parameters\":{\"binary_data_output\":true},"
                  "\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":false}},"
                  "{\"name\":\"probabilities\"},{\"name\":\"class_index\",\"parameters\":{\"binary_data\":true}}]}",
                  x, sizeof x);
    /* Blanks around the header value are tolerated. */
    char padded[40];
    snprintf(padded, sizeof padded, " %s ", b.header);
    assert_int_equal(v2_request_parse(b.bytes, b.len, padded, &r, &e), 0);
    assert_int_equal(r.outputs[0], V2_OUT_LOGITS);
    assert_false(r.out_binary[0]);
    assert_int_equal(r.outputs[1], V2_OUT_PROBABILITIES);
    assert_true(r.out_binary[1]);
    assert_int_equal(r.outputs[2], V2_OUT_CLASS_INDEX);
    assert_true(r.out_binary[2]);
    v2_request_free(&r);
    free(b.bytes);

    /* A header equal to the body length with JSON data is a plain request. */
    b = body_make(JSON_FLAT, NULL, 0);
    assert_int_equal(v2_request_parse(b.bytes, b.len, b.header, &r, &e), 0);
    assert_non_null(r.data);
    v2_request_free(&r);
    free(b.bytes);
}

typedef struct bad_case {
    const char *json;
    const char *header; /* NULL: none; "=": the JSON's length */
    size_t bin_len;     /* zero bytes appended */
    const char *code;
} bad_case;

#define IN_OK "\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,1,2,2]"
#define REQ(input) "{\"inputs\":[{" input "}]}"
#define REQP(prefix, input) "{" prefix "\"inputs\":[{" input "}]}"

static const bad_case BAD[] = {
    {"", NULL, 0, "invalid_json"},
    {"{", NULL, 0, "invalid_json"},
    {"{\"inputs\":[]} trailing", NULL, 0, "invalid_json"},
    {"[1,2]", NULL, 0, "invalid_type"},
    {"{}", NULL, 0, "bad_request"},
    {"{\"inputs\":{}}", NULL, 0, "invalid_type"},
    {"{\"inputs\":[]}", NULL, 0, "bad_request"},
    {"{\"inputs\":[5]}", NULL, 0, "invalid_type"},
    {"{\"inputs\":[{" IN_OK ",\"data\":[1,2,3,4]},{" IN_OK ",\"data\":[1,2,3,4]}]}", NULL, 0, "bad_request"},
    {REQP("\"id\":42,", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0, "invalid_type"},
    {REQ("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0, "bad_request"},
    {REQ("\"name\":7,\"datatype\":\"FP32\",\"shape\":[1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0, "invalid_type"},
    {REQ("\"datatype\":\"FP32\",\"shape\":[1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0, "bad_request"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP64\",\"shape\":[1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_type"},
    {REQ("\"name\":\"input\",\"datatype\":\"fp32\",\"shape\":[1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_type"},
    {REQ("\"name\":\"input\",\"datatype\":[],\"shape\":[1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0, "invalid_type"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,2,2],\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_shape"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,0,2,2],\"data\":[]"), NULL, 0, "invalid_shape"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,1,2,2],\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_shape"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,1,2,9999999999],\"data\":[1]"), NULL, 0,
     "invalid_shape"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,1,2,2.5],\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_type"},
    {REQ("\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":\"1,1,2,2\",\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_type"},
    {REQ(IN_OK ",\"data\":5"), NULL, 0, "invalid_type"},
    {REQ(IN_OK), NULL, 0, "bad_request"},
    {REQ(IN_OK ",\"data\":[1,2,3,4],\"parameters\":{\"binary_data_size\":16}"), "=", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), NULL, 0, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "=", 8, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "=", 20, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":-16}"), "=", 0, "invalid_type"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":\"16\"}"), "=", 16, "invalid_type"},
    {REQ(IN_OK ",\"parameters\":[]"), "=", 16, "invalid_type"},
    {REQ(IN_OK ",\"data\":[1,2,3,4]"), "=", 4, "bad_request"}, /* bytes nothing claims */
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "abc", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "-5", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "12x", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "99999", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "184467440737095516160", 16, "bad_request"},
    {REQ(IN_OK ",\"parameters\":{\"binary_data_size\":16}"), "10", 16, "invalid_json"}, /* cuts the JSON */
    {REQP("\"parameters\":{\"binary_data_output\":\"yes\"},", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0,
     "invalid_type"},
    {REQP("\"parameters\":5,", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0, "invalid_type"},
    {REQP("\"outputs\":{},", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0, "invalid_type"},
    {REQP("\"outputs\":[\"logits\"],", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0, "invalid_type"},
    {REQP("\"outputs\":[{}],", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0, "bad_request"},
    {REQP("\"outputs\":[{\"name\":\"scores\"}],", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0, "bad_request"},
    {REQP("\"outputs\":[{\"name\":\"logits\"},{\"name\":\"logits\"}],", IN_OK ",\"data\":[1,2,3,4]"), NULL, 0,
     "bad_request"},
    {REQP("\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":1}}],", IN_OK ",\"data\":[1,2,3,4]"),
     NULL, 0, "invalid_type"},
};

static void test_parse_errors(void **state) {
    (void)state;
    static const char zeros[32];
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *c = &BAD[i];
        body b = body_make(c->json, zeros, c->bin_len);
        const char *hdr = c->header && !strcmp(c->header, "=") ? b.header : c->header;
        v2_request r;
        api_error e = {0};
        int rc = v2_request_parse(b.bytes, b.len, hdr, &r, &e);
        if (rc != -1 || !e.code || strcmp(e.code, c->code) != 0)
            fail_msg("case %zu (%s): got %s (%s), expected %s", i, c->json, e.code ? e.code : "success",
                     e.message, c->code);
        assert_null(r.root);
        assert_true(strlen(e.message) > 0);
        free(b.bytes);
    }
}

/* Every prefix of a valid binary request, with its header and without, and
 * every single-byte corruption of the header's JSON: parsed or rejected with
 * a code, never a crash or an out-of-bounds read (the sanitizer build). */
static void test_parse_truncations(void **state) {
    (void)state;
    uint8_t px[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    body b = body_make("{\"id\":\"t\",\"inputs\":[{\"name\":\"input\",\"shape\":[2,1,2,2],\"datatype\":\"UINT8\","
                       "\"parameters\":{\"binary_data_size\":8}}],\"outputs\":[{\"name\":\"logits\","
                       "\"parameters\":{\"binary_data\":true}}]}",
                       px, sizeof px);
    int ok = 0;
    for (size_t len = 0; len <= b.len; len++)
        for (int with = 0; with < 2; with++) {
            char *copy = malloc(len ? len : 1); /* exact size, so ASan sees overreads */
            memcpy(copy, b.bytes, len);
            v2_request r;
            api_error e = {0};
            int rc = v2_request_parse(len ? copy : NULL, len, with ? b.header : NULL, &r, &e);
            assert_true(rc == 0 || (rc == -1 && e.code));
            ok += rc == 0;
            v2_request_free(&r);
            free(copy);
        }
    assert_int_equal(ok, 1); /* only the whole body, with its header */
    size_t json_len = strtoul(b.header, NULL, 10);
    for (size_t i = 0; i < json_len; i++) {
        char *copy = malloc(b.len);
        memcpy(copy, b.bytes, b.len);
        copy[i] = (char)(copy[i] ^ 0x5a);
        v2_request r;
        api_error e = {0};
        int rc = v2_request_parse(copy, b.len, b.header, &r, &e);
        assert_true(rc == 0 || (rc == -1 && e.code));
        v2_request_free(&r);
        free(copy);
    }
    free(b.bytes);
}

/* ---- response encoding ----------------------------------------------------- */

static const float LOGITS[6] = {1.5f, -2.0f, 0.25f, 3.0f, 3.5f, -1.0f};
static const float PROBS[6] = {0.7f, 0.1f, 0.2f, 0.3f, 0.6f, 0.1f};

static json_t *output_named(json_t *root, const char *name) {
    json_t *outs = json_object_get(root, "outputs"), *o;
    size_t i;
    json_array_foreach(outs, i, o) if (!strcmp(json_string_value(json_object_get(o, "name")), name)) return o;
    return NULL;
}

static void assert_floats(json_t *data, const float *want, size_t n) {
    assert_int_equal(json_array_size(data), n);
    for (size_t i = 0; i < n; i++) assert_true((float)json_number_value(json_array_get(data, i)) == want[i]);
}

static void test_encode_json(void **state) {
    (void)state;
    v2_request r;
    api_error e = {0};
    assert_int_equal(v2_request_parse(JSON_FLAT, strlen(JSON_FLAT), NULL, &r, &e), 0);
    api_response resp = {0};
    v2_response_infer(&resp, &r, "m~0-1-2~0.9", 2, 3, LOGITS, PROBS);
    assert_int_equal(resp.status, 200);
    assert_null(resp.error_code);
    assert_string_equal(resp.content_type, "application/json");
    assert_int_equal(resp.n_headers, 0);
    json_error_t jerr;
    json_t *root = json_loadb(resp.body, resp.body_len, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "model_name")), "m~0-1-2~0.9");
    assert_string_equal(json_string_value(json_object_get(root, "model_version")), "1");
    assert_string_equal(json_string_value(json_object_get(root, "id")), "42");
    json_t *outs = json_object_get(root, "outputs");
    assert_int_equal(json_array_size(outs), 3);
    const char *order[3] = {"probabilities", "logits", "class_index"};
    for (int i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(outs, i), "name")), order[i]);
    json_t *p = output_named(root, "probabilities"), *l = output_named(root, "logits"),
           *c = output_named(root, "class_index");
    assert_string_equal(json_string_value(json_object_get(p, "datatype")), "FP32");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(p, "shape"), 0)), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(p, "shape"), 1)), 3);
    assert_null(json_object_get(p, "parameters"));
    assert_floats(json_object_get(p, "data"), PROBS, 6);
    assert_floats(json_object_get(l, "data"), LOGITS, 6);
    assert_string_equal(json_string_value(json_object_get(c, "datatype")), "INT32");
    assert_int_equal(json_array_size(json_object_get(c, "shape")), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "shape"), 0)), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "data"), 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "data"), 1)), 1);
    json_decref(root);
    api_response_free(&resp);
    v2_request_free(&r);
}

static void test_encode_binary(void **state) {
    (void)state;
    const char *json = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,1,1,1],\"datatype\":\"FP32\",\"data\":[1,2]}],"
                       "\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":\"probabilities\"},"
                       "{\"name\":\"class_index\",\"parameters\":{\"binary_data\":false}},{\"name\":\"logits\"}]}";
    v2_request r;
    api_error e = {0};
    assert_int_equal(v2_request_parse(json, strlen(json), NULL, &r, &e), 0);
    api_response resp = {0};
    v2_response_infer(&resp, &r, "fmnist-lenet5", 2, 3, LOGITS, PROBS);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "application/octet-stream");
    assert_int_equal(resp.n_headers, 1);
    assert_string_equal(resp.headers[0].key, "Inference-Header-Content-Length");
    size_t hlen = strtoul(resp.headers[0].value, NULL, 10);
    assert_int_equal(resp.body_len, hlen + 2 * 6 * sizeof(float));
    json_error_t jerr;
    json_t *root = json_loadb(resp.body, hlen, 0, &jerr);
    assert_non_null(root);
    assert_null(json_object_get(root, "id"));
    json_t *outs = json_object_get(root, "outputs");
    const char *order[3] = {"probabilities", "class_index", "logits"};
    for (int i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(outs, i), "name")), order[i]);
    json_t *p = output_named(root, "probabilities"), *l = output_named(root, "logits"),
           *c = output_named(root, "class_index");
    assert_null(json_object_get(p, "data"));
    assert_null(json_object_get(l, "data"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "parameters"), "binary_data_size")), 24);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(l, "parameters"), "binary_data_size")), 24);
    assert_null(json_object_get(c, "parameters"));
    assert_int_equal(json_array_size(json_object_get(c, "data")), 2);
    /* Binary data in output order: probabilities, then logits. */
    assert_memory_equal(resp.body + hlen, PROBS, sizeof PROBS);
    assert_memory_equal(resp.body + hlen + sizeof PROBS, LOGITS, sizeof LOGITS);
    json_decref(root);
    api_response_free(&resp);
    v2_request_free(&r);

    /* Only class_index, as binary INT32. */
    json = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,1,1,1],\"datatype\":\"FP32\",\"data\":[1,2]}],"
           "\"outputs\":[{\"name\":\"class_index\",\"parameters\":{\"binary_data\":true}}]}";
    assert_int_equal(v2_request_parse(json, strlen(json), NULL, &r, &e), 0);
    v2_response_infer(&resp, &r, "m", 2, 3, LOGITS, PROBS);
    hlen = strtoul(resp.headers[0].value, NULL, 10);
    assert_int_equal(resp.body_len, hlen + 8);
    int32_t idx[2];
    memcpy(idx, resp.body + hlen, sizeof idx);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    api_response_free(&resp);
    v2_request_free(&r);
}

static void test_encode_errors(void **state) {
    (void)state;
    v2_request r;
    api_error e = {0};
    assert_int_equal(v2_request_parse(JSON_FLAT, strlen(JSON_FLAT), NULL, &r, &e), 0);
    float bad[6];
    memcpy(bad, LOGITS, sizeof bad);
    bad[4] = NAN;
    api_response resp = {0};
    v2_response_infer(&resp, &r, "m", 2, 3, bad, PROBS);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.error_code, "invalid_input");
    json_t *root = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_true(json_is_string(json_object_get(root, "error"))); /* the v2 shape */
    assert_int_equal(json_object_size(root), 1);
    json_decref(root);
    api_response_free(&resp);
    v2_request_free(&r);

    api_error_set(&e, "unknown_model", "unknown model 'x'");
    api_response_error_v2(&resp, &e);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.error_code, "unknown_model");
    assert_string_equal(resp.content_type, "application/json");
    assert_int_equal(resp.body_len, strlen("{\"error\":\"unknown model 'x'\"}"));
    assert_memory_equal(resp.body, "{\"error\":\"unknown model 'x'\"}", resp.body_len);
    api_response_free(&resp);
}

/* ---- end to end through api_handle ----------------------------------------- */

#define MODEL "fmnist-lenet5"
#define COMPOSED "fmnist-lenet5~0-3-7~0.9"
#define MAX_BATCH 4

static const int CLASSES[3] = {0, 3, 7};

/* The server side (api) and the engine's own reference: the registry model
 * and the composed model built directly. */
typedef struct e2e {
    metrics *m;
    api *a;
    moda_backend *be;
    registry *reg;
    registry_model model;
    compose_plan plan;
    graph *composed;
} e2e;

static int e2e_setup(void **state) {
    e2e *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->m = metrics_new();
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 64u << 20, .workers = 1, .intra_threads = 1,
                      .max_batch = MAX_BATCH, .default_tau = 0.9f, .metrics = f->m};
    char err[256] = "";
    if (api_new(&cfg, &f->a, err, sizeof err)) fail_msg("api_new: %s", err);
    f->be = tu_backend_open();
    assert_int_equal(registry_open(MODA_MODELS_DIR, NULL, &f->reg, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(f->reg, MODEL, f->be, &f->model, err, sizeof err), MODA_OK);
    assert_int_equal(compose_plan_make(f->model.g, &f->model.r, CLASSES, 3, 0.9f, &f->plan), MODA_OK);
    assert_int_equal(compose_build(f->model.g, &f->plan, f->be, &f->composed), MODA_OK);
    assert_int_equal(graph_plan_inference(f->model.g, MAX_BATCH), MODA_OK);
    assert_int_equal(graph_plan_inference(f->composed, MAX_BATCH), MODA_OK);
    *state = f;
    return 0;
}

static int e2e_teardown(void **state) {
    e2e *f = *state;
    api_free(f->a);
    metrics_free(f->m);
    graph_free(f->composed);
    compose_plan_free(&f->plan);
    registry_model_free(&f->model);
    registry_close(f->reg);
    tu_backend_close(f->be);
    free(f);
    return 0;
}

/* Logits and probabilities (softmax in double) of g for x (n, 1, 32, 32). */
static void engine_run(graph *g, const float *x, int n, float *logits, float *probs) {
    assert_int_equal(graph_forward(g, x, n, false), MODA_OK);
    graph_node *o = graph_output(g);
    int k = o->c;
    assert_int_equal(backend_copy_to_host(g->be, logits, o->out.data, (size_t)n * k * sizeof(float)), MODA_OK);
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * k;
        double mx = l[0], sum = 0;
        for (int j = 1; j < k; j++) mx = l[j] > mx ? l[j] : mx;
        for (int j = 0; j < k; j++) sum += exp(l[j] - mx);
        for (int j = 0; j < k; j++) probs[(size_t)i * k + j] = (float)(exp(l[j] - mx) / sum);
    }
}

/* Raw 28x28 pixels as the network sees them: padded with raw black and
 * normalised with the model's mean and std. */
static void engine_prepare_raw(const model_info *mi, const uint8_t *px, int n, float *x) {
    int pad = mi->pad, S = 32, R = S - 2 * pad;
    float m = mi->mean[0], s = mi->std[0];
    for (int i = 0; i < n; i++)
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++) {
                bool in = y >= pad && y < pad + R && xx >= pad && xx < pad + R;
                float raw = in ? px[(size_t)i * R * R + (size_t)(y - pad) * R + (xx - pad)] / 255.0f : 0.0f;
                x[(size_t)i * S * S + (size_t)y * S + xx] = (raw - m) / s;
            }
}

typedef struct call {
    api_response resp;
    json_t *root; /* the JSON (header) part */
    size_t json_len;
} call;

static void call_free(call *c) {
    json_decref(c->root);
    api_response_free(&c->resp);
}

/* One request through api_handle; header_len: the value of
 * Inference-Header-Content-Length, or NULL. */
static call request(e2e *f, const char *method, const char *path, const void *body, size_t len,
                    const char *header_len) {
    char k1[] = "Inference-Header-Content-Length", k2[] = "Content-Type", ct[] = "application/octet-stream";
    char v1[32] = "";
    if (header_len) snprintf(v1, sizeof v1, "%s", header_len);
    api_kv headers[2] = {{k2, ct}, {k1, v1}};
    api_request req = {.method = method, .path = path, .headers = headers, .n_headers = header_len ? 2 : 0,
                       .body = body, .body_len = len};
    call c = {0};
    api_handle(f->a, 0, &req, &c.resp);
    const char *h = NULL;
    for (int i = 0; i < c.resp.n_headers; i++)
        if (!strcmp(c.resp.headers[i].key, "Inference-Header-Content-Length")) h = c.resp.headers[i].value;
    c.json_len = h ? strtoul(h, NULL, 10) : c.resp.body_len;
    assert_true(c.json_len <= c.resp.body_len);
    json_error_t jerr;
    c.root = json_loadb(c.resp.body, c.json_len, 0, &jerr);
    if (!c.root) fail_msg("%s %s: response is not JSON: %s", method, path, jerr.text);
    return c;
}

static call get(e2e *f, const char *path) { return request(f, "GET", path, NULL, 0, NULL); }

static void assert_v2_error(const call *c, int status, const char *code) {
    if (c->resp.status != status || !c->resp.error_code || strcmp(c->resp.error_code, code))
        fail_msg("status %d (%s), expected %d (%s): %.*s", c->resp.status, c->resp.error_code, status, code,
                 (int)c->resp.body_len, c->resp.body);
    assert_true(json_is_string(json_object_get(c->root, "error")));
    assert_int_equal(json_object_size(c->root), 1);
}

static void assert_tensor_meta(json_t *t, const char *name, const char *datatype, const int *shape, int ndim) {
    assert_string_equal(json_string_value(json_object_get(t, "name")), name);
    assert_string_equal(json_string_value(json_object_get(t, "datatype")), datatype);
    json_t *s = json_object_get(t, "shape");
    assert_int_equal(json_array_size(s), ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(json_integer_value(json_array_get(s, i)), shape[i]);
}

static void assert_metadata(const call *c, const char *name, int k) {
    assert_int_equal(c->resp.status, 200);
    assert_string_equal(c->resp.content_type, "application/json");
    json_t *r = c->root;
    assert_string_equal(json_string_value(json_object_get(r, "name")), name);
    assert_string_equal(json_string_value(json_object_get(r, "platform")), "moda_c");
    json_t *v = json_object_get(r, "versions");
    assert_int_equal(json_array_size(v), 1);
    assert_string_equal(json_string_value(json_array_get(v, 0)), "1");
    json_t *in = json_object_get(r, "inputs"), *out = json_object_get(r, "outputs");
    assert_int_equal(json_array_size(in), 1);
    assert_int_equal(json_array_size(out), 3);
    assert_tensor_meta(json_array_get(in, 0), "input", "FP32", (int[]){-1, 1, 32, 32}, 4);
    assert_tensor_meta(json_array_get(out, 0), "probabilities", "FP32", (int[]){-1, k}, 2);
    assert_tensor_meta(json_array_get(out, 1), "logits", "FP32", (int[]){-1, k}, 2);
    assert_tensor_meta(json_array_get(out, 2), "class_index", "INT32", (int[]){-1}, 1);
}

static void test_e2e_metadata_ready(void **state) {
    e2e *f = *state;
    call c = get(f, "/v2/models/" MODEL);
    assert_metadata(&c, MODEL, 10);
    assert_string_equal(c.resp.model, MODEL);
    assert_false(c.resp.is_inference);
    call_free(&c);
    c = get(f, "/v2/models/" COMPOSED);
    assert_metadata(&c, COMPOSED, 3);
    assert_string_equal(c.resp.model, COMPOSED);
    call_free(&c);
    c = get(f, "/v2/models/" COMPOSED "/versions/1");
    assert_metadata(&c, COMPOSED, 3);
    call_free(&c);

    const char *ready[] = {"/v2/models/" MODEL "/ready", "/v2/models/" COMPOSED "/versions/1/ready"};
    for (int i = 0; i < 2; i++) {
        c = get(f, ready[i]);
        assert_int_equal(c.resp.status, 200);
        assert_true(json_is_true(json_object_get(c.root, "ready")));
        assert_string_equal(json_string_value(json_object_get(c.root, "name")), i ? COMPOSED : MODEL);
        call_free(&c);
    }

    /* Errors, all in the v2 shape. */
    c = get(f, "/v2/models/" MODEL "/versions/2");
    assert_v2_error(&c, 404, "unknown_model");
    call_free(&c);
    c = get(f, "/v2/models/" MODEL "/versions/2/ready");
    assert_v2_error(&c, 404, "unknown_model");
    call_free(&c);
    c = get(f, "/v2/models/no-such-model");
    assert_v2_error(&c, 404, "unknown_model");
    assert_string_equal(c.resp.model, "");
    call_free(&c);
    c = get(f, "/v2/models/no-such-model/ready");
    assert_v2_error(&c, 404, "unknown_model");
    call_free(&c);
    c = get(f, "/v2/models/fmnist-lenet5~0-3-99~0.9");
    assert_int_equal(c.resp.status / 100, 4);
    assert_true(json_is_string(json_object_get(c.root, "error")));
    call_free(&c);
    const char *bad_paths[] = {"/v2/models/" MODEL "/status", "/v2/models/" MODEL "/versions",
                               "/v2/models/" MODEL "/versions/1/infer/x", "/v2/models/" MODEL "/", "/v2/models/",
                               "/v2/models//ready"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        c = get(f, bad_paths[i]);
        assert_v2_error(&c, 404, "not_found");
        call_free(&c);
    }
    c = request(f, "POST", "/v2/models/" MODEL, "{}", 2, NULL);
    assert_v2_error(&c, 405, "method_not_allowed");
    assert_string_equal(c.resp.headers[0].key, "Allow");
    assert_string_equal(c.resp.headers[0].value, "GET, HEAD");
    call_free(&c);
    c = get(f, "/v2/models/" MODEL "/infer");
    assert_v2_error(&c, 405, "method_not_allowed");
    assert_string_equal(c.resp.headers[0].value, "POST");
    assert_true(c.resp.is_inference);
    call_free(&c);
}

static json_t *output_of(const call *c, const char *name) { return output_named(c->root, name); }

/* Values of output name of c (n x k floats), from its JSON data or its
 * binary data. */
static void output_values(const call *c, const char *name, float *dst, size_t count) {
    json_t *o = output_of(c, name);
    assert_non_null(o);
    json_t *data = json_object_get(o, "data");
    if (data) {
        assert_int_equal(json_array_size(data), count);
        for (size_t i = 0; i < count; i++) dst[i] = (float)json_number_value(json_array_get(data, i));
        return;
    }
    /* Binary: after the JSON, in output order. */
    size_t at = c->json_len;
    json_t *outs = json_object_get(c->root, "outputs"), *t;
    size_t i;
    json_array_foreach(outs, i, t) {
        json_int_t size = json_integer_value(json_object_get(json_object_get(t, "parameters"), "binary_data_size"));
        if (t == o) {
            assert_int_equal(size, count * 4);
            assert_true(at + (size_t)size <= c->resp.body_len);
            memcpy(dst, c->resp.body + at, (size_t)size);
            return;
        }
        at += (size_t)size;
    }
    fail_msg("output %s has no data", name);
}

static void assert_infer_matches(const call *c, const char *name, const float *logits, const float *probs, int n,
                                 int k) {
    if (c->resp.status != 200) fail_msg("infer: %d %.*s", c->resp.status, (int)c->resp.body_len, c->resp.body);
    assert_true(c->resp.is_inference);
    assert_null(c->resp.error_code);
    assert_string_equal(json_string_value(json_object_get(c->root, "model_name")), name);
    assert_string_equal(json_string_value(json_object_get(c->root, "model_version")), "1");
    size_t nk = (size_t)n * k;
    float got[MAX_BATCH * 10];
    output_values(c, "probabilities", got, nk);
    assert_close(got, probs, nk, 1e-5, 0);
    output_values(c, "logits", got, nk);
    assert_close(got, logits, nk, 1e-4, 1e-5);
    json_t *ci = output_of(c, "class_index");
    int32_t idx[MAX_BATCH];
    json_t *data = json_object_get(ci, "data");
    if (data)
        for (int i = 0; i < n; i++) idx[i] = (int32_t)json_integer_value(json_array_get(data, (size_t)i));
    else
        output_values(c, "class_index", (float *)idx, (size_t)n);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < k; j++)
            if (probs[(size_t)i * k + j] > probs[(size_t)i * k + best]) best = j;
        assert_int_equal(idx[i], best);
    }
}

/* A JSON array of floats. */
static char *json_floats(const float *x, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_real(x[i]));
    char *s = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(a);
    assert_non_null(s);
    return s;
}

static void test_e2e_infer_fp32(void **state) {
    e2e *f = *state;
    enum { N = 3, K = 3, PIX = 32 * 32 };
    float x[N * PIX], logits[N * K], probs[N * K];
    rng r;
    rng_seed(&r, 11, 0);
    rng_fill_normal(&r, x, N * PIX, 0.0f, 1.0f);
    engine_run(f->composed, x, N, logits, probs);

    /* JSON, flat data, the id echoed. */
    char *data = json_floats(x, N * PIX);
    size_t cap = strlen(data) + 256;
    char *json = malloc(cap);
    snprintf(json, cap,
             "{\"id\":\"req-1\",\"inputs\":[{\"name\":\"input\",\"shape\":[%d,1,32,32],\"datatype\":\"FP32\","
             "\"data\":%s}]}",
             N, data);
    call c = request(f, "POST", "/v2/models/" COMPOSED "/infer", json, strlen(json), NULL);
    assert_infer_matches(&c, COMPOSED, logits, probs, N, K);
    assert_string_equal(json_string_value(json_object_get(c.root, "id")), "req-1");
    assert_string_equal(c.resp.content_type, "application/json");
    assert_string_equal(c.resp.model, COMPOSED);
    call_free(&c);
    free(json);
    free(data);

    /* Binary in and out, as tritonclient sends it (binary_data_output, no
     * outputs named), through the versioned path. */
    char head[256];
    snprintf(head, sizeof head,
             "{\"inputs\":[{\"name\":\"input\",\"shape\":[%d,1,32,32],\"datatype\":\"FP32\",\"parameters\":"
             "{\"binary_data_size\":%zu}}],\"parameters\":{\"binary_data_output\":true}}",
             N, sizeof x);
    body b = body_make(head, x, sizeof x);
    c = request(f, "POST", "/v2/models/" COMPOSED "/versions/1/infer", b.bytes, b.len, b.header);
    assert_infer_matches(&c, COMPOSED, logits, probs, N, K);
    assert_string_equal(c.resp.content_type, "application/octet-stream");
    assert_null(json_object_get(c.root, "id"));
    assert_null(json_object_get(output_of(&c, "logits"), "data"));
    assert_true(c.json_len < c.resp.body_len);
    call_free(&c);
    free(b.bytes);

    /* The full model by its registry name: all 10 classes. */
    float logits10[N * 10], probs10[N * 10];
    engine_run(f->model.g, x, N, logits10, probs10);
    b = body_make(head, x, sizeof x);
    c = request(f, "POST", "/v2/models/" MODEL "/infer", b.bytes, b.len, b.header);
    assert_infer_matches(&c, MODEL, logits10, probs10, N, 10);
    assert_string_equal(c.resp.model, MODEL);
    call_free(&c);
    free(b.bytes);
}

/* Raw 28x28 uint8 pixels, nested JSON and binary, against the engine on the
 * same pixels padded and normalised as in training; and v1 on the same. */
static void test_e2e_infer_uint8_raw(void **state) {
    e2e *f = *state;
    enum { N = 2, K = 3, R = 28 };
    uint8_t px[N * R * R];
    rng r;
    rng_seed(&r, 12, 0);
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(rng_uniform(&r) * 256.0f);
    float x[N * 32 * 32], logits[N * K], probs[N * K];
    engine_prepare_raw(&f->model.info, px, N, x);
    engine_run(f->composed, x, N, logits, probs);

    /* Nested [N][C][H][W]. */
    json_t *nested = json_array();
    for (int i = 0; i < N; i++) {
        json_t *chan = json_array(), *img = json_array();
        for (int y = 0; y < R; y++) {
            json_t *row = json_array();
            for (int xx = 0; xx < R; xx++) json_array_append_new(row, json_integer(px[(i * R + y) * R + xx]));
            json_array_append_new(img, row);
        }
        json_array_append_new(chan, img);
        json_array_append_new(nested, chan);
    }
    json_t *req = json_pack("{s:[{s:s,s:[i,i,i,i],s:s,s:o}],s:[{s:s},{s:s},{s:s}]}", "inputs", "name", "input",
                            "shape", N, 1, R, R, "datatype", "UINT8", "data", nested, "outputs", "name",
                            "class_index", "name", "logits", "name", "probabilities");
    char *text = json_dumps(req, JSON_COMPACT);
    call c = request(f, "POST", "/v2/models/" COMPOSED "/infer", text, strlen(text), NULL);
    assert_infer_matches(&c, COMPOSED, logits, probs, N, K);
    json_t *outs = json_object_get(c.root, "outputs"); /* in the order asked */
    assert_string_equal(json_string_value(json_object_get(json_array_get(outs, 0), "name")), "class_index");
    assert_string_equal(json_string_value(json_object_get(json_array_get(outs, 2), "name")), "probabilities");
    float v2_probs[N * K];
    output_values(&c, "probabilities", v2_probs, N * K);
    call_free(&c);
    free(text);

    /* v1 on the same pixels gives the same probabilities. */
    json_t *v1 = json_pack("{s:s,s:O,s:s}", "id", COMPOSED, "inputs", nested, "dtype", "uint8");
    text = json_dumps(v1, JSON_COMPACT);
    c = request(f, "POST", "/v1/infer", text, strlen(text), NULL);
    if (c.resp.status != 200) fail_msg("v1 infer: %.*s", (int)c.resp.body_len, c.resp.body);
    json_t *v1_outs = json_object_get(c.root, "outputs");
    assert_int_equal(json_array_size(v1_outs), N);
    for (int i = 0; i < N; i++) {
        json_t *p = json_object_get(json_array_get(v1_outs, (size_t)i), "probabilities");
        assert_int_equal(json_array_size(p), K);
        for (int j = 0; j < K; j++)
            assert_true(fabs(json_number_value(json_array_get(p, (size_t)j)) - v2_probs[i * K + j]) <= 1e-6);
    }
    call_free(&c);
    free(text);
    json_decref(v1);
    json_decref(req);

    /* Binary uint8, only probabilities, as binary. */
    char head[256];
    snprintf(head, sizeof head,
             "{\"inputs\":[{\"name\":\"input\",\"shape\":[%d,1,%d,%d],\"datatype\":\"UINT8\",\"parameters\":"
             "{\"binary_data_size\":%zu}}],\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
             "{\"binary_data\":true}}]}",
             N, R, R, sizeof px);
    body b = body_make(head, px, sizeof px);
    c = request(f, "POST", "/v2/models/" COMPOSED "/infer", b.bytes, b.len, b.header);
    assert_int_equal(c.resp.status, 200);
    assert_int_equal(json_array_size(json_object_get(c.root, "outputs")), 1);
    float got[N * K];
    output_values(&c, "probabilities", got, N * K);
    assert_close(got, probs, N * K, 1e-5, 0);
    assert_int_equal(c.resp.body_len, c.json_len + sizeof got);
    call_free(&c);
    free(b.bytes);
}

/* Requests that reach a model and fail on their tensors: the right code,
 * counted under the model, never a crash. */
static void test_e2e_infer_errors(void **state) {
    e2e *f = *state;
    typedef struct bad {
        int n, c, h, w;
        size_t bytes;  /* binary_data_size and bytes sent */
        const char *datatype;
        int nan_at;    /* -1: none */
        const char *code;
    } bad;
    const bad cases[] = {
        {1, 1, 32, 32, 4096, "FP32", 5, "invalid_input"},        /* NaN */
        {1, 1, 32, 32, 4096, "FP32", -2, "invalid_input"},       /* Inf */
        {1, 3, 32, 32, 3 * 4096, "FP32", -1, "invalid_shape"},   /* channels */
        {1, 1, 30, 30, 3600, "FP32", -1, "invalid_shape"},       /* size */
        {1, 1, 32, 32, 4000, "FP32", -1, "invalid_shape"},       /* bytes vs shape */
        {1, 1, 32, 32, 1024 * 4, "UINT8", -1, "invalid_shape"},  /* FP32 bytes sent as UINT8 */
        {MAX_BATCH + 1, 1, 1, 1, (MAX_BATCH + 1) * 4, "FP32", -1, "batch_too_large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad *b = &cases[i];
        float *vals = calloc(b->bytes / 4 + 1, sizeof(float));
        if (b->nan_at >= 0) vals[b->nan_at] = NAN;
        if (b->nan_at == -2) vals[7] = INFINITY;
        char head[256];
        snprintf(head, sizeof head,
                 "{\"inputs\":[{\"name\":\"input\",\"shape\":[%d,%d,%d,%d],\"datatype\":\"%s\",\"parameters\":"
                 "{\"binary_data_size\":%zu}}]}",
                 b->n, b->c, b->h, b->w, b->datatype, b->bytes);
        body bd = body_make(head, vals, b->bytes);
        call c = request(f, "POST", "/v2/models/" COMPOSED "/infer", bd.bytes, bd.len, bd.header);
        if (!c.resp.error_code || strcmp(c.resp.error_code, b->code))
            fail_msg("case %zu: %d %.*s, expected %s", i, c.resp.status, (int)c.resp.body_len, c.resp.body, b->code);
        assert_v2_error(&c, 400, b->code);
        assert_string_equal(c.resp.model, COMPOSED);
        assert_true(c.resp.is_inference);
        call_free(&c);
        free(bd.bytes);
        free(vals);
    }

    /* JSON: count mismatch, a value out of uint8 range, a string value,
     * ragged nesting, malformed JSON, an unknown model. */
    const struct {
        const char *path, *body, *code;
        int status;
    } json_cases[] = {
        {"/v2/models/" COMPOSED "/infer",
         "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,2,2],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
         "invalid_shape", 400},
        {"/v2/models/" COMPOSED "/infer",
         "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,1,2],\"datatype\":\"UINT8\",\"data\":[1,256]}]}",
         "invalid_input", 400},
        {"/v2/models/" COMPOSED "/infer",
         "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,1,2],\"datatype\":\"FP32\",\"data\":[1,\"2\"]}]}",
         "invalid_type", 400},
        {"/v2/models/" COMPOSED "/infer",
         "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,2,2],\"datatype\":\"FP32\",\"data\":[[[[1,2],[3]]]]}]}",
         "invalid_shape", 400},
        {"/v2/models/" COMPOSED "/infer", "{\"inputs\":[{\"name\":", "invalid_json", 400},
        {"/v2/models/nope/infer", "{}", "unknown_model", 404},
    };
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
        call c = request(f, "POST", json_cases[i].path, json_cases[i].body, strlen(json_cases[i].body), NULL);
        assert_v2_error(&c, json_cases[i].status, json_cases[i].code);
        call_free(&c);
    }
    /* A compressed body is refused, not misread. */
    char enc_k[] = "Content-Encoding", enc_v[] = "gzip";
    api_kv enc = {enc_k, enc_v};
    api_request gz = {.method = "POST", .path = "/v2/models/" COMPOSED "/infer", .headers = &enc, .n_headers = 1,
                      .body = "\x1f\x8b", .body_len = 2};
    api_response resp;
    api_handle(f->a, 0, &gz, &resp);
    assert_int_equal(resp.status, 415);
    assert_string_equal(resp.error_code, "unsupported_media_type");
    api_response_free(&resp);
    /* A header length beyond the body. */
    call c = request(f, "POST", "/v2/models/" COMPOSED "/infer", "{}", 2, "3");
    assert_v2_error(&c, 400, "bad_request");
    call_free(&c);
    /* Still serving afterwards. */
    c = get(f, "/v2/models/" COMPOSED "/ready");
    assert_int_equal(c.resp.status, 200);
    call_free(&c);
    assert_true(metrics_get(f->m, METRIC_INFERENCE_COUNT, COMPOSED, NULL) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_json_flat),
        cmocka_unit_test(test_parse_json_nested_uint8),
        cmocka_unit_test(test_parse_binary_framing),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_truncations),
        cmocka_unit_test(test_encode_json),
        cmocka_unit_test(test_encode_binary),
        cmocka_unit_test(test_encode_errors),
    };
    const struct CMUnitTest e2e_tests[] = {
        cmocka_unit_test(test_e2e_metadata_ready),
        cmocka_unit_test(test_e2e_infer_fp32),
        cmocka_unit_test(test_e2e_infer_uint8_raw),
        cmocka_unit_test(test_e2e_infer_errors),
    };
    int failed = cmocka_run_group_tests_name("v2 wire", tests, NULL, NULL);
    return failed + cmocka_run_group_tests_name("v2 end to end", e2e_tests, e2e_setup, e2e_teardown);
}
