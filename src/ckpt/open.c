/* Checkpoint dispatch by path: a regular file is a llama2.c checkpoint; a
 * directory is a ryz shard directory when its config.json says
 * "format": "ryz-shard", else a Hugging Face LlamaForCausalLM directory. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* Opens a directory source: reads only DIR/config.json before dispatching. */
static ryz_status open_dir(const char *dir, int tp, int rank, ryz_model_config *cfg,
                           ryz_weights **out) {
    char *path = ckpt_path_join(dir, "config.json"), *text = NULL;
    size_t len;
    json_doc d = {0};
    ryz_status st = path ? ckpt_slurp(path, CKPT_MAX_JSON, &text, &len)
                         : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) {
        st = json_parse(&d, text, len); /* owns text */
        if (st == RYZ_EINVAL) ryz_error_wrap(st, "%s", path);
    }
    if (st == RYZ_OK && d.nodes[0].type != JSON_OBJ)
        st = ryz_error(RYZ_EINVAL, "%s: not a JSON object", path);
    if (st == RYZ_OK) {
        int f = json_get(&d, 0, "format");
        int shard = f >= 0 && d.nodes[f].type == JSON_STR && !strcmp(d.nodes[f].str, "ryz-shard");
        st = shard ? shard_open(dir, &d, tp, rank, cfg, out) : hf_open(dir, &d, cfg, out);
    }
    json_free(&d);
    free(path);
    return st;
}

ryz_status ryz_ckpt_open(const char *path, int tp, int rank, ryz_model_config *cfg,
                         ryz_weights **out) {
    struct stat sb;
    *out = NULL;
    if (stat(path, &sb) != 0)
        return ryz_error(RYZ_EIO,
                         "model '%s': %s (expected synthetic:PRESET[,key=value...], a llama2.c "
                         "checkpoint, a Hugging Face directory or a ryz shard directory)",
                         path, strerror(errno));
    ryz_status st = S_ISDIR(sb.st_mode) ? open_dir(path, tp, rank, cfg, out)
                                        : l2c_open(path, cfg, out);
    if (st == RYZ_OK) cfg->seed = 0;
    return st;
}
