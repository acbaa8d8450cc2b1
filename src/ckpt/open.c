/* Checkpoint dispatch by path: a regular file is a llama2.c checkpoint; a
 * directory is a ryz shard directory when its config.json says
 * "format": "ryz-shard", else a Hugging Face LlamaForCausalLM directory. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* Reads and parses DIR/config.json (root object); *shard: it says
 * "format": "ryz-shard". */
static ryz_status read_dir_config(const char *dir, json_doc *d, int *shard) {
    char *path = ckpt_path_join(dir, "config.json"), *text = NULL;
    size_t len;
    memset(d, 0, sizeof *d);
    ryz_status st = path ? ckpt_slurp(path, CKPT_MAX_JSON, &text, &len)
                         : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) {
        st = json_parse(d, text, len); /* owns text */
        if (st == RYZ_EINVAL)
            ryz_error_wrap(st, "%s", path);
    }
    if (st == RYZ_OK && d->nodes[0].type != JSON_OBJ)
        st = ryz_error(RYZ_EINVAL, "%s: not a JSON object", path);
    int f = st == RYZ_OK ? json_get(d, 0, "format") : -1;
    *shard = f >= 0 && d->nodes[f].type == JSON_STR && !strcmp(d->nodes[f].str, "ryz-shard");
    free(path);
    return st;
}

/* Opens a directory source: reads only DIR/config.json before dispatching. */
static ryz_status open_dir(const char *dir, int tp, int rank, ryz_model_config *cfg,
                           ryz_weights **out) {
    json_doc d;
    int shard;
    ryz_status st = read_dir_config(dir, &d, &shard);
    if (st == RYZ_OK)
        st = shard ? shard_open(dir, &d, tp, rank, cfg, out) : hf_open(dir, &d, cfg, out);
    json_free(&d);
    return st;
}

ryz_status ryz_ckpt_sharded_tp(const char *path, int *tp) {
    struct stat sb;
    json_doc d;
    int shard = 0;
    int64_t k = 0;
    *tp = 0;
    if (strncmp(path, "synthetic:", 10) == 0 || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return RYZ_OK;
    char *cfg_path = ckpt_path_join(path, "config.json");
    ryz_status st =
        cfg_path ? read_dir_config(path, &d, &shard) : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK && shard)
        st = json_get_int(&d, 0, "tp", cfg_path, 1, CKPT_MAX_FILES, NULL, &k);
    if (st == RYZ_OK)
        *tp = (int)k;
    if (cfg_path)
        json_free(&d);
    free(cfg_path);
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
    ryz_status st =
        S_ISDIR(sb.st_mode) ? open_dir(path, tp, rank, cfg, out) : l2c_open(path, cfg, out);
    if (st == RYZ_OK)
        cfg->seed = 0;
    return st;
}
