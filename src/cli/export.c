/* ryz export: writes any model source as a llama2.c checkpoint or a Hugging
 * Face directory, so other tools can run exactly the model we ran. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "ryz/cli.h"
#include "ryz/model.h"

typedef struct {
    const char *model, *format, *out;
} export_args;

/* The --help text. */
static void export_usage(FILE *f) {
    fprintf(f, "usage: ryz export --model SRC --format llama2c|hf --out PATH\n"
               "  llama2c: a version-0 .bin (float32, separate classifier: negative vocab).\n"
               "  hf: a directory with config.json and model.safetensors (float32, q/k rows\n"
               "  permuted the Hugging Face way). Streams one tensor at a time.\n"
               "  SRC: synthetic:PRESET[,key=value...] or any checkpoint ryz reads.\n");
}

/* Parses the options; EINVAL naming a bad or missing one. */
static ryz_status export_parse(int argc, char **argv, export_args *a, int *help) {
    *a = (export_args){0};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h"))
            *help = 1;
        else if (!strcmp(o, "--model"))
            a->model = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--format"))
            a->format = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--out"))
            a->out = ryz_arg_value(argc, argv, &i);
        else
            return ryz_error(RYZ_EINVAL, "export: unknown option '%s' (see --help)", o);
    }
    if (*help)
        return RYZ_OK;
    if (!a->model || !a->format || !a->out)
        return ryz_error(RYZ_EINVAL, "export: --model, --format and --out are required");
    if (strcmp(a->format, "llama2c") != 0 && strcmp(a->format, "hf") != 0)
        return ryz_error(RYZ_EINVAL, "export: --format '%s' is not llama2c or hf", a->format);
    return RYZ_OK;
}

int ryz_cmd_export(int argc, char **argv) {
    export_args a;
    int help;
    ryz_model_config cfg;
    ryz_weights *w = NULL;
    ryz_status st = export_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        export_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK)
        st = ryz_model_source_open(a.model, 1, 0, &cfg, &w);
    if (st == RYZ_OK)
        st = ryz_config_validate(&cfg, 1);
    if (st == RYZ_OK)
        st = !strcmp(a.format, "hf") ? ryz_ckpt_export_hf(a.out, &cfg, w)
                                     : ryz_ckpt_export_llama2c(a.out, &cfg, w);
    if (st == RYZ_OK)
        printf("wrote %s (%s)\n", a.out, a.format);
    ryz_weights_close(w);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
