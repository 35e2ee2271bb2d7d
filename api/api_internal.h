/* What the protocol front ends (v1.c, v2.c) share: servable models pinned
 * from the cache, input decoding, and inference. Everything here is
 * thread-safe across workers; `worker` is the caller's worker index (one
 * thread per index at a time, as for api_handle).
 *
 * Typical request:
 *   api_entry *e;  api_error err = {0};
 *   if (api_entry_resolve(a, worker, name, &e, &err)) -> error response
 *   const api_entry_info *mi = api_entry_info_of(e);
 *   api_input in;  api_input_from_json(data, shape, API_DTYPE_FLOAT32, api_max_batch(a), &in, &err)
 *   float *x;      api_input_prepare(mi, &in, &x, &err)        (n, C, H, W)
 *   api_infer_run(a, worker, e, x, in.n, logits, probs, m, &err)  (n, K') each
 *   api_entry_release(a, e);   free(x);  api_input_free(&in);
 */
#ifndef MODA_API_INTERNAL_H
#define MODA_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "compose.h"
#include "errors.h"
#include "image.h"
#include "json_fast.h"

#define API_ID_MAX 160 /* = sizeof(api_response.model) */

/* ---- servable models ------------------------------------------------------ */

/* A registry model (served whole) or a composed model in the cache. Opaque;
 * pinned between resolve and release, so it is never freed mid-request. */
typedef struct api_entry api_entry;

typedef struct api_entry_info {
    const char *id;       /* composed id "<model>~<i>-<j>~<tau>[~per-layer]", or the registry name */
    const char *model;    /* registry model it comes from (= id when not composed) */
    bool composed;        /* false: the registry model itself, all its classes */
    float tau;            /* composition threshold; the stored stats' tau when not composed */
    compose_mode mode;    /* how it was composed; COMPOSE_TIED when not composed */
    int channels;         /* network input (channels, height, width) */
    int height, width;
    int pad;              /* raw images are (height - 2 pad) x (width - 2 pad) */
    const float *mean;    /* (channels) normalisation: x = (pixel/255 - mean) / std */
    const float *std;     /* (channels) */
    int n_classes;        /* K': outputs */
    const int *classes;   /* (K') the registry model's class index of each output */
    const char *const *class_names; /* (K') names in output order */
    size_t params;        /* trainable parameters */
    double macs;          /* multiply-adds per sample */
} api_entry_info;

/* Pin the model `name` names: a registry model name (the full model) or a
 * composed id, composed now through the cache when not cached. Errors:
 * invalid_id (bad id syntax), unknown_model (404), unknown_class,
 * duplicate_class, too_many_classes, invalid_threshold, internal. */
int api_entry_resolve(api *a, int worker, const char *name, api_entry **out, api_error *e);
/* Unpin; accepts NULL. */
void api_entry_release(api *a, api_entry *e);
/* Valid while pinned. */
const api_entry_info *api_entry_info_of(const api_entry *e);

/* ---- inputs --------------------------------------------------------------- */

typedef enum api_dtype {
    API_DTYPE_FLOAT32, /* the network's normalised space */
    API_DTYPE_UINT8,   /* raw pixels 0..255 */
} api_dtype;

/* Samples as the client sent them, before padding and normalisation. */
typedef struct api_input {
    api_dtype dtype;
    int n, c, h, w;
    void *data; /* (n, c, h, w) float or uint8_t in C order, owned */
} api_input;

void api_input_free(api_input *in); /* accepts NULL; leaves *in zeroed */

/* "float32" / "uint8" (v1 names, exact). false when neither. */
bool api_dtype_parse(const char *s, api_dtype *dt);

/* "N,C,H,W" (or "C,H,W" for one sample) of positive integers. Error:
 * invalid_shape. */
int api_shape_parse(const char *text, int shape[4], api_error *e);

/* Values of a JSON array. With shape (4 dims, N first): a flat array of
 * N*C*H*W numbers or a nested array of exactly that shape. Without (NULL):
 * the shape is read from the nesting, [N][C][H][W] or [C][H][W] (N = 1).
 * float32: any finite number; uint8: integers 0..255. Errors: invalid_type
 * (not an array / not a number), invalid_shape (ragged, wrong depth or
 * count, a zero dimension), invalid_input (a value out of range, or not
 * finite as float32), batch_too_large (N > max_batch). */
int api_input_from_json(const json_t *values, const int *shape, api_dtype dt, int max_batch, api_input *out,
                        api_error *e);

/* The same for values parsed with json_fast_or_jansson_packed: when
 * values is packed->node, its numbers come from packed (same answers, same
 * errors); otherwise from the tree. packed may be NULL. */
int api_input_from_json_packed(const json_t *values, const json_fast_packed *packed, const int *shape,
                               api_dtype dt, int max_batch, api_input *out, api_error *e);

/* Raw little-endian samples of the given shape: len must be exactly
 * N*C*H*W*sizeof(dtype). Errors: invalid_shape, batch_too_large. */
int api_input_from_binary(const void *bytes, size_t len, const int shape[4], api_dtype dt, int max_batch,
                          api_input *out, api_error *e);

/* The network input for model mi: C must be mi->channels and H x W either
 * the input size or the raw size (input - 2 pad), then the border is
 * padded with raw black; uint8 is normalised as (x/255 - mean[c]) /
 * std[c]. *x: malloc'd (n, C, height, width) floats, the caller frees.
 * Errors: invalid_shape, invalid_input (NaN, Inf, or beyond
 * +-API_INPUT_MAX: finite values near FLT_MAX overflow inside a network,
 * and ReLU turns the NaN they make into a finite, meaningless answer). */
#define API_INPUT_MAX 1e6f
int api_input_prepare(const api_entry_info *mi, const api_input *in, float **x, api_error *e);

/* A PNG or JPEG body (Content-Type image/png or image/jpeg; the format
 * itself is read from the bytes). */
bool api_request_is_image(const api_request *req);

/* Decodes an image body within image_limits_default(). Errors:
 * invalid_image (not a PNG or JPEG, corrupt, truncated, unsupported) and
 * image_too_large (over the pixel limits), each with the decoder's
 * reason. */
int api_image_decode(const void *bytes, size_t len, image *img, api_error *e);

/* One uint8 sample: img fitted by image_fit's rule to mi's channels and
 * its size before padding, (height - 2 pad) x (width - 2 pad), ready for
 * api_input_prepare. */
int api_input_from_image(const api_entry_info *mi, const image *img, api_input *out, api_error *e);

/* ---- inference ------------------------------------------------------------ */

/* Forward n samples of x (n, C, H, W from api_input_prepare) through e in
 * eval mode, in chunks, on this worker's own handle. logits and probs
 * (either may be NULL): caller-allocated (n, K'); probabilities are a
 * softmax computed in double. Records METRIC_INFERENCE_COUNT,
 * METRIC_EXEC_COUNT and METRIC_COMPUTE_DURATION_US under the entry's id
 * in m (NULL: nowhere, for a pass that serves no request). Error:
 * internal. */
int api_infer_run(api *a, int worker, api_entry *e, const float *x, int n, float *logits, float *probs,
                  metrics *m, api_error *err);
/* The same for a request with a deadline (api_request.deadline_us; 0:
 * none): with dynamic batching it leaves its batch queue at the earlier of
 * its deadline (deadline_exceeded) and the batching timeout
 * (queue_timeout). */
int api_infer_run_until(api *a, int worker, api_entry *e, const float *x, int n, float *logits, float *probs,
                        metrics *m, uint64_t deadline_us, api_error *err);

/* ---- limits and state ----------------------------------------------------- */

const api_config *api_config_of(const api *a); /* the config api_new got */
int api_max_batch(const api *a);               /* samples per request */
metrics *api_metrics(const api *a);            /* may be NULL */

/* Parse a request body as JSON: invalid_json with Jansson's message and
 * position when malformed (an empty body too). The caller decrefs. */
int api_json_parse(const api_request *req, json_t **out, api_error *e);

/* The same, with the first array under key packed (json_fast.h); the
 * caller frees packed as well, after the tree. */
int api_json_parse_packed(const api_request *req, const char *key, json_t **out, json_fast_packed *packed,
                          api_error *e);

/* Media type of the request (Content-Type up to ';', blanks trimmed) equals
 * type, case-insensitively. */
bool api_request_is_type(const api_request *req, const char *type);

#endif
