/* report/gnuplot.c: finding gnuplot and the templates, quoting values for
 * gnuplot, output folders, and running one template (posix_spawn, no
 * shell; stderr captured for the error message). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define GP_ERR_MAX 768 /* gnuplot stderr kept for the message (fits ryz_error's buffer) */

extern char **environ;

ryz_status ryz_plot_find_gnuplot(char *buf, size_t cap) {
    const char *env = getenv("RYZ_GNUPLOT");
    if (env && *env) {
        if (access(env, X_OK) == 0 && (size_t)snprintf(buf, cap, "%s", env) < cap)
            return RYZ_OK;
        return ryz_error(RYZ_EIO,
                         "gnuplot not found: RYZ_GNUPLOT=%s is not an executable "
                         "(install gnuplot-nox: apt-get install gnuplot-nox)",
                         env);
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        if ((size_t)snprintf(buf, cap, "%.*s/gnuplot", (int)len, len ? p : ".") < cap &&
            access(buf, X_OK) == 0)
            return RYZ_OK;
        p += len + (p[len] == ':');
    }
    return ryz_error(RYZ_EIO, "gnuplot not found on PATH: install gnuplot-nox "
                              "(apt-get install gnuplot-nox) or set RYZ_GNUPLOT");
}

/* Whether `dir` holds the templates (its speedup.gp is readable). */
static int holds_templates(const char *dir) {
    char probe[RYZ_PATH_LEN];
    return (size_t)snprintf(probe, sizeof probe, "%s/speedup.gp", dir) < sizeof probe &&
           access(probe, R_OK) == 0;
}

ryz_status ryz_plot_templates_dir(char *buf, size_t cap) {
    const char *env = getenv("RYZ_PLOTS_DIR");
    if (env && *env) {
        if (holds_templates(env) && (size_t)snprintf(buf, cap, "%s", env) < cap)
            return RYZ_OK;
        return ryz_error(RYZ_EIO, "RYZ_PLOTS_DIR=%s holds no speedup.gp", env);
    }
    char exe[RYZ_PATH_LEN];
    if (ryz_self_exe(exe, sizeof exe) == RYZ_OK) {
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        if ((size_t)snprintf(buf, cap, "%s/../plots", exe) < cap && holds_templates(buf))
            return RYZ_OK;
    }
    if (holds_templates("plots") && (size_t)snprintf(buf, cap, "plots") < cap)
        return RYZ_OK;
    return ryz_error(RYZ_EIO, "plot templates not found: tried <executable dir>/../plots and "
                              "./plots (set RYZ_PLOTS_DIR)");
}

ryz_status ryz_plot_quote(const char *s, char *buf, size_t cap) {
    size_t j = 0;
    for (; *s; s++) {
        size_t need = *s == '\'' ? 2 : 1;
        if (j + need >= cap)
            return ryz_error(RYZ_EINVAL, "plot: value too long for gnuplot");
        if (*s == '\'')
            buf[j++] = '\'';
        buf[j++] = *s == '\n' || *s == '\r' ? ' ' : *s;
    }
    if (j >= cap)
        return ryz_error(RYZ_EINVAL, "plot: value too long for gnuplot");
    buf[j] = '\0';
    return RYZ_OK;
}

ryz_status ryz_report_mkdir(const char *dir) {
    char path[RYZ_PATH_LEN];
    if ((size_t)snprintf(path, sizeof path, "%s", dir) >= sizeof path)
        return ryz_error(RYZ_EIO, "directory name too long: %s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return ryz_error(RYZ_EIO, "cannot create directory %s: %s", path, strerror(errno));
        *p = c;
        if (!c)
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ryz_error(RYZ_EIO, "%s is not a directory", dir);
    return RYZ_OK;
}

ryz_status ryz_report_default_dir(const char *file, const char *suffix, char *buf, size_t cap) {
    size_t len = strlen(file);
    if (len > 3 && !strcmp(file + len - 3, ".h5"))
        len -= 3;
    if ((size_t)snprintf(buf, cap, "%.*s%s", (int)len, file, suffix) >= cap)
        return ryz_error(RYZ_EINVAL, "output directory name too long for %s", file);
    return RYZ_OK;
}

/* Strips leading and trailing whitespace of s in place; returns s. */
static char *trim(char *s) {
    size_t len = strlen(s), lead = strspn(s, " \t\r\n");
    while (len > lead && strchr(" \t\r\n", s[len - 1]))
        len--;
    memmove(s, s + lead, len - lead);
    s[len - lead] = '\0';
    return s;
}

/* Reads `fd` to its end, keeping the first cap - 1 bytes in buf. */
static void read_all(int fd, char *buf, size_t cap) {
    size_t len = 0;
    char sink[512];
    for (;;) {
        char *dst = len + 1 < cap ? buf + len : sink;
        size_t room = len + 1 < cap ? cap - 1 - len : sizeof sink;
        ssize_t n = read(fd, dst, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dst != sink)
            len += (size_t)n;
    }
    buf[len] = '\0';
}

/* Starts `argv` with stderr into a new pipe (*err_fd) and stdin from
 * /dev/null; *pid on success. EIO naming the program otherwise. */
static ryz_status spawn_captured(char *const argv[], pid_t *pid, int *err_fd) {
    int fds[2];
    posix_spawn_file_actions_t fa;
    if (pipe(fds) != 0)
        return ryz_error(RYZ_EIO, "cannot run %s: pipe: %s", argv[0], strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    int rc = posix_spawn(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return ryz_error(RYZ_EIO, "cannot run %s: %s", argv[0], strerror(rc));
    }
    *err_fd = fds[0];
    return RYZ_OK;
}

ryz_status ryz_gnuplot_run(const char *gnuplot, const char *script, const char *setup) {
    char *argv[] = {(char *)gnuplot, "-e", (char *)setup, (char *)script, NULL};
    char err[GP_ERR_MAX];
    pid_t pid;
    int fd = -1, status;
    ryz_status st = spawn_captured(argv, &pid, &fd);
    if (st != RYZ_OK)
        return st;
    read_all(fd, err, sizeof err);
    close(fd);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return ryz_error(RYZ_EIO, "gnuplot %s: waitpid: %s", script, strerror(errno));
    trim(err);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (err[0])
            fprintf(stderr, "ryz: warning: gnuplot (%s): %s\n", script, err);
        return RYZ_OK;
    }
    if (WIFEXITED(status))
        return ryz_error(RYZ_EIO, "gnuplot failed on %s (exit %d):\n%s", script,
                         WEXITSTATUS(status), err[0] ? err : "(no message)");
    return ryz_error(RYZ_EIO, "gnuplot killed by signal %d on %s", WTERMSIG(status), script);
}
