/* The v1 JSON API (openapi.yaml: /v1/models, /v1/compose, /v1/infer, and
 * the jobs of /v1/replace, /v1/calibrate and /v1/jobs in v1_jobs.c). Each
 * handler fills *resp (zeroed by the caller), errors included. */
#ifndef MODA_API_V1_H
#define MODA_API_V1_H

#include <jansson.h>

#include "api.h"
#include "errors.h"
#include "json_fast.h"

void v1_models_list(api *a, api_response *resp);
/* A registry model, or a composed id (composed through the cache). */
void v1_model_get(api *a, int worker, const char *name, api_response *resp);
void v1_compose(api *a, int worker, const api_request *req, api_response *resp);
void v1_compose_delete(api *a, const char *id, api_response *resp);
void v1_infer(api *a, int worker, const api_request *req, api_response *resp);

void v1_replace(api *a, const api_request *req, api_response *resp);
void v1_calibrate(api *a, const api_request *req, api_response *resp);
void v1_jobs_list(api *a, api_response *resp);
void v1_job_get(api *a, const char *id, api_response *resp);
void v1_job_cancel(api *a, const char *id, api_response *resp);

/* A JSON body: application/json (or no Content-Type), an object. */
int v1_body_object(const api_request *req, json_t **root, api_error *e);

/* The same, with the first array under key packed (api_json_parse_packed). */
int v1_body_object_packed(const api_request *req, const char *key, json_t **root, json_fast_packed *packed,
                          api_error *e);

#endif
