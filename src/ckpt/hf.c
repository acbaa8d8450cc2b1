/* Hugging Face LlamaForCausalLM directories: config.json plus
 * model.safetensors, or several files listed by model.safetensors.index.json.
 * F32, F16 and BF16 are read as float32. Hugging Face stores the q and k
 * rows of each head in rotary-half order (llama2.c export.py
 * permute_original); the reader maps rows back to llama2.c's interleaved
 * order, the writer applies the permutation. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static const char *const hf_layer_names[RYZ_T_PER_LAYER] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "mlp.gate_proj",    "mlp.down_proj",
    "mlp.up_proj",      "input_layernorm",  "post_attention_layernorm"};

/* The Hugging Face name of tensor t. */
static void hf_name(uint32_t t, char *buf, size_t n) {
    if (t == RYZ_T_EMBED)
        snprintf(buf, n, "model.embed_tokens.weight");
    else if (t == RYZ_T_CLS)
        snprintf(buf, n, "lm_head.weight");
    else if (t == RYZ_T_FINAL_NORM)
        snprintf(buf, n, "model.norm.weight");
    else
        snprintf(buf, n, "model.layers.%u.%s.weight", t / RYZ_T_PER_LAYER,
                 hf_layer_names[t % RYZ_T_PER_LAYER]);
}

/* Head size whose rows Hugging Face stores permuted (q, k), else 0. */
static int hf_perm(const ryz_model_config *c, uint32_t t) {
    uint32_t k = ckpt_tensor_kind(t);
    return k == RYZ_T_WQ || k == RYZ_T_WK ? c->dim / c->n_heads : 0;
}

/* Refuses settings that would change the math silently. */
static ryz_status hf_refuse(const char *path, const json_doc *d) {
    int k = json_get(d, 0, "rope_scaling");
    if (k >= 0 && d->nodes[k].type != JSON_NULL)
        return ryz_error(RYZ_EINVAL, "%s: rope_scaling is not supported", path);
    const char *flags[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        k = json_get(d, 0, flags[i]);
        if (k >= 0 && !(d->nodes[k].type == JSON_BOOL && !d->nodes[k].boolean))
            return ryz_error(RYZ_EINVAL, "%s: %s must be false (biases are not supported)", path,
                             flags[i]);
    }
    const char *strs[][2] = {{"model_type", "llama"}, {"hidden_act", "silu"}};
    for (int i = 0; i < 2; i++) {
        k = json_get(d, 0, strs[i][0]);
        if (k >= 0 && (d->nodes[k].type != JSON_STR || strcmp(d->nodes[k].str, strs[i][1])))
            return ryz_error(RYZ_EINVAL, "%s: %s must be \"%s\"", path, strs[i][0], strs[i][1]);
    }
    return RYZ_OK;
}

/* Reads the integer fields of config.json into cfg. */
static ryz_status hf_ints(const char *path, const json_doc *d, ryz_model_config *cfg) {
    const char *keys[] = {
        "hidden_size",         "intermediate_size", "num_hidden_layers",      "num_attention_heads",
        "num_key_value_heads", "vocab_size",        "max_position_embeddings"};
    int *fields[] = {&cfg->dim,        &cfg->hidden, &cfg->n_layers, &cfg->n_heads,
                     &cfg->n_kv_heads, &cfg->vocab,  &cfg->seq_len};
    for (int i = 0; i < 7; i++) {
        int64_t v, def = i == 4 ? cfg->n_heads : 2048;
        ryz_status st =
            json_get_int(d, 0, keys[i], path, 1, CKPT_MAX_DIM, i == 4 || i == 6 ? &def : NULL, &v);
        if (st != RYZ_OK)
            return st;
        *fields[i] = (int)v;
    }
    int k = json_get(d, 0, "head_dim");
    if (k >= 0 && d->nodes[k].type != JSON_NULL &&
        !(d->nodes[k].is_int && d->nodes[k].i * cfg->n_heads == cfg->dim))
        return ryz_error(RYZ_EINVAL, "%s: head_dim must be hidden_size / num_attention_heads",
                         path);
    return RYZ_OK;
}

ryz_status hf_parse_config(const char *path, const json_doc *d, ryz_model_config *cfg, int *tied) {
    double eps, theta, def_eps = 1e-6, def_theta = 10000.0;
    *cfg = (ryz_model_config){0};
    if (d->nodes[0].type != JSON_OBJ)
        return ryz_error(RYZ_EINVAL, "%s: not a JSON object", path);
    ryz_status st = hf_refuse(path, d);
    if (st == RYZ_OK)
        st = hf_ints(path, d, cfg);
    if (st == RYZ_OK)
        st = json_get_num(d, 0, "rms_norm_eps", path, &def_eps, &eps);
    if (st == RYZ_OK)
        st = json_get_num(d, 0, "rope_theta", path, &def_theta, &theta);
    if (st != RYZ_OK)
        return st;
    if (!(eps > 0 && eps < 1) || !(theta > 1 && theta < 1e12))
        return ryz_error(RYZ_EINVAL, "%s: rms_norm_eps %g or rope_theta %g out of range", path, eps,
                         theta);
    cfg->norm_eps = (float)eps;
    cfg->rope_base = (float)theta;
    int k = json_get(d, 0, "tie_word_embeddings");
    if (k >= 0 && d->nodes[k].type != JSON_BOOL)
        return ryz_error(RYZ_EINVAL, "%s: tie_word_embeddings: expected a boolean", path);
    *tied = k >= 0 && d->nodes[k].boolean;
    return ckpt_check_config(path, cfg);
}

/* ================================================================ open */

/* The weight files of dir: names[] (malloc'd strings) and, with an index,
 * its parsed JSON (idx->text non-NULL). */
typedef struct {
    char *names[CKPT_MAX_FILES];
    int n;
    json_doc idx;
    int map; /* weight_map node, -1 without an index */
} hf_files;

/* Frees the names and the index; safe on a zeroed hf_files. */
static void hf_files_free(hf_files *f) {
    for (int i = 0; i < f->n; i++)
        free(f->names[i]);
    json_free(&f->idx);
}

/* A weight file name from the index: plain, ending in .safetensors. */
static int plain_name(const char *s) {
    size_t n = strlen(s);
    return n > 12 && n < 256 && !strchr(s, '/') && s[0] != '.' &&
           strcmp(s + n - 12, ".safetensors") == 0;
}

/* Index of name in f->names (*i), adding it if new; EINVAL when the name
 * is not acceptable. */
static ryz_status add_file(hf_files *f, const char *name, const char *path, int *i) {
    for (*i = 0; *i < f->n; (*i)++)
        if (strcmp(f->names[*i], name) == 0)
            return RYZ_OK;
    if (!plain_name(name))
        return ryz_error(RYZ_EINVAL,
                         "%s: weight_map: file name '%s' is not a plain *.safetensors name", path,
                         name);
    if (f->n == CKPT_MAX_FILES)
        return ryz_error(RYZ_EINVAL, "%s: weight_map names more than %d files", path,
                         CKPT_MAX_FILES);
    if (!(f->names[f->n] = strdup(name)))
        return ryz_error(RYZ_ENOMEM, "out of memory");
    *i = f->n++;
    return RYZ_OK;
}

/* Reads the index's weight_map and the files it names. */
static ryz_status hf_read_index(const char *path, hf_files *f) {
    char *text;
    size_t len;
    int fi;
    ryz_status st = ckpt_slurp(path, CKPT_MAX_JSON, &text, &len);
    if (st != RYZ_OK)
        return st;
    st = json_parse(&f->idx, text, len); /* owns text */
    if (st != RYZ_OK)
        return st == RYZ_EINVAL ? ryz_error_wrap(st, "%s", path) : st;
    f->map = json_get(&f->idx, 0, "weight_map");
    if (f->map < 0 || f->idx.nodes[f->map].type != JSON_OBJ)
        return ryz_error(RYZ_EINVAL, "%s: weight_map missing or not an object", path);
    for (int k = f->idx.nodes[f->map].child; st == RYZ_OK && k >= 0; k = f->idx.nodes[k].next)
        st = f->idx.nodes[k].type == JSON_STR
                 ? add_file(f, f->idx.nodes[k].str, path, &fi)
                 : ryz_error(RYZ_EINVAL, "%s: weight_map: %s: expected a file name", path,
                             f->idx.nodes[k].key);
    return st;
}

/* Lists the weight files: from model.safetensors.index.json when present,
 * else model.safetensors. */
static ryz_status hf_list_files(const char *dir, hf_files *f) {
    memset(f, 0, sizeof *f);
    f->map = -1;
    int fi;
    char *path = ckpt_path_join(dir, "model.safetensors.index.json");
    ryz_status st = !path                     ? ryz_error(RYZ_ENOMEM, "out of memory")
                    : access(path, F_OK) == 0 ? hf_read_index(path, f)
                                              : add_file(f, "model.safetensors", path, &fi);
    free(path);
    return st;
}

/* The file index holding `name`, or -1 with a message. */
static int hf_file_of(const hf_files *f, const char *name, const char *dir) {
    if (f->map < 0)
        return 0;
    int k = json_get(&f->idx, f->map, name);
    if (k < 0) {
        ryz_error(RYZ_EINVAL, "%s/model.safetensors.index.json: tensor %s missing", dir, name);
        return -1;
    }
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->names[i], f->idx.nodes[k].str) == 0)
            return i;
    return -1; /* not reached: every value was added */
}

/* Places every tensor of the model from the parsed headers. */
static ryz_status hf_place(ckpt_table *tab, const hf_files *files, const st_header *hdr,
                           const char *dir, int tied) {
    char name[96];
    for (int i = 0; i < tab->ntensors; i++) {
        uint32_t t = ckpt_tensor_id(&tab->cfg, i);
        if (t == RYZ_T_CLS && tied)
            continue;
        hf_name(t, name, sizeof name);
        int fi = hf_file_of(files, name, dir);
        if (fi < 0)
            return RYZ_EINVAL;
        const st_tensor *s = st_find(&hdr[fi], name);
        if (!s)
            return ryz_error(RYZ_EINVAL, "%s: tensor %s missing", tab->files[fi].path, name);
        int64_t rows, cols;
        ckpt_tensor_shape(&tab->cfg, t, &rows, &cols);
        ckpt_tensor *e = ckpt_table_slot(tab, t);
        ryz_status st = st_to_slot(e, s, fi, tab->files[fi].path, rows, cols);
        if (st != RYZ_OK)
            return st;
        e->perm_hd = hf_perm(&tab->cfg, t);
    }
    if (tied)
        *ckpt_table_slot(tab, RYZ_T_CLS) = *ckpt_table_slot(tab, RYZ_T_EMBED);
    return RYZ_OK;
}

/* Opens every weight file into fs[] and reads its header into hdr[]; the
 * files must hold at least the config's tensor count (checked before a
 * table is sized from the config). */
static ryz_status hf_open_files(const hf_files *files, const char *dir, const char *cfg_path,
                                const ryz_model_config *c, int tied, ckpt_file *fs,
                                st_header *hdr) {
    ryz_status st = RYZ_OK;
    int64_t have = 0, need = ckpt_tensor_count(c) - tied;
    for (int i = 0; st == RYZ_OK && i < files->n; i++) {
        char *p = ckpt_path_join(dir, files->names[i]);
        st = p ? ckpt_file_open(p, &fs[i]) : ryz_error(RYZ_ENOMEM, "out of memory");
        if (st == RYZ_OK)
            st = st_read(&hdr[i], &fs[i]);
        have += hdr[i].n;
        free(p);
    }
    if (st == RYZ_OK && have < need)
        st = ryz_error(RYZ_EINVAL,
                       "%s: num_hidden_layers %d needs %lld tensors, the weight files hold %lld",
                       cfg_path, c->n_layers, (long long)need, (long long)have);
    return st;
}

ryz_status hf_open(const char *dir, const json_doc *config, ryz_model_config *cfg,
                   ryz_weights **out) {
    char *cfg_path = ckpt_path_join(dir, "config.json");
    hf_files files = {.map = -1};
    ckpt_table tab = {0};
    st_header *hdr = NULL;
    ckpt_file *fs = NULL;
    int tied = 0;
    ryz_status st = cfg_path ? hf_parse_config(cfg_path, config, cfg, &tied)
                             : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK)
        st = hf_list_files(dir, &files);
    if (st == RYZ_OK && (!(hdr = calloc((size_t)files.n, sizeof *hdr)) ||
                         !(fs = calloc((size_t)files.n, sizeof *fs))))
        st = ryz_error(RYZ_ENOMEM, "out of memory");
    for (int i = 0; fs && i < files.n; i++)
        fs[i].fd = -1;
    if (st == RYZ_OK)
        st = hf_open_files(&files, dir, cfg_path, cfg, tied, fs, hdr);
    if (st == RYZ_OK)
        st = ckpt_table_init(&tab, cfg, files.n);
    for (int i = 0; st == RYZ_OK && i < files.n; i++) { /* the table owns the files */
        tab.files[i] = fs[i];
        fs[i] = (ckpt_file){.fd = -1};
    }
    if (st == RYZ_OK)
        st = hf_place(&tab, &files, hdr, dir, tied);
    if (st == RYZ_OK)
        st = ckpt_table_complete(&tab, dir);
    if (st == RYZ_OK)
        st = ckpt_table_source(&tab, "hf", out);
    for (int i = 0; fs && i < files.n; i++)
        ckpt_file_close(&fs[i]), st_free(&hdr[i]);
    free(fs);
    free(hdr);
    hf_files_free(&files);
    ckpt_table_free(&tab);
    free(cfg_path);
    return st;
}

/* =============================================================== export */

/* config.json of a float32 LlamaForCausalLM with an untied LM head. */
static ryz_status hf_write_config(const char *dir, const ryz_model_config *c) {
    char eps[32], theta[32], *text = NULL, *path = ckpt_path_join(dir, "config.json");
    size_t len = 0;
    ckpt_format_float(c->norm_eps, eps, sizeof eps);
    ckpt_format_float(c->rope_base, theta, sizeof theta);
    FILE *f = path ? open_memstream(&text, &len) : NULL;
    if (!f)
        return free(path), ryz_error(RYZ_ENOMEM, "out of memory");
    fprintf(f,
            "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
            "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n"
            "  \"rope_theta\": %s,\n  \"tie_word_embeddings\": false,\n"
            "  \"torch_dtype\": \"float32\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n",
            c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->seq_len, eps,
            theta);
    fclose(f);
    ryz_status st = ckpt_write_file(path, text, len);
    free(text);
    free(path);
    return st;
}

/* model.safetensors: every tensor, float32, q/k permuted. */
static ryz_status hf_write_weights(const char *dir, const ryz_model_config *c, ryz_weights *w) {
    int n = ckpt_tensor_count(c);
    st_entry *e = calloc((size_t)n, sizeof *e);
    char *path = ckpt_path_join(dir, "model.safetensors");
    ckpt_out o = {0};
    ryz_status st = e && path ? ckpt_out_open(&o, path, 0) : ryz_error(RYZ_ENOMEM, "out of memory");
    for (int i = 0; st == RYZ_OK && i < n; i++) {
        uint32_t t = ckpt_tensor_id(c, i);
        hf_name(t, e[i].name, sizeof e[i].name);
        ckpt_tensor_shape(c, t, &e[i].shape[0], &e[i].shape[1]);
        uint32_t k = ckpt_tensor_kind(t);
        e[i].ndim = k == RYZ_T_ATT_NORM || k == RYZ_T_FFN_NORM || k == RYZ_T_FINAL_NORM ? 1 : 2;
        if (e[i].ndim == 1)
            e[i].shape[0] = e[i].shape[1];
    }
    if (st == RYZ_OK)
        st = st_write_header(&o, e, n, NULL, 0);
    for (int i = 0; st == RYZ_OK && i < n; i++) {
        uint32_t t = ckpt_tensor_id(c, i);
        int64_t rows, cols;
        ckpt_tensor_shape(c, t, &rows, &cols);
        st = ckpt_out_block(&o, w, t, 0, rows, 0, (int)cols, hf_perm(c, t));
    }
    if (st == RYZ_OK)
        st = ckpt_out_commit(&o, NULL);
    ckpt_out_abort(&o);
    free(e);
    free(path);
    return st;
}

ryz_status ryz_ckpt_export_hf(const char *dir, const ryz_model_config *cfg, ryz_weights *w) {
    ryz_status st = ckpt_check_config(dir, cfg);
    if (st == RYZ_OK)
        st = ckpt_mkdir(dir);
    if (st == RYZ_OK)
        st = hf_write_weights(dir, cfg, w);
    if (st == RYZ_OK)
        st = hf_write_config(dir, cfg);
    return st;
}
