/* The v1 JSON API (api-spec: /v1/models, /v1/compose, /v1/infer). Each
 * handler fills *resp (zeroed by the caller), errors included. */
#ifndef MODA_API_V1_H
#define MODA_API_V1_H

#include "api.h"

void v1_models_list(api *a, api_response *resp);
void v1_model_get(api *a, const char *name, api_response *resp);
void v1_compose(api *a, int worker, const api_request *req, api_response *resp);
void v1_compose_delete(api *a, const char *id, api_response *resp);
void v1_infer(api *a, int worker, const api_request *req, api_response *resp);

#endif
