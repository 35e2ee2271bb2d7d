/* The API layer called directly (no HTTP) on the bundled registry: v1
 * compose and infer in every input form against the engine's own output
 * for the same composed model, tau 0 over all classes against the full
 * model, top_k, the models routes, health, and every error with its status
 * and code; PNG and JPEG bodies against the same pixels sent raw. */
#include "image_util.h"

#include <float.h>
#include <jansson.h>
#include <zlib.h>

#include "api.h"
#include "api_internal.h"
#include "composed_reference.h"
#include "entry.h"
#include "metrics.h"
#include "synthetic_idx.h"

#define MODEL "fmnist-lenet5"
#define K 10
#define SIZE 32
#define RAW 28
#define PAD 2
#define WORKERS 2
#define MAX_BATCH 160 /* above the 64-sample chunk, so a request can span several */

static api *a;
static metrics *mx;
static registry *reg;
static registry_model parent; /* the same model, loaded for references */
static moda_backend *be;

/* ---- fixture -------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    char err[512] = "";
    mx = metrics_new();
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 64u << 20, .workers = WORKERS,
                      .intra_threads = 1, .max_classes = 0, .max_batch = MAX_BATCH, .default_tau = 0.9f,
                      .metrics = mx};
    if (api_new(&cfg, &a, err, sizeof err)) {
        fprintf(stderr, "api_new: %s\n", err);
        return -1;
    }
    return reference_open(MODEL, &reg, &be, &parent);
}

static int teardown(void **state) {
    (void)state;
    api_free(a);
    reference_close(reg, be, &parent);
    metrics_free(mx);
    return 0;
}

/* ---- requests ------------------------------------------------------------- */

typedef struct call {
    const char *method, *path, *ctype;
    const void *body;
    size_t len; /* 0: strlen(body) */
    api_kv query[8];
    int n_query;
    api_kv headers[4];
    int n_headers;
} call;

static json_t *run(const call *c, api_response *r) {
    api_kv hdr[5];
    int nh = 0;
    if (c->ctype) hdr[nh++] = (api_kv){"Content-Type", (char *)c->ctype};
    for (int i = 0; i < c->n_headers; i++) hdr[nh++] = c->headers[i];
    api_request req = {.method = c->method, .path = c->path, .query = c->query, .n_query = c->n_query,
                       .headers = hdr, .n_headers = nh, .body = c->body,
                       .body_len = c->len ? c->len : (c->body ? strlen(c->body) : 0)};
    api_handle(a, 0, &req, r);
    assert_true(r->status >= 200 && r->status < 600);
    assert_non_null(r->body);
    json_error_t je;
    json_t *root = json_loadb(r->body, r->body_len, 0, &je);
    if (!root) fail_msg("response is not JSON: %.*s", (int)r->body_len, r->body);
    return root;
}

static json_t *post_json(const char *path, const char *body, api_response *r) {
    call c = {.method = "POST", .path = path, .ctype = "application/json", .body = body};
    return run(&c, r);
}

/* An error response: status, code in body and in error_code, a message. */
static void expect_error(const call *c, int status, const char *code) {
    api_response r;
    json_t *root = run(c, &r);
    if (r.status != status || !r.error_code || strcmp(r.error_code, code))
        fail_msg("%s %s %.60s: got %d %s (%.*s), want %d %s", c->method, c->path, c->body ? (const char *)c->body : "",
                 r.status, r.error_code ? r.error_code : "-", (int)r.body_len, r.body, status, code);
    const char *got = NULL, *msg = NULL;
    assert_int_equal(json_unpack(root, "{s:{s:s,s:s}}", "error", "code", &got, "message", &msg), 0);
    assert_string_equal(got, code);
    assert_true(strlen(msg) > 0);
    json_decref(root);
    api_response_free(&r);
}

static void expect_json_error(const char *path, const char *body, int status, const char *code) {
    call c = {.method = "POST", .path = path, .ctype = "application/json", .body = body};
    expect_error(&c, status, code);
}

/* ---- references ----------------------------------------------------------- */

/* Probabilities of the model composed from classes at tau (n_cls = 0: the
 * parent itself) for x (n, 1, 32, 32), by the engine directly. */
static float *reference_probs(const int *classes, int n_cls, float tau, const float *x, int n, float *logits_out) {
    return reference_probs_of(&parent, be, classes, n_cls, tau, x, n, logits_out);
}

/* Inputs in the normalised space: what the network consumes. */
static float *random_inputs(int n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 11);
    return tu_randn(&r, (size_t)n * SIZE * SIZE, 1.0f);
}

/* The outputs of an infer response against reference probabilities. */
static void check_outputs(const json_t *root, const char *id, const int *classes, int k, const float *want, int n) {
    assert_string_equal(json_string_value(json_object_get(root, "id")), id);
    const json_t *names = json_object_get(root, "classes"), *outs = json_object_get(root, "outputs");
    assert_int_equal(json_array_size(names), k);
    assert_int_equal(json_array_size(outs), n);
    assert_true(json_is_number(json_object_get(root, "compute_ms")));
    for (int j = 0; j < k; j++)
        assert_string_equal(json_string_value(json_array_get(names, j)), parent.info.class_names[classes[j]]);
    for (int i = 0; i < n; i++) {
        const json_t *o = json_array_get(outs, i), *p = json_object_get(o, "probabilities");
        assert_int_equal(json_array_size(p), k);
        int best = 0;
        for (int j = 0; j < k; j++) {
            double got = json_number_value(json_array_get(p, j));
            if (fabs(got - want[i * k + j]) > 1e-5)
                fail_msg("sample %d class %d: probability %.8g, engine %.8g", i, j, got, want[i * k + j]);
            if (want[i * k + j] > want[i * k + best]) best = j;
        }
        assert_int_equal(json_integer_value(json_object_get(o, "index")), best);
        assert_int_equal(json_integer_value(json_object_get(o, "parent_index")), classes[best]);
        assert_string_equal(json_string_value(json_object_get(o, "class")), parent.info.class_names[classes[best]]);
    }
}

/* JSON text of n samples, nested [N][1][32][32] or flat. */
static char *inputs_json(const float *x, int n, bool nested) {
    json_t *all = json_array();
    for (int i = 0; i < n; i++) {
        json_t *ch = json_array();
        for (int y = 0; y < SIZE; y++) {
            json_t *row = json_array();
            for (int xx = 0; xx < SIZE; xx++) json_array_append_new(row, json_real(x[(i * SIZE + y) * SIZE + xx]));
            if (nested) json_array_append_new(ch, row);
            else json_array_extend(all, row), json_decref(row);
        }
        if (nested) json_array_append_new(all, json_pack("[o]", ch));
        else json_decref(ch);
    }
    char *text = json_dumps(all, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(all);
    return text;
}

/* ---- compose and infer round trips --------------------------------------- */

static const int CLS[3] = {0, 3, 7};
#define CLS_ID MODEL "~0-3-7~0.9"

static void test_compose_response(void **state) {
    (void)state;
    api_response r;
    /* Names and indices mixed; output order as given. */
    json_t *root = post_json("/v1/compose", "{\"model\":\"" MODEL "\",\"classes\":[\"T-shirt/top\",3,\"Sneaker\"]}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.model, CLS_ID);
    assert_null(r.error_code);
    assert_string_equal(json_string_value(json_object_get(root, "id")), CLS_ID);
    assert_string_equal(json_string_value(json_object_get(root, "model")), MODEL);
    assert_true(fabs(json_number_value(json_object_get(root, "threshold")) - 0.9) < 1e-12);
    json_t *cls = json_object_get(root, "classes");
    assert_int_equal(json_array_size(cls), 3);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(cls, j), "index")), CLS[j]);
        assert_string_equal(json_string_value(json_object_get(json_array_get(cls, j), "name")),
                            parent.info.class_names[CLS[j]]);
    }
    compose_plan p = {0};
    assert_int_equal(compose_plan_make(parent.g, &parent.r, CLS, 3, 0.9f, &p), MODA_OK);
    size_t params = compose_plan_params(parent.g, &p);
    double macs = compose_plan_macs(parent.g, &p);
    assert_int_equal(json_integer_value(json_object_get(root, "params")), params);
    assert_true(fabs(json_number_value(json_object_get(root, "size_ratio")) -
                     (double)params / (double)graph_param_count(parent.g)) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(root, "flops_ratio")) - macs / graph_macs(parent.g)) < 1e-9);
    assert_true(json_number_value(json_object_get(root, "size_ratio")) < 1.0);
    compose_plan_free(&p);
    json_decref(root);
    api_response_free(&r);

    /* Again: from the cache. */
    root = post_json("/v1/compose", "{\"model\":\"" MODEL "\",\"classes\":[0,3,7],\"threshold\":0.9}", &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(root, "cached")));
    assert_true(json_number_value(json_object_get(root, "compose_ms")) == 0.0);
    json_decref(root);
    api_response_free(&r);
}

static void test_infer_json_nested(void **state) {
    (void)state;
    const int n = 3;
    float *x = random_inputs(n, 1);
    float *want = reference_probs(CLS, 3, 0.9f, x, n, NULL);
    char *in = inputs_json(x, n, true);
    size_t len = strlen(in) + 64;
    char *body = malloc(len);
    snprintf(body, len, "{\"id\":\"%s\",\"inputs\":%s}", CLS_ID, in);
    api_response r;
    json_t *root = post_json("/v1/infer", body, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.is_inference);
    assert_string_equal(r.model, CLS_ID);
    check_outputs(root, CLS_ID, CLS, 3, want, n);
    json_decref(root);
    api_response_free(&r);

    /* One sample as [C][H][W], composed on the fly from model + classes. */
    free(in);
    in = inputs_json(x, 1, true);
    json_t *all = json_loads(in, 0, NULL);
    free(in);
    char *one = json_dumps(json_array_get(all, 0), JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(all);
    free(body);
    len = strlen(one) + 128;
    body = malloc(len);
    snprintf(body, len, "{\"model\":\"%s\",\"classes\":[0,\"Dress\",7],\"threshold\":0.9,\"inputs\":%s}", MODEL, one);
    root = post_json("/v1/infer", body, &r);
    assert_int_equal(r.status, 200);
    check_outputs(root, CLS_ID, CLS, 3, want, 1);
    json_decref(root);
    api_response_free(&r);
    free(one);
    free(body);
    free(want);
    free(x);
}

static void test_infer_json_flat(void **state) {
    (void)state;
    const int n = 2;
    float *x = random_inputs(n, 2);
    float *want = reference_probs(CLS, 3, 0.9f, x, n, NULL);
    char *in = inputs_json(x, n, false);
    size_t len = strlen(in) + 96;
    char *body = malloc(len);
    snprintf(body, len, "{\"id\":\"%s\",\"shape\":[%d,1,%d,%d],\"dtype\":\"float32\",\"inputs\":%s}", CLS_ID, n, SIZE,
             SIZE, in);
    api_response r;
    json_t *root = post_json("/v1/infer", body, &r);
    assert_int_equal(r.status, 200);
    check_outputs(root, CLS_ID, CLS, 3, want, n);
    json_decref(root);
    api_response_free(&r);
    free(in);
    free(body);
    free(want);
    free(x);
}

/* Batches of 1, 5 and 130 on one entry: its inference handle is planned
 * for the first batch, re-planned for larger ones, and runs 130 samples in
 * chunks of at most 64. */
static void test_infer_binary_float32(void **state) {
    (void)state;
    const int sizes[] = {1, 5, 130};
    for (int t = 0; t < 3; t++) {
        const int n = sizes[t];
        float *x = random_inputs(n, 3 + t);
        float *want = reference_probs(CLS, 3, 0.9f, x, n, NULL);
        char shape[32];
        snprintf(shape, sizeof shape, "%d,1,32,32", n);
        call c = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = x,
                  .len = (size_t)n * SIZE * SIZE * sizeof(float),
                  .query = {{"model", MODEL}, {"classes", "T-shirt/top, 3,Sneaker"}, {"shape", shape}},
                  .n_query = 3};
        api_response r;
        json_t *root = run(&c, &r);
        assert_int_equal(r.status, 200);
        check_outputs(root, CLS_ID, CLS, 3, want, n);
        json_decref(root);
        api_response_free(&r);
        free(want);
        free(x);
    }
}

/* Raw uint8 28x28 images: normalised with the stored mean/std and padded
 * with raw black, as training prepared its images. */
static void test_infer_binary_uint8_padded(void **state) {
    (void)state;
    const int n = 4;
    uint8_t *px = malloc((size_t)n * RAW * RAW);
    rng rg;
    rng_seed(&rg, 4, 1);
    for (int i = 0; i < n * RAW * RAW; i++) px[i] = (uint8_t)rng_below(&rg, 256);
    px[0] = 0;
    px[1] = 255;
    float m = parent.info.mean[0], s = parent.info.std[0];
    float *x = tu_alloc((size_t)n * SIZE * SIZE);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < SIZE; y++)
            for (int xx = 0; xx < SIZE; xx++) {
                bool inside = y >= PAD && y < PAD + RAW && xx >= PAD && xx < PAD + RAW;
                float raw = inside ? px[(i * RAW + y - PAD) * RAW + xx - PAD] / 255.0f : 0.0f;
                x[(i * SIZE + y) * SIZE + xx] = (raw - m) / s;
            }
    float *want = reference_probs(CLS, 3, 0.9f, x, n, NULL);
    call c = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = px,
              .len = (size_t)n * RAW * RAW, .query = {{"id", CLS_ID}}, .n_query = 1,
              .headers = {{"X-Moda-Shape", "4,1,28,28"}, {"X-Moda-Dtype", "uint8"}}, .n_headers = 2};
    api_response r;
    json_t *root = run(&c, &r);
    assert_int_equal(r.status, 200);
    check_outputs(root, CLS_ID, CLS, 3, want, n);
    json_decref(root);
    api_response_free(&r);

    /* The same pixels as a JSON uint8 array give the same answer. */
    json_t *flat = json_array();
    for (int i = 0; i < n * RAW * RAW; i++) json_array_append_new(flat, json_integer(px[i]));
    char *in = json_dumps(flat, JSON_COMPACT);
    json_decref(flat);
    size_t len = strlen(in) + 128;
    char *body = malloc(len);
    snprintf(body, len, "{\"id\":\"%s\",\"dtype\":\"uint8\",\"shape\":[%d,1,28,28],\"inputs\":%s}", CLS_ID, n, in);
    root = post_json("/v1/infer", body, &r);
    assert_int_equal(r.status, 200);
    check_outputs(root, CLS_ID, CLS, 3, want, n);
    json_decref(root);
    api_response_free(&r);
    free(in);
    free(body);
    free(want);
    free(x);
    free(px);
}

/* ---- image bodies --------------------------------------------------------- */

/* POST /v1/infer with body b of type ctype and the query; the response. */
static json_t *post_body(const char *ctype, const void *body, size_t len, const api_kv *query, int nq,
                         api_response *r) {
    call c = {.method = "POST", .path = "/v1/infer", .ctype = ctype, .body = body, .len = len, .n_query = nq};
    if (nq) memcpy(c.query, query, (size_t)nq * sizeof *query);
    json_t *root = run(&c, r);
    if (r->status != 200) fail_msg("%s body: %d %.*s", ctype, r->status, (int)r->body_len, r->body);
    return root;
}

/* The outputs of 28x28 uint8 pixels sent raw (the reference for images). */
static json_t *raw_outputs(const uint8_t *px, const api_kv *query, int nq) {
    api_kv q[8];
    memcpy(q, query, (size_t)nq * sizeof *q);
    q[nq] = (api_kv){"dtype", "uint8"};
    q[nq + 1] = (api_kv){"shape", "1,1,28,28"};
    api_response r;
    json_t *root = post_body("application/octet-stream", px, RAW * RAW, q, nq + 2, &r);
    json_t *outs = json_incref(json_object_get(root, "outputs"));
    json_decref(root);
    api_response_free(&r);
    return outs;
}

static void expect_same_outputs(const char *ctype, const tu_buf *b, const api_kv *query, int nq, const json_t *want) {
    api_response r;
    json_t *root = post_body(ctype, b->data, b->len, query, nq, &r);
    if (!json_equal(json_object_get(root, "outputs"), (json_t *)want)) {
        char *got = json_dumps(json_object_get(root, "outputs"), JSON_COMPACT), *exp = json_dumps(want, JSON_COMPACT);
        fail_msg("%s body: %s, raw pixels: %s", ctype, got, exp);
    }
    json_decref(root);
    api_response_free(&r);
}

/* A lossless image of the model's raw size is the raw pixels exactly: a
 * gray PNG, an RGB PNG of gray pixels (luma of r = g = b is the value), a
 * wider PNG whose centre 28 columns they are (cropped), an 8-bit gray PNG
 * with an opaque alpha channel. */
static void test_infer_png_equals_raw_pixels(void **state) {
    (void)state;
    uint8_t px[RAW * RAW];
    rng rg;
    rng_seed(&rg, 21, 1);
    for (int i = 0; i < RAW * RAW; i++) px[i] = (uint8_t)rng_below(&rg, 256);
    const api_kv by_id[1] = {{"id", CLS_ID}};
    const api_kv by_model[3] = {{"model", MODEL}, {"classes", "0,3,7"}, {"top_k", "2"}};
    json_t *want = raw_outputs(px, by_id, 1), *want_top = raw_outputs(px, by_model, 3);

    tu_buf gray = tu_png8(px, RAW, RAW, 1);
    expect_same_outputs("image/png", &gray, by_id, 1, want);
    expect_same_outputs("image/png", &gray, by_model, 3, want_top);

    uint8_t rgb[RAW * RAW * 3], ga[RAW * RAW * 2], wide[RAW * 40];
    for (int i = 0; i < RAW * RAW; i++) {
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = px[i];
        ga[2 * i] = px[i];
        ga[2 * i + 1] = 255;
    }
    for (int y = 0; y < RAW; y++)
        for (int x = 0; x < 40; x++) wide[y * 40 + x] = x >= 6 && x < 34 ? px[y * RAW + x - 6] : 255;
    tu_buf colour = tu_png8(rgb, RAW, RAW, 3), alpha = tu_png8(ga, RAW, RAW, 2), crop = tu_png8(wide, 40, RAW, 1);
    expect_same_outputs("image/png", &colour, by_id, 1, want);
    expect_same_outputs("IMAGE/PNG; x=1", &alpha, by_id, 1, want);
    expect_same_outputs("image/png", &crop, by_id, 1, want);
    free(gray.data);
    free(colour.data);
    free(alpha.data);
    free(crop.data);
    json_decref(want);
    json_decref(want_top);
}

/* The example ankle boot as a JPEG: the same top class as its raw pixels. */
static void test_infer_jpeg_top_class(void **state) {
    (void)state;
    uint8_t px[RAW * RAW];
    FILE *f = fopen(MODA_MODELS_DIR "/../examples/ankle-boot.u8", "rb");
    assert_non_null(f);
    assert_int_equal(fread(px, 1, sizeof px, f), sizeof px);
    fclose(f);
    const api_kv q[2] = {{"model", MODEL}, {"classes", "Sneaker,Bag,Ankle boot"}};
    json_t *want = raw_outputs(px, q, 2);
    tu_buf jpg = tu_jpeg(px, RAW, RAW, 1, 90);
    api_response r;
    json_t *root = post_body("image/jpeg", jpg.data, jpg.len, q, 2, &r);
    const json_t *got = json_array_get(json_object_get(root, "outputs"), 0);
    assert_string_equal(json_string_value(json_object_get(got, "class")), "Ankle boot");
    assert_string_equal(json_string_value(json_object_get(got, "class")),
                        json_string_value(json_object_get(json_array_get(want, 0), "class")));
    json_decref(root);
    api_response_free(&r);
    json_decref(want);
    free(jpg.data);
}

static void expect_image_error(const char *ctype, const void *body, size_t len, const api_kv *query, int nq,
                               int status, const char *code, const char *needle) {
    call c = {.method = "POST", .path = "/v1/infer", .ctype = ctype, .body = body, .len = len, .n_query = nq};
    if (nq) memcpy(c.query, query, (size_t)nq * sizeof *query);
    expect_error(&c, status, code);
    api_response r;
    json_t *root = run(&c, &r);
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    if (needle && !strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    json_decref(root);
    api_response_free(&r);
}

static void test_infer_image_errors(void **state) {
    (void)state;
    const api_kv by_id[1] = {{"id", CLS_ID}};
    uint8_t px[RAW * RAW] = {0};
    tu_buf png = tu_png8(px, RAW, RAW, 1);
    expect_image_error("image/png", "GIF89a", 6, by_id, 1, 400, "invalid_image", "not a PNG or JPEG");
    expect_image_error("image/jpeg", png.data, png.len / 2, by_id, 1, 400, "invalid_image", "PNG: ");
    /* The header claims 100000 x 100000: refused from it, 413. */
    tu_buf bomb = tu_png8(px, 2, 2, 1);
    const uint8_t side[4] = {0, 1, 0x86, 0xa0}; /* 100000, big-endian */
    memcpy(bomb.data + 16, side, 4);
    memcpy(bomb.data + 20, side, 4);
    const uint32_t crc = (uint32_t)crc32(0, bomb.data + 12, 17);
    const uint8_t crc_be[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    memcpy(bomb.data + 29, crc_be, 4);
    expect_image_error("image/png", bomb.data, bomb.len, by_id, 1, 413, "image_too_large", "100000x100000");
    /* An image carries its own shape and dtype. */
    const api_kv shaped[2] = {{"id", CLS_ID}, {"shape", "1,1,28,28"}};
    expect_image_error("image/png", png.data, png.len, shaped, 2, 422, "invalid_combination", NULL);
    const api_kv unknown[1] = {{"model", "no-such-model"}};
    expect_image_error("image/png", png.data, png.len, unknown, 1, 404, "unknown_model", NULL);
    expect_image_error("image/png", png.data, png.len, NULL, 0, 400, "bad_request", NULL);
    expect_image_error("image/gif", png.data, png.len, by_id, 1, 415, "unsupported_media_type", "image/png");
    free(png.data);
    free(bomb.data);
}

/* Every unit passes tau 0, so composing all classes keeps the whole
 * network: its logits are the full model's, bit for bit. */
static void test_tau0_all_classes_is_full_model(void **state) {
    (void)state;
    const int n = 6;
    float *x = random_inputs(n, 5);
    float want[n * K], got[n * K], got_full[n * K];
    free(reference_probs(NULL, 0, 0, x, n, want));
    api_entry *e = NULL, *full = NULL;
    api_error err = {0};
    assert_int_equal(api_entry_resolve(a, 0, MODEL "~0-1-2-3-4-5-6-7-8-9~0", &e, &err), 0);
    assert_int_equal(api_entry_resolve(a, 0, MODEL, &full, &err), 0);
    assert_true(api_entry_info_of(e)->composed);
    assert_false(api_entry_info_of(full)->composed);
    assert_int_equal(api_entry_info_of(e)->params, graph_param_count(parent.g));
    assert_int_equal(api_infer_run(a, 0, e, x, n, got, NULL, api_metrics(a), &err), 0);
    assert_int_equal(api_infer_run(a, 0, full, x, n, got_full, NULL, api_metrics(a), &err), 0);
    assert_memory_equal(got, got_full, sizeof got);
    assert_close(got, want, (size_t)n * K, 1e-5, 1e-5);
    api_entry_release(a, e);
    api_entry_release(a, full);

    /* And over HTTP-shaped requests: the full model by name. */
    float *probs = reference_probs(NULL, 0, 0, x, 1, NULL);
    call c = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = x,
              .len = SIZE * SIZE * sizeof(float), .query = {{"model", MODEL}, {"shape", "1,32,32"}}, .n_query = 2};
    api_response r;
    json_t *root = run(&c, &r);
    assert_int_equal(r.status, 200);
    int all[K];
    for (int j = 0; j < K; j++) all[j] = j;
    check_outputs(root, MODEL, all, K, probs, 1);
    json_decref(root);
    api_response_free(&r);
    free(probs);
    free(x);
}

static void test_top_k(void **state) {
    (void)state;
    float *x = random_inputs(1, 6);
    float *want = reference_probs(NULL, 0, 0, x, 1, NULL);
    call c = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = x,
              .len = SIZE * SIZE * sizeof(float), .query = {{"id", MODEL}, {"shape", "1,1,32,32"}, {"top_k", "3"}},
              .n_query = 3};
    api_response r;
    json_t *root = run(&c, &r);
    assert_int_equal(r.status, 200);
    json_t *o = json_array_get(json_object_get(root, "outputs"), 0), *top = json_object_get(o, "top_k");
    assert_null(json_object_get(o, "probabilities"));
    assert_int_equal(json_array_size(top), 3);
    double prev = 2;
    for (int t = 0; t < 3; t++) {
        json_t *it = json_array_get(top, t);
        int idx = (int)json_integer_value(json_object_get(it, "index"));
        double p = json_number_value(json_object_get(it, "probability"));
        assert_true(p <= prev);
        prev = p;
        assert_true(fabs(p - want[idx]) < 1e-5);
        assert_string_equal(json_string_value(json_object_get(it, "class")), parent.info.class_names[idx]);
        int above = 0; /* exactly t classes are more likely */
        for (int j = 0; j < K; j++) above += want[j] > want[idx];
        assert_int_equal(above, t);
    }
    json_decref(root);
    api_response_free(&r);
    free(want);
    free(x);
}

/* ---- models, health, routing ---------------------------------------------- */

static void test_models_routes(void **state) {
    (void)state;
    api_response r;
    call c = {.method = "GET", .path = "/v1/models"};
    json_t *root = run(&c, &r);
    assert_int_equal(r.status, 200);
    json_t *m = json_array_get(json_object_get(root, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), MODEL);
    assert_string_equal(json_string_value(json_object_get(m, "arch")), "lenet5");
    assert_int_equal(json_integer_value(json_object_get(m, "num_classes")), K);
    assert_int_equal(json_array_size(json_object_get(m, "classes")), K);
    assert_true(json_is_false(json_object_get(m, "composed")));
    assert_true(fabs(json_number_value(json_object_get(m, "test_accuracy")) - parent.test_acc) < 1e-8);
    assert_true(fabs(json_number_value(json_object_get(m, "mean_module_size")) - parent.stats.mean_size) < 1e-8);
    assert_true(fabs(json_number_value(json_object_get(m, "tau")) - 0.9) < 1e-12);
    json_decref(root);
    api_response_free(&r);

    c.path = "/v1/models/" MODEL;
    root = run(&c, &r);
    assert_int_equal(r.status, 200);
    json_t *in = json_object_get(root, "input");
    assert_int_equal(json_integer_value(json_object_get(in, "channels")), 1);
    assert_int_equal(json_integer_value(json_object_get(in, "height")), SIZE);
    assert_int_equal(json_integer_value(json_object_get(in, "pad")), PAD);
    assert_true(fabs(json_number_value(json_array_get(json_object_get(in, "mean"), 0)) - parent.info.mean[0]) < 1e-7);
    assert_int_equal(json_integer_value(json_object_get(root, "params")), graph_param_count(parent.g));
    json_t *c7 = json_array_get(json_object_get(root, "classes"), 7);
    assert_string_equal(json_string_value(json_object_get(c7, "name")), "Sneaker");
    assert_true(fabs(json_number_value(json_object_get(c7, "module_size")) - parent.stats.size[7]) < 1e-8);
    assert_null(json_object_get(root, "origin"));
    json_decref(root);
    api_response_free(&r);

    c.path = "/v2";
    root = run(&c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(root, "name")), "moda-server");
    assert_string_equal(json_string_value(json_array_get(json_object_get(root, "extensions"), 0)), "binary_tensor_data");
    json_decref(root);
    api_response_free(&r);
}

/* Light requests: small inference bodies on a registry of small models. */
static void test_light_requests(void **state) {
    (void)state;
    static char body[API_LIGHT_BODY + 1];
    api_request req = {.method = "POST", .path = "/v1/infer", .body = body, .body_len = 4096};
    assert_true(api_request_is_light(a, &req)); /* a 1x32x32 float32 sample: about 5 LeNet5 passes at most */
    req.body_len = 0;
    assert_true(api_request_is_light(a, &req));
    api_kv octet = {"Content-Type", "application/octet-stream"}, json = {"Content-Type", "application/json"};
    req.headers = &octet;
    req.n_headers = 1;
    req.body_len = 19 * 784 + 1; /* 20 raw samples could be in it: 8.4 M multiply-adds */
    assert_false(api_request_is_light(a, &req));
    req.body_len = 19 * 784;
    assert_true(api_request_is_light(a, &req));
    /* JSON takes two bytes a value at least: the same length holds half. */
    req.headers = &json;
    req.body_len = 2 * 19 * 784 + 1;
    assert_false(api_request_is_light(a, &req));
    req.body_len = 20459; /* one 32x32 image of 17-digit floats: 14 samples at most */
    assert_true(api_request_is_light(a, &req));
    req.n_headers = 0; /* no Content-Type: JSON */
    assert_true(api_request_is_light(a, &req));
    req.body_len = API_LIGHT_BODY + 1;
    assert_false(api_request_is_light(a, &req));
    /* v2: JSON, unless the binary extension carries raw bytes. */
    req.path = "/v2/models/" MODEL "/infer";
    req.body_len = 20459;
    assert_true(api_request_is_light(a, &req));
    api_kv bin = {"Inference-Header-Content-Length", "100"};
    req.headers = &bin;
    req.n_headers = 1;
    assert_false(api_request_is_light(a, &req));
    req.n_headers = 0;
    req.body_len = 784;
    req.path = "/v2/models/" MODEL "~1-2~0.9/infer";
    assert_true(api_request_is_light(a, &req));
    req.path = "/v2/models/" MODEL "/versions/1/infer";
    assert_true(api_request_is_light(a, &req));
    req.path = "/v1/compose"; /* not inference */
    assert_false(api_request_is_light(a, &req));
    req.path = "/v2/models/x/ready";
    assert_false(api_request_is_light(a, &req));
    req.path = "/v1/infer";
    api_kv png = {"Content-Type", "image/png"};
    req.headers = &png;
    req.n_headers = 1;
    assert_false(api_request_is_light(a, &req)); /* 784 bytes of PNG may be millions of pixels */
    req.n_headers = 0;
    req.method = "GET";
    assert_false(api_request_is_light(a, &req));
    assert_false(api_request_is_light(NULL, &req));
}

/* The value of response header key (as the API spells it), or NULL. */
static const char *header_of(const api_response *r, const char *key) {
    for (int i = 0; i < r->n_headers; i++)
        if (!strcmp(r->headers[i].key, key)) return r->headers[i].value;
    return NULL;
}

static bool body_contains(const api_response *r, const char *text) {
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= r->body_len; i++)
        if (!memcmp(r->body + i, text, n)) return true;
    return false;
}

/* The module explorer: the page at / and /ui/, its files at /ui/<name>,
 * revalidation by ETag, and JSON errors for anything else under /ui/. */
static void test_ui_routes(void **state) {
    (void)state;
    api_response page, r;
    api_request req = {.method = "GET", .path = "/"};
    api_handle(a, 0, &req, &page);
    assert_int_equal(page.status, 200);
    assert_string_equal(page.content_type, "text/html; charset=utf-8");
    assert_non_null(page.body);
    assert_true(page.body_len > 1000);
    assert_memory_equal(page.body, "<!DOCTYPE html>", 15);
    assert_true(body_contains(&page, "src=\"/ui/explorer.js\""));
    assert_string_equal(header_of(&page, "Cache-Control"), "no-cache");
    const char *etag = header_of(&page, "ETag");
    assert_non_null(etag);
    assert_int_equal(strlen(etag), 18); /* 16 hex digits, quoted */
    assert_non_null(strstr(header_of(&page, "Content-Security-Policy"), "default-src 'none'"));

    const char *same_page[] = {"/ui/", "/ui/index.html"};
    for (size_t i = 0; i < 2; i++) {
        req.path = same_page[i];
        api_handle(a, 0, &req, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, page.body_len);
        assert_memory_equal(r.body, page.body, page.body_len);
        api_response_free(&r);
    }
    /* HEAD is answered as GET (the HTTP layer drops the body). */
    req.method = "HEAD";
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    req.method = "GET";

    const struct {
        const char *path, *type, *start;
    } files[] = {
        {"/ui/explorer.js", "text/javascript; charset=utf-8", "//"},
        {"/ui/explorer.css", "text/css; charset=utf-8", "/*"},
        {"/ui/ankle-boot.png", "image/png", "\x89PNG"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        req.path = files[i].path;
        api_handle(a, 0, &req, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, files[i].type);
        assert_memory_equal(r.body, files[i].start, strlen(files[i].start));
        assert_null(header_of(&r, "Content-Security-Policy"));
        assert_string_not_equal(header_of(&r, "ETag"), etag);
        api_response_free(&r);
    }
    /* The bundled ankle boot is examples/ankle-boot.png, byte for byte. */
    unsigned char png[4096];
    FILE *f = fopen(MODA_MODELS_DIR "/../examples/ankle-boot.png", "rb");
    assert_non_null(f);
    size_t png_len = fread(png, 1, sizeof png, f);
    fclose(f);
    assert_true(png_len > 0 && png_len < sizeof png);
    req.path = "/ui/ankle-boot.png";
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.body_len, png_len);
    assert_memory_equal(r.body, png, png_len);
    api_response_free(&r);

    /* The browser's copy is still current: 304, no body. */
    api_kv inm = {"If-None-Match", (char *)etag};
    req = (api_request){.method = "GET", .path = "/", .headers = &inm, .n_headers = 1};
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.status, 304);
    assert_null(r.body);
    assert_string_equal(header_of(&r, "ETag"), etag);
    api_response_free(&r);
    inm.value = "\"0000000000000000\"";
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    api_response_free(&page);

    expect_error(&(call){.method = "GET", .path = "/ui/unknown"}, 404, "not_found");
    expect_error(&(call){.method = "GET", .path = "/ui/images/ankle-boot.png"}, 404, "not_found");
    expect_error(&(call){.method = "GET", .path = "/ui/../v1/models"}, 404, "not_found");
    expect_error(&(call){.method = "POST", .path = "/", .ctype = "application/json", .body = "{}"}, 405,
                 "method_not_allowed");
    expect_error(&(call){.method = "DELETE", .path = "/ui/explorer.js"}, 405, "method_not_allowed");
}

/* /v1/models/{model}'s module statistics are the registry's: the pair
 * overlaps and the overlap of each parameterised layer. */
static void test_model_overlaps(void **state) {
    (void)state;
    api_response r;
    json_t *root = run(&(call){.method = "GET", .path = "/v1/models/" MODEL}, &r);
    assert_int_equal(r.status, 200);
    json_t *overlap = json_object_get(root, "overlap");
    assert_int_equal(json_array_size(overlap), K);
    for (int i = 0; i < K; i++) {
        json_t *row = json_array_get(overlap, (size_t)i);
        assert_int_equal(json_array_size(row), K);
        for (int j = 0; j < K; j++)
            assert_true(fabs(json_number_value(json_array_get(row, (size_t)j)) - parent.stats.overlap[i * K + j]) <
                        1e-8);
    }
    json_t *layers = json_object_get(root, "layers");
    assert_int_equal(json_array_size(layers), parent.stats.n_layers);
    assert_int_equal(parent.stats.n_layers, 5); /* LeNet5: conv1, conv2, fc1, fc2, fc3 */
    for (int l = 0; l < parent.stats.n_layers; l++) {
        json_t *layer = json_array_get(layers, (size_t)l);
        int node = (int)json_integer_value(json_object_get(layer, "node"));
        assert_int_equal(node, parent.stats.layer_node[l]);
        assert_string_equal(json_string_value(json_object_get(layer, "name")), parent.g->nodes[node].name);
        assert_true(fabs(json_number_value(json_object_get(layer, "overlap")) - parent.stats.layer_overlap[l]) < 1e-8);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(layers, 0), "name")), "conv1");
    json_decref(root);
    api_response_free(&r);
}

static void test_health(void **state) {
    (void)state;
    api_response r;
    call c = {.method = "GET", .path = "/v2/health/live"};
    json_t *root = run(&c, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(root, "live")));
    json_decref(root);
    api_response_free(&r);
    c.path = "/v2/health/ready";
    root = run(&c, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(root, "ready")));
    json_decref(root);
    api_response_free(&r);
    api_set_ready(a, false);
    root = run(&c, &r);
    assert_int_equal(r.status, 503);
    assert_true(json_is_false(json_object_get(root, "ready")));
    json_decref(root);
    api_response_free(&r);
    api_set_ready(a, true);
}

static void test_routing_errors(void **state) {
    (void)state;
    expect_error(&(call){.method = "GET", .path = "/v1/nothing"}, 404, "not_found");
    expect_error(&(call){.method = "GET", .path = "/ui"}, 404, "not_found");
    expect_error(&(call){.method = "GET", .path = "/v1/models/a/b"}, 404, "not_found");
    expect_error(&(call){.method = "GET", .path = "/v1/models/nope"}, 404, "unknown_model");
    /* Messages quote request bytes that are not UTF-8, or whose multi-byte
     * characters the message length cuts: the body must stay valid JSON
     * (expect_error parses it). */
    expect_error(&(call){.method = "GET", .path = "/v1/models/\xff\xfe"}, 404, "unknown_model");
    expect_error(&(call){.method = "GET", .path = "/v1/models/a\xc3"}, 404, "unknown_model");
    expect_error(&(call){.method = "GET", .path = "/v1/models/\xed\xa0\x80"}, 404, "unknown_model"); /* surrogate */
    char long_name[1024] = "/v1/models/";
    for (size_t i = strlen(long_name); i + 2 < sizeof long_name; i += 2) memcpy(long_name + i, "\xc3\xa9", 2);
    expect_error(&(call){.method = "GET", .path = long_name}, 404, "unknown_model");
    api_response r;
    json_t *v2 = run(&(call){.method = "GET", .path = "/v2/models/\xff/ready"}, &r);
    assert_int_equal(r.status, 404);
    assert_true(json_is_string(json_object_get(v2, "error")));
    json_decref(v2);
    api_response_free(&r);
    expect_error(&(call){.method = "GET", .path = "/v1/infer"}, 405, "method_not_allowed");
    expect_error(&(call){.method = "PUT", .path = "/v1/compose/x~1~0.5"}, 405, "method_not_allowed");
    json_t *root = run(&(call){.method = "DELETE", .path = "/v1/models"}, &r);
    assert_int_equal(r.status, 405);
    assert_int_equal(r.n_headers, 1);
    assert_string_equal(r.headers[0].key, "Allow");
    assert_string_equal(r.headers[0].value, "GET, HEAD");
    json_decref(root);
    api_response_free(&r);
    /* v2 routes answer errors in the protocol's shape. */
    root = run(&(call){.method = "POST", .path = "/v2/health/live"}, &r);
    assert_int_equal(r.status, 405);
    assert_true(json_is_string(json_object_get(root, "error")));
    assert_string_equal(r.error_code, "method_not_allowed");
    json_decref(root);
    api_response_free(&r);
}

/* ---- request errors ------------------------------------------------------- */

static void test_compose_errors(void **state) {
    (void)state;
    const char *p = "/v1/compose";
    expect_json_error(p, "{\"model\":", 400, "invalid_json");
    expect_json_error(p, "", 400, "invalid_json");
    expect_json_error(p, "[1,2]", 400, "invalid_type");
    expect_json_error(p, "{\"classes\":[1]}", 400, "bad_request");
    expect_json_error(p, "{\"model\":5,\"classes\":[1]}", 400, "invalid_type");
    expect_json_error(p, "{\"model\":\"nope\",\"classes\":[1]}", 404, "unknown_model");
    expect_json_error(p, "{\"model\":\"" MODEL "\"}", 400, "bad_request");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":\"Bag\"}", 400, "invalid_type");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[]}", 400, "empty_classes");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[1,\"Trouser\"]}", 400, "duplicate_class");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[\"Shoe\"]}", 404, "unknown_class");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[10]}", 404, "unknown_class");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[-1]}", 404, "unknown_class");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[1.5]}", 400, "invalid_type");
    /* 1.0 is the integer 1 (as JSON Schema counts): a duplicate here, and
     * 10.0 an index out of range. */
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[1.0,1]}", 400, "duplicate_class");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[10.0]}", 404, "unknown_class");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[null]}", 400, "invalid_type");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[0,1,2,3,4,5,6,7,8,9,0]}", 400, "too_many_classes");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[1],\"threshold\":1.5}", 400, "invalid_threshold");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[1],\"threshold\":-0.1}", 400, "invalid_threshold");
    expect_json_error(p, "{\"model\":\"" MODEL "\",\"classes\":[1],\"threshold\":\"0.5\"}", 400, "invalid_type");
    expect_error(&(call){.method = "POST", .path = p, .ctype = "text/plain", .body = "{}"}, 415,
                 "unsupported_media_type");
}

static void test_compose_delete_errors(void **state) {
    (void)state;
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL}, 400, "invalid_id");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/garbage"}, 404, "unknown_model");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL "~1--2~0.5"}, 404, "unknown_model");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL "~~0.5"}, 404, "unknown_model");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL "~1-2~x"}, 404, "unknown_model");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL "~1-2~"}, 404, "unknown_model");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL "~1-2~nan"}, 404, "unknown_model");
    expect_error(&(call){.method = "DELETE", .path = "/v1/compose/" MODEL "~1-2~0.123"}, 404, "not_cached");
}

static char *infer_body(const char *head, const char *inputs) {
    size_t len = strlen(head) + strlen(inputs) + 32;
    char *b = malloc(len);
    snprintf(b, len, "{%s\"inputs\":%s}", head, inputs);
    return b;
}

static void expect_infer_error(const char *head, const char *inputs, int status, const char *code) {
    char *b = infer_body(head, inputs);
    expect_json_error("/v1/infer", b, status, code);
    free(b);
}

static void test_infer_errors(void **state) {
    (void)state;
    /* One valid sample, flat. */
    json_t *flat = json_array();
    for (int i = 0; i < SIZE * SIZE; i++) json_array_append_new(flat, json_real(0.25));
    char *ok = json_dumps(flat, JSON_COMPACT);
    const char *shape = "\"shape\":[1,1,32,32],";
    char head[256];

    expect_json_error("/v1/infer", "{\"id\":", 400, "invalid_json");
    expect_json_error("/v1/infer", "42", 400, "invalid_type");
    expect_infer_error("", ok, 400, "bad_request"); /* neither id nor model */
    expect_infer_error("\"id\":\"" CLS_ID "\",\"model\":\"" MODEL "\",", ok, 422, "invalid_combination");
    expect_infer_error("\"id\":\"" CLS_ID "\",\"classes\":[1],", ok, 422, "invalid_combination");
    expect_infer_error("\"id\":\"" CLS_ID "\",\"threshold\":0.5,", ok, 422, "invalid_combination");
    expect_infer_error("\"id\":7,", ok, 400, "invalid_type");
    snprintf(head, sizeof head, "\"id\":\"nope\",%s", shape);
    expect_infer_error(head, ok, 404, "unknown_model");
    snprintf(head, sizeof head, "\"id\":\"nope~1~0.9\",%s", shape);
    expect_infer_error(head, ok, 404, "unknown_model");
    snprintf(head, sizeof head, "\"id\":\"" MODEL "~1-x~0.9\",%s", shape);
    expect_infer_error(head, ok, 404, "unknown_model");
    snprintf(head, sizeof head, "\"id\":\"" MODEL "~1-1~0.9\",%s", shape);
    expect_infer_error(head, ok, 400, "duplicate_class");
    snprintf(head, sizeof head, "\"id\":\"" MODEL "~1-10~0.9\",%s", shape);
    expect_infer_error(head, ok, 404, "unknown_class");
    snprintf(head, sizeof head, "\"id\":\"" MODEL "~1-2~1.5\",%s", shape);
    expect_infer_error(head, ok, 400, "invalid_threshold");
    snprintf(head, sizeof head, "\"model\":\"nope\",%s", shape);
    expect_infer_error(head, ok, 404, "unknown_model");
    snprintf(head, sizeof head, "\"model\":\"" MODEL "\",\"classes\":[],%s", shape);
    expect_infer_error(head, ok, 400, "empty_classes");
    snprintf(head, sizeof head, "\"model\":\"" MODEL "\",\"classes\":[\"Bag\",\"Bag\"],%s", shape);
    expect_infer_error(head, ok, 400, "duplicate_class");
    snprintf(head, sizeof head, "\"model\":\"" MODEL "\",\"classes\":[\"Hat\"],%s", shape);
    expect_infer_error(head, ok, 404, "unknown_class");
    snprintf(head, sizeof head, "\"model\":\"" MODEL "\",\"threshold\":0.5,%s", shape);
    expect_infer_error(head, ok, 422, "invalid_combination");

    /* Shapes and values. */
    snprintf(head, sizeof head, "\"id\":\"" MODEL "\",");
    expect_infer_error(head, ok, 400, "invalid_shape"); /* flat without shape */
    expect_infer_error(head, "[[[1,2],[3]]]", 400, "invalid_shape"); /* ragged */
    expect_infer_error(head, "[[[[1]]]]", 400, "invalid_shape");     /* 1x1 image */
    expect_infer_error(head, "[]", 400, "invalid_shape");
    /* First entries claiming 2000x2000 pixels that the body does not hold. */
    json_t *claim = json_array(), *row = json_array();
    for (int i = 0; i < 2000; i++) json_array_append_new(row, json_integer(0));
    json_array_append_new(claim, row);
    for (int i = 1; i < 2000; i++) json_array_append_new(claim, json_array());
    json_t *claim_all = json_pack("[[o]]", claim);
    char *claim_text = json_dumps(claim_all, JSON_COMPACT);
    json_decref(claim_all);
    expect_infer_error(head, claim_text, 400, "invalid_shape");
    free(claim_text);
    expect_infer_error(head, "\"pixels\"", 400, "invalid_type");
    expect_infer_error(head, "[[[\"a\"]]]", 400, "invalid_type");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,31],", ok, 400, "invalid_shape");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,3,32,32],", ok, 400, "invalid_shape");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[2,1,32,32],", ok, 400, "invalid_shape");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,0,32,32],", ok, 400, "invalid_shape");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1024],", ok, 400, "invalid_shape");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":\"1,1,32,32\",", ok, 400, "invalid_type");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32.5],", ok, 400, "invalid_type");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[161,1,32,32],", ok, 400, "batch_too_large");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32],\"dtype\":\"int8\",", ok, 400, "bad_request");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32],\"dtype\":1,", ok, 400, "invalid_type");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32],\"top_k\":0,", ok, 400, "bad_request");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32],\"top_k\":\"2\",", ok, 400, "invalid_type");
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32],\"dtype\":\"uint8\",", ok, 400, "invalid_input");
    expect_json_error("/v1/infer", "{\"id\":\"" MODEL "\",\"shape\":[1,1,32,32]}", 400, "bad_request");
    /* A finite double beyond float32 is not a float32. */
    json_array_set_new(flat, 5, json_real(1e300));
    char *big = json_dumps(flat, JSON_COMPACT);
    expect_infer_error("\"id\":\"" MODEL "\",\"shape\":[1,1,32,32],", big, 400, "invalid_input");
    free(big);
    expect_json_error("/v1/infer", "{\"id\":\"" MODEL "\",\"inputs\":[NaN]}", 400, "invalid_json");
    /* Shape and dtype parameters follow openapi.yaml's patterns whatever
     * the body: digits without a leading zero or spaces, 3 or 4 of them. */
    char *bad_shapes[] = {"", "1,28", "1,1,28,28,", "1, 1,28,28", "01,1,28,28", "1,1,28,28,1",
                          "1,1,28,1234567890", "0,1,28,28"};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof bad_shapes[0]; i++) {
        call hc = {.method = "POST", .path = "/v1/infer", .ctype = "application/json", .body = "{}",
                   .headers = {{"X-Moda-Shape", bad_shapes[i]}}, .n_headers = 1};
        expect_error(&hc, 400, "invalid_shape");
        call qc = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = "x",
                   .query = {{"id", MODEL}, {"shape", bad_shapes[i]}}, .n_query = 2};
        expect_error(&qc, 400, "invalid_shape");
    }
    call dc = {.method = "POST", .path = "/v1/infer", .ctype = "application/json", .body = "{}",
               .headers = {{"X-Moda-Dtype", "int8"}}, .n_headers = 1};
    expect_error(&dc, 400, "bad_request");

    /* Binary bodies. */
    size_t nb = SIZE * SIZE * sizeof(float);
    float *x = tu_alloc(SIZE * SIZE);
    call c = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = x, .len = nb,
              .query = {{"id", MODEL}, {"shape", "1,1,32,32"}}, .n_query = 2};
    x[77] = NAN;
    expect_error(&c, 400, "invalid_input");
    x[77] = INFINITY;
    expect_error(&c, 400, "invalid_input");
    x[77] = 0;
    /* Finite inputs beyond +-1e6: they would overflow inside the network. */
    x[100] = FLT_MAX;
    expect_error(&c, 400, "invalid_input");
    x[100] = -1.5e6f;
    expect_error(&c, 400, "invalid_input");
    x[100] = 0;
    /* Weights that overflow all the same: a composed model whose
     * classifier bias is +inf for its second class (a fresh id: no
     * worker has frozen its weights yet). The error names the sample. */
    api_response cr;
    json_decref(post_json("/v1/compose", "{\"model\":\"" MODEL "\",\"classes\":[4,6]}", &cr));
    assert_int_equal(cr.status, 200);
    api_response_free(&cr);
    api_entry *ov;
    api_error oe = {0};
    assert_int_equal(api_entry_resolve(a, 0, MODEL "~4-6~0.9", &ov, &oe), 0);
    const graph_node *logits = &ov->g->nodes[ov->g->output];
    assert_true(logits->kind == NODE_LINEAR && logits->has_bias);
    ov->g->params[logits->param[1]].data[1] = INFINITY;
    float *two = tu_alloc(2 * SIZE * SIZE);
    call oc = {.method = "POST", .path = "/v1/infer", .ctype = "application/octet-stream", .body = two,
               .len = 2 * nb, .query = {{"id", MODEL "~4-6~0.9"}, {"shape", "2,1,32,32"}}, .n_query = 2};
    expect_error(&oc, 422, "non_finite_output");
    api_response orr;
    json_decref(run(&oc, &orr));
    assert_true(body_contains(&orr, "for sample 0:"));
    api_response_free(&orr);
    api_entry_release(a, ov);
    free(two);
    call dc2 = {.method = "DELETE", .path = "/v1/compose/" MODEL "~4-6~0.9"};
    api_response dr;
    json_decref(run(&dc2, &dr));
    assert_int_equal(dr.status, 200);
    api_response_free(&dr);
    c.len = nb - 4;
    expect_error(&c, 400, "invalid_shape");
    c.len = nb;
    c.query[1].value = "1,1,32";
    expect_error(&c, 400, "invalid_shape");
    c.query[1].value = "1,1,32,32,1";
    expect_error(&c, 400, "invalid_shape");
    c.query[1].value = "1,1,32,x";
    expect_error(&c, 400, "invalid_shape");
    c.query[1].value = "1,1,32,32,";
    expect_error(&c, 400, "invalid_shape");
    c.query[1].value = "161,1,32,32";
    expect_error(&c, 400, "batch_too_large");
    c.query[1].value = "1,1,32,32";
    c.n_query = 1;
    expect_error(&c, 400, "invalid_shape"); /* no shape at all */
    c.n_query = 3;
    c.query[2] = (api_kv){"dtype", "f16"};
    expect_error(&c, 400, "bad_request");
    c.query[2] = (api_kv){"top_k", "two"};
    expect_error(&c, 400, "invalid_type");
    c.query[0] = (api_kv){"model", MODEL};
    c.query[2] = (api_kv){"classes", "Bag,Bag"};
    expect_error(&c, 400, "duplicate_class");
    c.query[2] = (api_kv){"classes", ""};
    expect_error(&c, 400, "empty_classes");
    c.query[2] = (api_kv){"classes", "Bag,,Coat"};
    expect_error(&c, 404, "unknown_class");
    c.query[2] = (api_kv){"threshold", "0.5"};
    expect_error(&c, 422, "invalid_combination");
    c.n_query = 4;
    c.query[3] = (api_kv){"classes", "Bag"};
    c.query[2] = (api_kv){"threshold", "high"};
    expect_error(&c, 400, "invalid_threshold");
    c.query[2] = (api_kv){"id", CLS_ID};
    expect_error(&c, 422, "invalid_combination");
    c.ctype = "image/gif";
    expect_error(&c, 415, "unsupported_media_type");
    free(x);
    free(ok);
    json_decref(flat);
}

/* A composed model stored in a registry is served like any other: its
 * description names its origin, it infers as the engine runs it, and it
 * can be composed again. */
static void test_composed_registry_model(void **state) {
    (void)state;
    char root[] = "/tmp/moda_api_XXXXXX", err[512] = "";
    assert_non_null(mkdtemp(root));
    const int cls[3] = {8, 1, 5};
    compose_plan p = {0};
    graph *c = NULL;
    rates r = {0};
    module_stats st = {0};
    model_info mi = {0};
    registry_origin origin = {0};
    assert_int_equal(compose_plan_make(parent.g, &parent.r, cls, 3, 0.9f, &p), MODA_OK);
    assert_int_equal(compose_build(parent.g, &p, be, &c), MODA_OK);
    assert_int_equal(compose_rates(parent.g, &parent.r, &p, c, &r), MODA_OK);
    assert_int_equal(module_stats_compute(c, &r, 0.9f, &st), MODA_OK);
    assert_int_equal(registry_composed_info(&parent, cls, 3, 0.9f, &mi, &origin), MODA_OK);
    if (registry_write_composed(root, "bags", c, &mi, &origin, NULL, 0.95, &r, &st, err, sizeof err) != MODA_OK)
        fail_msg("registry_write_composed: %s", err);

    api *b = NULL;
    api_config cfg = {.registry = root, .cache_bytes = 1u << 20, .workers = 1, .intra_threads = 1,
                      .max_batch = 4, .default_tau = 0.9f};
    if (api_new(&cfg, &b, err, sizeof err)) fail_msg("api_new: %s", err);
    api *saved = a;
    a = b;
    api_response resp;
    json_t *got = run(&(call){.method = "GET", .path = "/v1/models/bags"}, &resp);
    assert_int_equal(resp.status, 200);
    assert_true(json_is_true(json_object_get(got, "composed")));
    assert_int_equal(json_integer_value(json_object_get(got, "num_classes")), 3);
    json_t *o = json_object_get(got, "origin");
    assert_string_equal(json_string_value(json_object_get(o, "model")), MODEL);
    for (int j = 0; j < 3; j++) assert_int_equal(json_integer_value(json_array_get(json_object_get(o, "classes"), j)), cls[j]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(got, "classes"), 0), "name")),
                        "Bag");
    json_decref(got);
    api_response_free(&resp);

    /* Inference on it, and on a composition of it. */
    float *x = random_inputs(2, 8), z[2 * 3];
    assert_int_equal(graph_plan(c, 2), MODA_OK);
    assert_int_equal(graph_forward(c, x, 2, false), MODA_OK);
    memcpy(z, graph_output(c)->out.data, sizeof z);
    api_entry *e = NULL;
    api_error ae = {0};
    float logits[2 * 3];
    assert_int_equal(api_entry_resolve(b, 0, "bags", &e, &ae), 0);
    assert_int_equal(api_infer_run(b, 0, e, x, 2, logits, NULL, api_metrics(b), &ae), 0);
    assert_close(logits, z, 6, 1e-5, 1e-5);
    api_entry_release(b, e);

    compose_plan p2 = {0};
    graph *c2 = NULL;
    const int sub[2] = {2, 0};
    assert_int_equal(compose_plan_make(c, &r, sub, 2, 0.9f, &p2), MODA_OK);
    assert_int_equal(compose_build(c, &p2, be, &c2), MODA_OK);
    assert_int_equal(graph_plan(c2, 2), MODA_OK);
    assert_int_equal(graph_forward(c2, x, 2, false), MODA_OK);
    got = post_json("/v1/compose", "{\"model\":\"bags\",\"classes\":[\"Sandal\",\"Bag\"]}", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(json_string_value(json_object_get(got, "id")), "bags~2-0~0.9");
    json_decref(got);
    api_response_free(&resp);
    assert_int_equal(api_entry_resolve(b, 0, "bags~2-0~0.9", &e, &ae), 0);
    assert_int_equal(api_infer_run(b, 0, e, x, 2, logits, NULL, api_metrics(b), &ae), 0);
    assert_close(logits, graph_output(c2)->out.data, 4, 1e-5, 1e-5);
    api_entry_release(b, e);

    a = saved;
    api_free(b);
    free(x);
    graph_free(c2);
    compose_plan_free(&p2);
    registry_origin_free(&origin);
    model_info_free(&mi);
    module_stats_free(&st);
    rates_free(&r);
    graph_free(c);
    compose_plan_free(&p);
    assert_int_equal(synth_remove_tree(root), 0);
}

/* Too many classes for a --max-classes limit, and the limit applies to ids. */
static void test_max_classes_limit(void **state) {
    (void)state;
    char err[512];
    api *b = NULL;
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 1u << 20, .workers = 1, .intra_threads = 1,
                      .max_classes = 2, .max_batch = 4, .default_tau = 0.9f};
    assert_int_equal(api_new(&cfg, &b, err, sizeof err), 0);
    api *saved = a;
    a = b;
    expect_json_error("/v1/compose", "{\"model\":\"" MODEL "\",\"classes\":[1,2,3]}", 400, "too_many_classes");
    api_entry *e = NULL;
    api_error ae = {0};
    assert_int_equal(api_entry_resolve(b, 0, MODEL "~1-2-3~0.9", &e, &ae), -1);
    assert_string_equal(ae.code, "too_many_classes");
    assert_int_equal(api_entry_resolve(b, 0, MODEL "~1-2~0.9", &e, &ae), 0);
    api_entry_release(b, e);
    a = saved;
    api_free(b);

    /* A registry that does not exist fails with a reason. */
    cfg.registry = "/nonexistent/registry";
    assert_int_equal(api_new(&cfg, &b, err, sizeof err), -1);
    assert_null(b);
    assert_true(strlen(err) > 0);

    /* So does a device that does not exist. */
    cfg.registry = MODA_MODELS_DIR;
    cfg.device = "tpu";
    assert_int_equal(api_new(&cfg, &b, err, sizeof err), -1);
    assert_null(b);
    assert_non_null(strstr(err, "unknown device 'tpu'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_response),
        cmocka_unit_test(test_infer_json_nested),
        cmocka_unit_test(test_infer_json_flat),
        cmocka_unit_test(test_infer_binary_float32),
        cmocka_unit_test(test_infer_binary_uint8_padded),
        cmocka_unit_test(test_infer_png_equals_raw_pixels),
        cmocka_unit_test(test_infer_jpeg_top_class),
        cmocka_unit_test(test_infer_image_errors),
        cmocka_unit_test(test_tau0_all_classes_is_full_model),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_models_routes),
        cmocka_unit_test(test_model_overlaps),
        cmocka_unit_test(test_ui_routes),
        cmocka_unit_test(test_health),         cmocka_unit_test(test_light_requests),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_compose_errors),
        cmocka_unit_test(test_compose_delete_errors),
        cmocka_unit_test(test_infer_errors),
        cmocka_unit_test(test_composed_registry_model),
        cmocka_unit_test(test_max_classes_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
