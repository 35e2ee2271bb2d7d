/* GET /v2/models/{name}/config: Triton's model configuration JSON. Inputs
 * and outputs leave out the batch dimension (max_batch_size > 0, as
 * Triton does); dynamic_batching appears when the model's requests merge. */
#include <string.h>

#include "api_state.h"
#include "v2_ext.h"
#include "v2_proto.h"

static json_t *tensor_config(const char *name, const char *type, json_t *dims) {
    return json_pack("{s:s,s:s,s:o}", "name", name, "data_type", type, "dims", dims);
}

void v2_model_config(api *a, const api_entry_info *mi, api_response *resp) {
    const api_batching *b = &a->cfg.batching;
    int max_batch = b->max_batch, delay = b->max_delay_us;
    for (int i = 0; i < b->n_overrides; i++)
        if (!strcmp(b->overrides[i].model, mi->model)) {
            max_batch = b->overrides[i].max_batch;
            delay = b->overrides[i].max_delay_us;
        }
    json_t *out = json_pack("[o,o,o]",
                            tensor_config(v2_output_name(V2_OUT_PROBABILITIES), "TYPE_FP32", json_pack("[i]", mi->n_classes)),
                            tensor_config(v2_output_name(V2_OUT_LOGITS), "TYPE_FP32", json_pack("[i]", mi->n_classes)),
                            tensor_config(v2_output_name(V2_OUT_CLASS_INDEX), "TYPE_INT32", json_pack("[i]", 1)));
    json_t *in = json_pack("[o]", tensor_config(V2_INPUT_NAME, "TYPE_FP32",
                                                json_pack("[i,i,i]", mi->channels, mi->height, mi->width)));
    json_t *root = json_pack("{s:s,s:s,s:s,s:i,s:o,s:o,s:[{s:i,s:s}]}", "name", mi->id, "platform", "moda_c",
                             "backend", "moda", "max_batch_size", api_max_batch(a), "input", in, "output", out,
                             "instance_group", "count", a->batcher && max_batch > 1 ? (b->instances > 0 ? b->instances : 1) : 1,
                             "kind", strcmp(api_device(a), "cuda") ? "KIND_CPU" : "KIND_GPU");
    if (root && a->batcher && max_batch > 1) {
        json_t *db = json_pack("{s:[i],s:i}", "preferred_batch_size", max_batch, "max_queue_delay_microseconds", delay);
        if (db && b->timeout_us > 0)
            json_object_set_new(db, "default_queue_policy",
                                json_pack("{s:s,s:i}", "timeout_action", "REJECT", "default_timeout_microseconds",
                                          b->timeout_us));
        json_object_set_new(root, "dynamic_batching", db);
    }
    api_response_json(resp, 200, root);
}
