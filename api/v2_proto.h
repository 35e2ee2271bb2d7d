/* The Open Inference Protocol v2 wire format (KServe's REST protocol with
 * Triton's binary tensor data extension), independent of the engine.
 *
 * Request body: a JSON inference request, or, when the header
 * Inference-Header-Content-Length gives L, L bytes of JSON followed by the
 * binary tensors of the inputs that carry a "binary_data_size" parameter,
 * in input order, little-endian, row-major, nothing in between.
 *
 * Response body: the JSON inference response; outputs asked for as binary
 * (an output's "binary_data" parameter, else the request's
 * "binary_data_output") carry "parameters":{"binary_data_size":n} instead
 * of "data" and their bytes follow the JSON in output order; the response
 * then is application/octet-stream with Inference-Header-Content-Length.
 *
 * MODA models have one input, "input" [N,C,H,W] of FP32 or UINT8, and three
 * outputs, "probabilities" FP32 [N,K'], "logits" FP32 [N,K'] and
 * "class_index" INT32 [N]. */
#ifndef MODA_API_V2_PROTO_H
#define MODA_API_V2_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "errors.h"
#include "json_fast.h"

#define V2_HEADER_LENGTH "Inference-Header-Content-Length"
#define V2_INPUT_NAME "input"

typedef enum v2_output {
    V2_OUT_PROBABILITIES,
    V2_OUT_LOGITS,
    V2_OUT_CLASS_INDEX,
    V2_OUT_COUNT_
} v2_output;

/* "probabilities", "logits", "class_index". */
const char *v2_output_name(v2_output o);

typedef enum v2_dtype {
    V2_DTYPE_FP32,
    V2_DTYPE_UINT8,
} v2_dtype;

/* A parsed inference request. The tensor data stays where it is: data
 * points into root, binary into the request body, so the request body must
 * outlive the v2_request. */
typedef struct v2_request {
    json_t *root;          /* the JSON header, owned */
    const char *id;        /* the request's "id" (in root), NULL when none */
    v2_dtype dtype;        /* of the one input */
    int shape[4];          /* N, C, H, W, each >= 1 */
    const json_t *data;    /* the input's "data" array (flat or nested), or NULL */
    json_fast_packed packed; /* data's numbers when data is packed.node (json_fast.h), owned */
    const char *binary;    /* the input's binary bytes in the body, or NULL */
    size_t binary_len;     /* its "binary_data_size" */
    int n_outputs;         /* outputs to return, 1..V2_OUT_COUNT_ */
    v2_output outputs[V2_OUT_COUNT_];   /* in response order */
    bool out_binary[V2_OUT_COUNT_];     /* per response position: as binary data */
} v2_request;

/* Parse body (body_len bytes, not NUL-terminated) with the value of the
 * Inference-Header-Content-Length header (NULL when absent). Errors:
 * bad_request (framing: header length not a number or beyond the body,
 * binary sizes that do not add up to the bytes after the JSON, a missing
 * field, an input or output name the model does not have), invalid_json,
 * invalid_type (a field of the wrong JSON type, an unsupported datatype),
 * invalid_shape (shape not 4 positive dimensions). The tensor values
 * themselves are checked when decoded. On error *out is zeroed. */
int v2_request_parse(const char *body, size_t body_len, const char *header_length, v2_request *out,
                     api_error *e);
void v2_request_free(v2_request *r); /* accepts NULL; leaves *r zeroed */

/* Fill resp with the inference response for r: model_name, model_version
 * "1", the echoed id, and the requested outputs of n samples from logits
 * and probs (n, k) each; class_index is the argmax of each row of probs
 * (the first on ties). Errors (as api_response_error_v2): invalid_input when a
 * requested output is not finite, internal when out of memory. */
void v2_response_infer(api_response *resp, const v2_request *r, const char *model_name, int n, int k,
                       const float *logits, const float *probs);

#endif
