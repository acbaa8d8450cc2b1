/* results/hdf5.c: the results file (DESIGN section 5). Root attributes hold
 * ryz_results_meta; each table is a 1-D compound dataset (/correctness,
 * /timing, /collectives, /memory, /samples, /acceptance) whose members are the C fields
 * of its row, by name. Both directions are driven by the field tables of
 * schema.h. HDF5's own error printing is off while we are in here; its
 * innermost message is appended to ours instead. */
#define _POSIX_C_SOURCE 200809L

#include "schema.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_ROWS 4096 /* rows per dataset chunk */
#define MSG_MAX 512
#define DSET_NAME_MAX 64

/* HDF5's automatic error printing, saved while it is silenced. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet_state;

/* Silences HDF5's error stack printing, saving the previous handler in q. */
static void h5_quiet(h5_quiet_state *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Restores the handler h5_quiet saved. */
static void h5_loud(const h5_quiet_state *q) {
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

/* H5Ewalk2 callback: keeps the first (innermost) description in `buf`. A
 * failed system call reads "what: time = ..., error message = 'why', ...";
 * of that only "what: why" is kept. */
static herr_t keep_innermost(unsigned n, const H5E_error2_t *e, void *buf) {
    static const char key[] = "error message = '";
    (void)n;
    if (((char *)buf)[0] != '\0' || !e->desc)
        return 0;
    const char *why = strstr(e->desc, key);
    if (why) {
        why += sizeof key - 1;
        snprintf(buf, MSG_MAX, "%.*s: %.*s", (int)strcspn(e->desc, ":"), e->desc,
                 (int)strcspn(why, "'"), why);
    } else {
        snprintf(buf, MSG_MAX, "%s", e->desc);
    }
    return 0;
}

/* Records `s` with "PATH: <formatted what>" plus, when HDF5 has one, the
 * innermost message of its error stack; returns `s`. Call it right after
 * the failing HDF5 call, before anything clears the stack. */
__attribute__((format(printf, 3, 4))) static ryz_status h5_fail(ryz_status s, const char *path,
                                                                const char *fmt, ...) {
    char what[MSG_MAX], detail[MSG_MAX] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, detail);
    H5Eclear2(H5E_DEFAULT);
    if (detail[0])
        return ryz_error(s, "%s: %s (HDF5: %s)", path, what, detail);
    return ryz_error(s, "%s: %s", path, what);
}

/* Closes `id` with `close_fn` when it is a valid id (>= 0). */
static void close_id(hid_t id, herr_t (*close_fn)(hid_t)) {
    if (id >= 0)
        close_fn(id);
}

/* A new fixed-length, NUL-terminated C string type of `size` bytes; -1 on failure. */
static hid_t str_type(size_t size) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, size) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* A new in-memory type of a row field (strings: char[f->size]); -1 on failure. */
static hid_t field_type(const ryz_field *f) {
    switch (f->type) {
    case RYZ_FIELD_STR:
        return str_type(f->size);
    case RYZ_FIELD_I32:
        return H5Tcopy(H5T_NATIVE_INT32);
    case RYZ_FIELD_U64:
        return H5Tcopy(H5T_NATIVE_UINT64);
    case RYZ_FIELD_F64:
        return H5Tcopy(H5T_NATIVE_DOUBLE);
    }
    return -1;
}

/* A new compound type with the C layout of a row of `t`; -1 on failure.
 * With a file type `ftype` (>= 0), only the fields it has a member of, so
 * a file of an older schema reads into the current rows. */
static hid_t row_type(const ryz_table_desc *t, hid_t ftype) {
    hid_t ct = H5Tcreate(H5T_COMPOUND, t->row_size);
    for (size_t i = 0; ct >= 0 && i < t->nfields; i++) {
        const ryz_field *f = &t->fields[i];
        if (ftype >= 0 && H5Tget_member_index(ftype, f->name) < 0)
            continue;
        hid_t ft = field_type(f);
        herr_t rc = ft < 0 ? -1 : H5Tinsert(ct, f->name, f->offset, ft);
        close_id(ft, H5Tclose);
        if (rc < 0) {
            H5Tclose(ct);
            ct = -1;
        }
    }
    return ct;
}

/* ---- writing ---- */

/* Writes the scalar root attribute `name` of `type` from `buf`. EIO naming
 * `path` and the attribute on failure. */
static ryz_status write_attr(hid_t file, const char *name, hid_t type, const void *buf,
                             const char *path) {
    ryz_status st = RYZ_OK;
    hid_t space = H5Screate(H5S_SCALAR), attr = -1;
    if (space >= 0 && type >= 0)
        attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, buf) < 0)
        st = h5_fail(RYZ_EIO, path, "writing root attribute %s failed", name);
    close_id(attr, H5Aclose);
    close_id(space, H5Sclose);
    return st;
}

/* Writes every field of `m` as a root attribute; NULL strings as "". */
static ryz_status write_meta(hid_t file, const ryz_results_meta *m, const char *path) {
    ryz_status st = RYZ_OK;
    for (size_t i = 0; st == RYZ_OK && i < ryz_results_n_meta_fields; i++) {
        const ryz_field *f = &ryz_results_meta_fields[i];
        const void *buf = (const char *)m + f->offset;
        hid_t type;
        if (f->type == RYZ_FIELD_STR) {
            const char *s = *(const char *const *)buf;
            buf = s ? s : "";
            type = str_type(strlen(buf) + 1);
        } else {
            type = field_type(f);
        }
        st = write_attr(file, f->name, type, buf, path);
        close_id(type, H5Tclose);
    }
    return st;
}

/* Writes table `t` of `r` as the dataset /NAME: packed compound file type,
 * chunked with unlimited extent, so an empty table is a 0-row dataset.
 * EIO naming `path` and the dataset on failure. */
static ryz_status write_table(hid_t file, const ryz_results *r, const ryz_table_desc *t,
                              const char *path) {
    ryz_status st = RYZ_OK;
    char name[DSET_NAME_MAX];
    hsize_t n = ryz_table_count(r, t), maxdim = H5S_UNLIMITED;
    hsize_t chunk = n == 0 ? 1 : n < CHUNK_ROWS ? n : CHUNK_ROWS;
    hid_t mtype = row_type(t, -1), ftype = -1, space = -1, dcpl = -1, dset = -1;
    snprintf(name, sizeof name, "/%s", t->name);
    if (mtype >= 0)
        ftype = H5Tcopy(mtype);
    if (ftype < 0 || H5Tpack(ftype) < 0) {
        st = h5_fail(RYZ_EIO, path, "building the type of %s failed", name);
        goto cleanup;
    }
    space = H5Screate_simple(1, &n, &maxdim);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0) {
        st = h5_fail(RYZ_EIO, path, "preparing %s failed", name);
        goto cleanup;
    }
    dset = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) {
        st = h5_fail(RYZ_EIO, path, "creating %s failed", name);
        goto cleanup;
    }
    if (n > 0 && H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, ryz_table_rows(r, t)) < 0)
        st = h5_fail(RYZ_EIO, path, "writing %llu rows of %s failed", (unsigned long long)n, name);
cleanup:
    close_id(dset, H5Dclose);
    close_id(dcpl, H5Pclose);
    close_id(space, H5Sclose);
    close_id(ftype, H5Tclose);
    close_id(mtype, H5Tclose);
    return st;
}

/* Writes the whole of buf to the new file `tmp` with plain write(2), so a
 * full disk is an errno, not an HDF5 state. EIO naming `path`. */
static ryz_status write_bytes(const char *tmp, const void *buf, size_t n, const char *path) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return ryz_error(RYZ_EIO, "%s: cannot create temporary file %s: %s", path, tmp,
                         strerror(errno));
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : ENOSPC;
            close(fd);
            return ryz_error(RYZ_EIO, "%s: writing %s failed: %s", path, tmp, strerror(err));
        }
        p += w, n -= (size_t)w;
    }
    if (close(fd) != 0)
        return ryz_error(RYZ_EIO, "%s: closing %s failed: %s", path, tmp, strerror(errno));
    return RYZ_OK;
}

/* Builds all of `r` as an HDF5 image in memory (the core driver, no backing
 * store) and writes it to `tmp`. EIO naming `path` on failure (the caller
 * removes `tmp`). */
static ryz_status write_hdf5(const ryz_results *r, const char *tmp, const char *path) {
    ryz_status st = RYZ_OK;
    void *image = NULL;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), file = -1;
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0)
        st = h5_fail(RYZ_EIO, path, "cannot set up an in-memory HDF5 file");
    if (st == RYZ_OK && (file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
        st = h5_fail(RYZ_EIO, path, "cannot create in-memory file %s", tmp);
    if (st == RYZ_OK)
        st = write_meta(file, &r->meta, path);
    for (size_t i = 0; st == RYZ_OK && i < RYZ_RESULTS_NTABLES; i++)
        st = write_table(file, r, &ryz_results_tables[i], path);
    if (st == RYZ_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        st = h5_fail(RYZ_EIO, path, "H5Fflush of %s failed", tmp);
    ssize_t size = st == RYZ_OK ? H5Fget_file_image(file, NULL, 0) : -1;
    if (st == RYZ_OK && (size <= 0 || !(image = malloc((size_t)size)) ||
                         H5Fget_file_image(file, image, (size_t)size) != size))
        st = h5_fail(RYZ_EIO, path, "cannot take the image of %s", tmp);
    if (file >= 0 && H5Fclose(file) < 0 && st == RYZ_OK)
        st = h5_fail(RYZ_EIO, path, "H5Fclose of %s failed", tmp);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (st == RYZ_OK)
        st = write_bytes(tmp, image, (size_t)size, path);
    free(image);
    return st;
}

/* Opens `file` read-only (as a directory when `dir`) and fsyncs it. EIO
 * naming `path` and `file` on failure; a directory whose filesystem cannot
 * fsync directories (EINVAL) is accepted. */
static ryz_status fsync_file(const char *file, int dir, const char *path) {
    int fd = open(file, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return ryz_error(RYZ_EIO, "%s: cannot open %s to fsync it: %s", path, file,
                         strerror(errno));
    int rc = fsync(fd), err = errno;
    close(fd);
    if (rc != 0 && !(dir && err == EINVAL))
        return ryz_error(RYZ_EIO, "%s: fsync of %s failed: %s", path, file, strerror(err));
    return RYZ_OK;
}

/* The directory part of `path`, malloc'd: "." without a slash, "/" for
 * "/name". NULL when out of memory. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

ryz_status ryz_results_write(const ryz_results *r, const char *path) {
    RYZ_ASSERT(r && path);
    ryz_status st = RYZ_OK;
    int renamed = 0;
    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len), *dir = dir_of(path);
    h5_quiet_state q;
    h5_quiet(&q);
    if (!tmp || !dir) {
        st = ryz_error(RYZ_ENOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    st = write_hdf5(r, tmp, path);
    if (st == RYZ_OK)
        st = fsync_file(tmp, 0, path);
    if (st != RYZ_OK)
        goto cleanup;
    if (rename(tmp, path) != 0) {
        st = ryz_error(RYZ_EIO, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        goto cleanup;
    }
    renamed = 1;
    st = fsync_file(dir, 1, path);
cleanup:
    if (st != RYZ_OK && tmp && !renamed)
        unlink(tmp);
    h5_loud(&q);
    free(tmp);
    free(dir);
    return st;
}

/* ---- reading ---- */

/* Reads the string attribute `attr` (fixed- or variable-length) into a new
 * malloc'd *out. -1 on failure (HDF5 stack set, or out of memory). */
static int read_str_attr(hid_t attr, char **out) {
    int rc = -1;
    hid_t ftype = H5Aget_type(attr), mtype = -1;
    char *vl = NULL, *buf = NULL;
    if (ftype < 0 || H5Tget_class(ftype) != H5T_STRING)
        goto cleanup;
    if (H5Tis_variable_str(ftype) > 0) {
        mtype = H5Tcopy(H5T_C_S1);
        if (mtype < 0 || H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Aread(attr, mtype, &vl) < 0)
            goto cleanup;
        buf = strdup(vl ? vl : "");
    } else {
        size_t size = H5Tget_size(ftype);
        buf = calloc(size + 1, 1);
        if (buf && H5Aread(attr, ftype, buf) < 0)
            goto cleanup;
    }
    if (buf) {
        *out = buf;
        buf = NULL;
        rc = 0;
    }
cleanup:
    if (vl)
        H5free_memory(vl);
    free(buf);
    close_id(mtype, H5Tclose);
    close_id(ftype, H5Tclose);
    return rc;
}

/* Reads the root attribute of field `f` into `m`, from a file of schema
 * `version`. EINVAL when it is missing and `version` has it (one that
 * predates it leaves the field as it is: NULL or 0), EIO when it cannot be
 * read as its type; messages name `path`. */
static ryz_status read_meta_field(hid_t file, const ryz_field *f, int version,
                                  ryz_results_meta *m, const char *path) {
    ryz_status st = RYZ_OK;
    char *dst = (char *)m + f->offset;
    htri_t exists = H5Aexists(file, f->name);
    if (exists == 0 && f->since > version)
        return RYZ_OK;
    if (exists < 0)
        return h5_fail(RYZ_EIO, path, "cannot look up root attribute %s", f->name);
    if (exists == 0)
        return ryz_error(RYZ_EINVAL, "%s: missing root attribute %s (not a ryz results file?)",
                         path, f->name);
    hid_t attr = H5Aopen(file, f->name, H5P_DEFAULT), type = -1;
    int rc = -1;
    if (attr >= 0 && f->type == RYZ_FIELD_STR) {
        char *s = NULL;
        rc = read_str_attr(attr, &s);
        if (rc == 0) {
            free(*(char **)dst);
            *(char **)dst = s;
        }
    } else if (attr >= 0 && (type = field_type(f)) >= 0) {
        rc = H5Aread(attr, type, dst);
    }
    if (rc < 0)
        st = h5_fail(RYZ_EIO, path, "cannot read root attribute %s", f->name);
    close_id(type, H5Tclose);
    close_id(attr, H5Aclose);
    return st;
}

/* Reads every root attribute into `m`, the schema version first: EINVAL
 * when it is outside [RYZ_RESULTS_SCHEMA_OLDEST, RYZ_RESULTS_SCHEMA]. */
static ryz_status read_meta(hid_t file, ryz_results_meta *m, const char *path) {
    ryz_status st = read_meta_field(file, &ryz_results_meta_fields[0], 0, m, path);
    if (st != RYZ_OK)
        return st;
    if (m->schema_version < RYZ_RESULTS_SCHEMA_OLDEST || m->schema_version > RYZ_RESULTS_SCHEMA)
        return ryz_error(RYZ_EINVAL, "%s: schema version %d, this build reads %d to %d", path,
                         (int)m->schema_version, RYZ_RESULTS_SCHEMA_OLDEST, RYZ_RESULTS_SCHEMA);
    for (size_t i = 1; st == RYZ_OK && i < ryz_results_n_meta_fields; i++)
        st = read_meta_field(file, &ryz_results_meta_fields[i], m->schema_version, m, path);
    return st;
}

/* HDF5 class a field of `type` must have in the file, and its name. */
static H5T_class_t field_class(ryz_field_type type, const char **what) {
    static const char *const names[] = {"string", "integer", "integer", "float"};
    *what = names[type];
    return type == RYZ_FIELD_STR ? H5T_STRING : type == RYZ_FIELD_F64 ? H5T_FLOAT : H5T_INTEGER;
}

/* EINVAL (naming `path` and dataset `name`) unless the file type `ftype` is
 * a compound with a member for every field of `t` that schema `version`
 * has, of the same class, and strings of the field's length, or in a file
 * of an older schema no longer (its shorter string reads padded; a longer
 * one would be cut). HDF5 converts the rest by member name. */
static ryz_status check_layout(hid_t ftype, const ryz_table_desc *t, int version,
                               const char *path, const char *name) {
    if (H5Tget_class(ftype) != H5T_COMPOUND)
        return ryz_error(RYZ_EINVAL, "%s: %s is not a compound (table) dataset", path, name);
    for (size_t i = 0; i < t->nfields; i++) {
        const ryz_field *f = &t->fields[i];
        const char *what;
        H5T_class_t want = field_class(f->type, &what);
        int idx = H5Tget_member_index(ftype, f->name);
        if (idx < 0 && f->since > version)
            continue; /* added after this file's version: reads as 0 */
        if (idx < 0)
            return ryz_error(RYZ_EINVAL, "%s: %s has no member %s", path, name, f->name);
        hid_t mt = H5Tget_member_type(ftype, (unsigned)idx);
        size_t size = mt < 0 ? 0 : H5Tget_size(mt);
        int fits = size == f->size || (version < RYZ_RESULTS_SCHEMA && size < f->size);
        int ok = mt >= 0 && H5Tget_class(mt) == want && (want != H5T_STRING || fits);
        close_id(mt, H5Tclose);
        if (!ok)
            return ryz_error(RYZ_EINVAL, "%s: member %s of %s is not a %s%s", path, f->name, name,
                             what, want == H5T_STRING ? " of the expected length" : "");
    }
    return RYZ_OK;
}

/* Reads the dataset /NAME of table `t`, written with schema `version`,
 * into `r` (replacing its rows); fields the file lacks are 0, and a table
 * added after `version` that the file lacks is empty. EINVAL when missing
 * (and `version` has it) or of another layout, EIO when unreadable,
 * ENOMEM. */
static ryz_status read_table(hid_t file, ryz_results *r, const ryz_table_desc *t, int version,
                             const char *path) {
    ryz_status st = RYZ_OK;
    char name[DSET_NAME_MAX];
    hsize_t n = 0;
    size_t bytes = 0;
    void *rows = NULL;
    hid_t dset = -1, ftype = -1, space = -1, mtype = -1;
    snprintf(name, sizeof name, "/%s", t->name);
    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    if (exists == 0 && t->since > version) {
        ryz_table_set(r, t, NULL, 0, 0); /* added after this file's version: empty */
        return RYZ_OK;
    }
    if (exists <= 0)
        return ryz_error(RYZ_EINVAL, "%s: no dataset %s (not a ryz results file?)", path, name);
    if ((dset = H5Dopen2(file, name, H5P_DEFAULT)) < 0 || (ftype = H5Dget_type(dset)) < 0 ||
        (space = H5Dget_space(dset)) < 0) {
        st = h5_fail(RYZ_EIO, path, "cannot open %s", name);
        goto cleanup;
    }
    if (H5Sget_simple_extent_ndims(space) != 1 || H5Sget_simple_extent_dims(space, &n, NULL) < 0) {
        st = ryz_error(RYZ_EINVAL, "%s: %s is not a 1-D dataset", path, name);
        goto cleanup;
    }
    if ((st = check_layout(ftype, t, version, path, name)) != RYZ_OK)
        goto cleanup;
    /* calloc: the fields an older file lacks read as 0 */
    if (n > 0 && (n > SIZE_MAX || !ryz_mul_ok((size_t)n, t->row_size, &bytes) ||
                  !(rows = calloc(1, bytes)))) {
        st = ryz_error(RYZ_ENOMEM, "%s: out of memory for %llu rows of %s", path,
                       (unsigned long long)n, name);
        goto cleanup;
    }
    if (n > 0 && ((mtype = row_type(t, ftype)) < 0 ||
                  H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0)) {
        st = h5_fail(RYZ_EIO, path, "cannot read %llu rows of %s", (unsigned long long)n, name);
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)n; i++)
        ryz_table_normalize_row(t, (char *)rows + i * t->row_size);
    ryz_table_set(r, t, rows, (size_t)n, (size_t)n);
    rows = NULL;
cleanup:
    free(rows);
    close_id(mtype, H5Tclose);
    close_id(space, H5Sclose);
    close_id(ftype, H5Tclose);
    close_id(dset, H5Dclose);
    return st;
}

ryz_status ryz_results_read(const char *path, ryz_results *out) {
    RYZ_ASSERT(path && out);
    ryz_status st = RYZ_OK;
    hid_t file = -1;
    h5_quiet_state q;
    ryz_results_init(out);
    struct stat sb;
    int fd;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ryz_error(RYZ_EIO, "%s: is a directory (want a results file, such as `ryz suite "
                         "-o` writes)", path);
    if ((st = ryz_open_regular(path, &fd)) != RYZ_OK) /* HDF5 would block on a FIFO */
        return st;
    close(fd);
    h5_quiet(&q);
    if (H5Fis_hdf5(path) <= 0) {
        st = ryz_error(RYZ_EIO, "%s: not an HDF5 file", path);
        goto cleanup;
    }
    if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        st = h5_fail(RYZ_EIO, path, "cannot open");
        goto cleanup;
    }
    st = read_meta(file, &out->meta, path);
    for (size_t i = 0; st == RYZ_OK && i < RYZ_RESULTS_NTABLES; i++)
        st = read_table(file, out, &ryz_results_tables[i], out->meta.schema_version, path);
cleanup:
    close_id(file, H5Fclose);
    if (st != RYZ_OK) {
        ryz_results_free(out);
        ryz_results_init(out);
    }
    h5_loud(&q);
    return st;
}

/* ---- checking ---- */

ryz_status ryz_results_check_writable(const char *path) {
    RYZ_ASSERT(path);
    ryz_status st = RYZ_OK;
    struct stat sb;
    char *dir = NULL, *probe = NULL;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ryz_error(RYZ_EIO, "%s: is a directory, not a results file name", path);
    size_t probe_len = strlen(path) + 32;
    if (!(dir = dir_of(path)) || !(probe = malloc(probe_len))) {
        st = ryz_error(RYZ_ENOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    int found = stat(dir, &sb) == 0;
    if (!found || !S_ISDIR(sb.st_mode)) {
        const char *why = found             ? "not a directory"
                          : errno == ENOENT ? "does not exist"
                                            : strerror(errno);
        st = ryz_error(RYZ_EIO, "cannot write results to %s: directory %s: %s", path, dir, why);
        goto cleanup;
    }
    snprintf(probe, probe_len, "%s/.ryz-probe.XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0) {
        st = ryz_error(RYZ_EIO,
                       "cannot write results to %s: cannot create a file in directory %s: %s", path,
                       dir, strerror(errno));
        goto cleanup;
    }
    close(fd);
    unlink(probe);
cleanup:
    free(probe);
    free(dir);
    return st;
}
