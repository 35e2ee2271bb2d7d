/* Triton's extensions of the v2 protocol, beyond inference:
 *
 *   model_configuration  GET  /v2/models/{name}[/versions/1]/config
 *   statistics           GET  /v2/models/{name}[/versions/1]/stats, /v2/models/stats
 *   model_repository     POST /v2/repository/index
 *                        POST /v2/repository/models/{name}/load, .../unload
 *
 * in Triton's JSON, so that its clients and tools (perf_analyzer, model
 * analyzer) can drive the server. Load composes a composed id and pins it
 * in the cache until unload, which unpins and drops it. */
#ifndef MODA_API_V2_EXT_H
#define MODA_API_V2_EXT_H

#include "api_internal.h"
#include "model_store.h"

/* The model configuration of mi (pinned), as Triton's model config JSON. */
void v2_model_config(api *a, const api_entry_info *mi, api_response *resp);

/* Triton's statistics: of the model id (a registry name or canonical
 * composed id), or of every model the server has served or loaded (id
 * NULL). */
void v2_model_stats(api *a, const char *id, api_response *resp);

/* A request whose path is "/v2/repository/" followed by rest. */
void v2_repository_route(api *a, int worker, const api_request *req, const char *rest, api_response *resp);

/* The models loaded through the repository API: pins held until unload. */
typedef struct v2_loaded v2_loaded;
v2_loaded *v2_loaded_new(void); /* NULL when out of memory */
/* Releases every pin; before the cache is freed. Accepts NULL. */
void v2_loaded_free(api *a, v2_loaded *l);
/* After a reload retired the models gone[0..n_gone): each loaded model
 * composed from one of them is composed again from the model that now
 * serves under its parent's name and pinned in place of the old one, as a
 * Triton repository keeps a model loaded across a reload, at its new
 * version; one whose parent has left the registry, or that no longer
 * composes from the new parent, is unloaded. Counts both. */
void v2_loaded_reload(api *a, api_model *const *gone, int n_gone, int *recomposed, int *unloaded);

#endif
