/* Open Inference Protocol v2 (KServe / Triton) per-model routes:
 *
 *   GET  /v2/models/{name}[/versions/1]          model metadata
 *   GET  /v2/models/{name}[/versions/1]/ready    model readiness
 *   POST /v2/models/{name}[/versions/1]/infer    inference, JSON or with
 *                                                binary tensors (v2_proto.h)
 *
 * {name} is a registry model name (the full model) or a composed id; each
 * model has the one version "1". Errors use the v2 shape {"error": "..."}
 * with the status of the error code; resp->error_code, model and
 * is_inference are set for the server's metrics. */
#ifndef MODA_API_V2_H
#define MODA_API_V2_H

#include "api.h"

/* Handle a request whose path is "/v2/models/" followed by rest. Always
 * fills *resp (zeroed by the caller). */
void api_v2_model_route(api *a, int worker, const api_request *req, const char *rest, api_response *resp);

#endif
