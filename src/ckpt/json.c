/* A small strict JSON parser (RFC 8259) for config.json, index files and
 * safetensors headers: strings decoded in place, bounded depth and size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_NODES (1 << 21)

typedef struct {
    json_doc *d;
    char *s;       /* text */
    size_t len, i; /* length and cursor */
    int depth;
} parser;

/* EINVAL "JSON syntax error at byte N: what". */
static ryz_status syntax(const parser *p, const char *what) {
    return ryz_error(RYZ_EINVAL, "JSON syntax error at byte %zu: %s", p->i, what);
}

/* Skips JSON whitespace. */
static void skip_ws(parser *p) {
    while (p->i < p->len && p->s[p->i] && strchr(" \t\r\n", p->s[p->i]))
        p->i++;
}

/* Appends a node of type t; its index in *out. */
static ryz_status new_node(parser *p, json_type t, int *out) {
    json_doc *d = p->d;
    if (d->n == d->cap) {
        if (d->cap >= JSON_MAX_NODES)
            return ryz_error(RYZ_EINVAL, "JSON has more than %d values", JSON_MAX_NODES);
        int cap = d->cap ? d->cap * 2 : 64;
        json_node *n = realloc(d->nodes, (size_t)cap * sizeof *n);
        if (!n)
            return ryz_error(RYZ_ENOMEM, "out of memory parsing JSON");
        d->nodes = n, d->cap = cap;
    }
    d->nodes[d->n] = (json_node){.type = t, .child = -1, .next = -1};
    *out = d->n++;
    return RYZ_OK;
}

/* Four hex digits at s into *out; 0 when not hex. */
static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int x = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (x < 0)
            return 0;
        v = v * 16 + (unsigned)x;
    }
    *out = v;
    return 1;
}

/* Writes code point cp as UTF-8 at *w. */
static void put_utf8(char **w, unsigned cp) {
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80)
        *o++ = (unsigned char)cp;
    else if (cp < 0x800)
        *o++ = (unsigned char)(0xc0 | cp >> 6), *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    else if (cp < 0x10000)
        *o++ = (unsigned char)(0xe0 | cp >> 12), *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    else
        *o++ = (unsigned char)(0xf0 | cp >> 18), *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    *w = (char *)o;
}

/* \uXXXX (and a following low surrogate) at p->i (after the 'u'). */
static ryz_status unicode_escape(parser *p, char **w) {
    unsigned cp, lo;
    if (p->i + 4 > p->len || !hex4(p->s + p->i, &cp))
        return syntax(p, "bad \\u escape");
    p->i += 4;
    if (cp >= 0xdc00 && cp < 0xe000)
        return syntax(p, "lone low surrogate");
    if (cp >= 0xd800 && cp < 0xdc00) {
        if (p->i + 6 > p->len || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
            !hex4(p->s + p->i + 2, &lo) || lo < 0xdc00 || lo >= 0xe000)
            return syntax(p, "unpaired high surrogate");
        p->i += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (cp == 0)
        return syntax(p, "NUL character in string");
    put_utf8(w, cp);
    return RYZ_OK;
}

/* A string at p->i (on the quote), decoded in place; *out points at it. */
static ryz_status parse_string(parser *p, const char **out) {
    static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
    char *w = p->s + ++p->i, *start = w;
    for (;;) {
        if (p->i >= p->len)
            return syntax(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"')
            break;
        if (c < 0x20)
            return syntax(p, "control character in string");
        if (c != '\\') {
            *w++ = (char)c;
            continue;
        }
        if (p->i >= p->len)
            return syntax(p, "unterminated string");
        char e = p->s[p->i++];
        const char *k = e ? strchr(esc_in, e) : NULL;
        if (k)
            *w++ = esc_out[k - esc_in];
        else if (e == 'u') {
            ryz_status st = unicode_escape(p, &w);
            if (st != RYZ_OK)
                return st;
        } else
            return syntax(p, "bad escape");
    }
    *w = '\0'; /* w < the closing quote: decoding never grows */
    *out = start;
    return RYZ_OK;
}

/* Index after the run of decimal digits starting at i. */
static size_t digits(const parser *p, size_t i) {
    while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
        i++;
    return i;
}

/* A number: RFC 8259 grammar; integers that fit int64 keep their exact
 * value. */
static ryz_status parse_number(parser *p, json_node *n) {
    size_t b = p->i, i = b + (p->s[b] == '-');
    size_t e = digits(p, i);
    if (e == i || (p->s[i] == '0' && e > i + 1))
        return syntax(p, "bad number");
    int integer = 1;
    if (e < p->len && p->s[e] == '.') {
        size_t f = digits(p, e + 1);
        if (f == e + 1)
            return syntax(p, "bad number");
        e = f, integer = 0;
    }
    if (e < p->len && (p->s[e] == 'e' || p->s[e] == 'E')) {
        size_t x = e + 1 + (e + 1 < p->len && (p->s[e + 1] == '+' || p->s[e + 1] == '-'));
        size_t f = digits(p, x);
        if (f == x)
            return syntax(p, "bad number");
        e = f, integer = 0;
    }
    char buf[64];
    if (e - b >= sizeof buf)
        return syntax(p, "number longer than 63 characters");
    memcpy(buf, p->s + b, e - b);
    buf[e - b] = '\0';
    n->num = strtod(buf, NULL);
    if (!isfinite(n->num))
        return syntax(p, "number out of range");
    int64_t v = 0;
    int neg = buf[0] == '-';
    for (const char *c = buf + neg; integer && *c; c++) {
        int dg = *c - '0';
        if (v > (INT64_MAX - dg) / 10)
            integer = 0;
        else
            v = v * 10 + dg;
    }
    n->is_int = integer;
    n->i = neg ? -v : v;
    p->i = e;
    return RYZ_OK;
}

static ryz_status parse_value(parser *p, int *out);

/* The members or elements of an object or array at p->i (on the bracket). */
static ryz_status parse_container(parser *p, int self, int obj) {
    char close = obj ? '}' : ']';
    int last = -1;
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == close)
        return p->i++, RYZ_OK;
    for (;;) {
        const char *key = NULL;
        int child;
        ryz_status st;
        skip_ws(p);
        if (obj) {
            if (p->i >= p->len || p->s[p->i] != '"')
                return syntax(p, "expected a member name");
            if ((st = parse_string(p, &key)) != RYZ_OK)
                return st;
            skip_ws(p);
            if (p->i >= p->len || p->s[p->i] != ':')
                return syntax(p, "expected ':'");
            p->i++;
        }
        if ((st = parse_value(p, &child)) != RYZ_OK)
            return st;
        json_node *nodes = p->d->nodes;
        nodes[child].key = key;
        if (last < 0)
            nodes[self].child = child;
        else
            nodes[last].next = child;
        last = child;
        nodes[self].count++;
        skip_ws(p);
        if (p->i < p->len && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->len && p->s[p->i] == close)
            return p->i++, RYZ_OK;
        return syntax(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* Literal `word` at p->i. */
static int literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->i < n || memcmp(p->s + p->i, word, n) != 0)
        return 0;
    p->i += n;
    return 1;
}

/* Any value at p->i (after whitespace); its node index in *out. */
static ryz_status parse_value(parser *p, int *out) {
    skip_ws(p);
    if (p->i >= p->len)
        return syntax(p, "unexpected end");
    char c = p->s[p->i];
    json_type t = c == '{'               ? JSON_OBJ
                  : c == '['             ? JSON_ARR
                  : c == '"'             ? JSON_STR
                  : c == 't' || c == 'f' ? JSON_BOOL
                  : c == 'n'             ? JSON_NULL
                                         : JSON_NUM;
    ryz_status st = new_node(p, t, out);
    if (st != RYZ_OK)
        return st;
    json_node *n = &p->d->nodes[*out];
    if (t == JSON_OBJ || t == JSON_ARR) {
        if (++p->depth > JSON_MAX_DEPTH)
            return syntax(p, "nesting deeper than 64");
        st = parse_container(p, *out, t == JSON_OBJ);
        p->depth--;
        return st;
    }
    if (t == JSON_STR)
        return parse_string(p, &n->str);
    if (t == JSON_BOOL) {
        n->boolean = c == 't';
        return literal(p, n->boolean ? "true" : "false") ? RYZ_OK : syntax(p, "bad literal");
    }
    if (t == JSON_NULL)
        return literal(p, "null") ? RYZ_OK : syntax(p, "bad literal");
    if (c != '-' && (c < '0' || c > '9'))
        return syntax(p, "unexpected character");
    return parse_number(p, n);
}

ryz_status json_parse(json_doc *d, char *text, size_t len) {
    memset(d, 0, sizeof *d);
    d->text = text;
    parser p = {.d = d, .s = text, .len = len};
    int root;
    ryz_status st = parse_value(&p, &root);
    skip_ws(&p);
    if (st == RYZ_OK && p.i != len)
        st = syntax(&p, "trailing characters");
    return st;
}

void json_free(json_doc *d) {
    free(d->text);
    free(d->nodes);
    memset(d, 0, sizeof *d);
}

int json_get(const json_doc *d, int obj, const char *key) {
    if (obj < 0 || obj >= d->n || d->nodes[obj].type != JSON_OBJ)
        return -1;
    for (int c = d->nodes[obj].child; c >= 0; c = d->nodes[c].next)
        if (strcmp(d->nodes[c].key, key) == 0)
            return c;
    return -1;
}

const char *json_type_name(json_type t) {
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return names[t];
}

ryz_status json_get_int(const json_doc *d, int obj, const char *key, const char *path, int64_t lo,
                        int64_t hi, const int64_t *def, int64_t *out) {
    int k = json_get(d, obj, key);
    if (k < 0 && def)
        return *out = *def, RYZ_OK;
    if (k < 0)
        return ryz_error(RYZ_EINVAL, "%s: %s missing", path, key);
    const json_node *n = &d->nodes[k];
    if (n->type != JSON_NUM || !n->is_int)
        return ryz_error(RYZ_EINVAL, "%s: %s: expected an integer, got %s", path, key,
                         n->type == JSON_NUM ? "a fraction" : json_type_name(n->type));
    if (n->i < lo || n->i > hi)
        return ryz_error(RYZ_EINVAL, "%s: %s %lld out of range [%lld, %lld]", path, key,
                         (long long)n->i, (long long)lo, (long long)hi);
    *out = n->i;
    return RYZ_OK;
}

ryz_status json_get_num(const json_doc *d, int obj, const char *key, const char *path,
                        const double *def, double *out) {
    int k = json_get(d, obj, key);
    if (k < 0 && def)
        return *out = *def, RYZ_OK;
    if (k < 0)
        return ryz_error(RYZ_EINVAL, "%s: %s missing", path, key);
    if (d->nodes[k].type != JSON_NUM)
        return ryz_error(RYZ_EINVAL, "%s: %s: expected a number, got %s", path, key,
                         json_type_name(d->nodes[k].type));
    *out = d->nodes[k].num;
    return RYZ_OK;
}

void json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

void ckpt_format_float(float x, char *buf, size_t n) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x)
            return;
    }
}
