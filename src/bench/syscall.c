/*
 * gvpod-bench-syscall: the `syscall` workload of `gvpod bench`. Built
 * static by build.rs (it runs on whatever libc the bench image has, or
 * none) and put into the bench bundle's rootfs.
 *
 * Usage: gvpod-bench-syscall BUDGET_MS OUTFILE
 * Times getpid, open+close, stat and a one-byte pipe round trip between
 * two processes, each for about BUDGET_MS, and writes one line per test to
 * OUTFILE: "NAME NS_PER_OP ITERATIONS". Exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int pfd_to_child[2], pfd_to_parent[2];

static void op_getpid(void) {
    /* The raw syscall: libc may cache getpid. */
    if (syscall(SYS_getpid) <= 0) die("getpid");
}

static void op_open_close(void) {
    int fd = open("/gvpod-bench/probe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open");
    if (close(fd) != 0) die("close");
}

static void op_stat(void) {
    struct stat st;
    if (stat("/gvpod-bench/probe", &st) != 0) die("stat");
}

static void op_pipe(void) {
    char c = 'x';
    if (write(pfd_to_child[1], &c, 1) != 1) die("pipe write");
    if (read(pfd_to_parent[0], &c, 1) != 1) die("pipe read");
}

/* Runs op in batches until budget_ns has passed; returns ns per op. */
static double measure(void (*op)(void), double budget_ns, long *iters) {
    long n = 0, batch = 16;
    double start = now_ns(), el;
    do {
        for (long i = 0; i < batch; i++) op();
        n += batch;
        if (batch < 4096) batch *= 2;
        el = now_ns() - start;
    } while (el < budget_ns);
    *iters = n;
    return el / (double)n;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s BUDGET_MS OUTFILE\n", argv[0]);
        return 2;
    }
    double budget = atof(argv[1]) * 1e6;
    if (budget <= 0) budget = 100e6;
    FILE *out = fopen(argv[2], "w");
    if (!out) die("fopen");
    int probe = open("/gvpod-bench/probe", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (probe < 0 || close(probe) != 0) die("create probe");

    long it;
    double v;
    op_getpid();
    v = measure(op_getpid, budget, &it);
    fprintf(out, "getpid %.1f %ld\n", v, it);
    v = measure(op_open_close, budget, &it);
    fprintf(out, "open-close %.1f %ld\n", v, it);
    v = measure(op_stat, budget, &it);
    fprintf(out, "stat %.1f %ld\n", v, it);

    if (pipe(pfd_to_child) != 0 || pipe(pfd_to_parent) != 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        char c;
        close(pfd_to_child[1]);
        close(pfd_to_parent[0]);
        for (;;) {
            ssize_t r = read(pfd_to_child[0], &c, 1);
            if (r == 0) _exit(0);
            if (r != 1 || write(pfd_to_parent[1], &c, 1) != 1) _exit(1);
        }
    }
    close(pfd_to_child[0]);
    close(pfd_to_parent[1]);
    v = measure(op_pipe, budget, &it);
    fprintf(out, "pipe-roundtrip %.1f %ld\n", v, it);
    close(pfd_to_child[1]);
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("pipe child");
    if (fclose(out) != 0) die("fclose");
    return 0;
}
