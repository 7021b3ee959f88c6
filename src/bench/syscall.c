/*
 * gvpod-bench-syscall: the `syscall` workload of `gvpod bench`. Built
 * static by build.rs (it runs on whatever libc the bench image has, or
 * none) and put into the bench bundle's rootfs.
 *
 * Usage: gvpod-bench-syscall BUDGET_MS OUTFILE
 * Times getpid, open+close, stat and a one-byte pipe round trip between
 * two processes, each for about BUDGET_MS, and writes one line per test to
 * OUTFILE: "NAME NS_PER_OP ITERATIONS". Exits non-zero on any failure.
 *
 * Usage: gvpod-bench-syscall fileio OUTFILE SIZE_MIB NAME=DIR...
 * The `fileio` workload, dd-style, in each DIR: a sequential write of
 * SIZE_MIB in 1 MiB blocks (fsync included), a sequential read of it, then
 * 4 KiB random reads and writes (pread/pwrite, fsync at the end) over it;
 * writes "NAME-seq-write MIB_PER_S BYTES" lines (and seq-read, rand-read,
 * rand-write) to OUTFILE, and removes its file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static char block[1 << 20];

/* xorshift: the same "random" offsets on every runtime. */
static unsigned long long rng = 88172645463325252ULL;
static unsigned long long next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fileio_dir(FILE *out, const char *name, const char *dir, long mib) {
    char path[4096];
    snprintf(path, sizeof path, "%s/gvpod-bench-fileio", dir);
    for (size_t i = 0; i < sizeof block; i++) block[i] = (char)(i * 31 + 7);
    double mb = (double)mib, t;
    long long bytes = (long long)mib << 20;

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(path);
    t = now_ns();
    for (long i = 0; i < mib; i++)
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block) die("seq write");
    if (fsync(fd) != 0) die("fsync");
    fprintf(out, "%s-seq-write %.2f %lld\n", name, mb / ((now_ns() - t) / 1e9), bytes);
    if (close(fd) != 0) die("close");

    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) die(path);
    t = now_ns();
    for (long i = 0; i < mib; i++)
        if (read(fd, block, sizeof block) != (ssize_t)sizeof block) die("seq read");
    fprintf(out, "%s-seq-read %.2f %lld\n", name, mb / ((now_ns() - t) / 1e9), bytes);

    long ops = mib * 64; /* a quarter of the file's 4 KiB blocks */
    long nblocks = mib * 256;
    t = now_ns();
    for (long i = 0; i < ops; i++) {
        off_t off = (off_t)(next_rand() % (unsigned long long)nblocks) * 4096;
        if (pread(fd, block, 4096, off) != 4096) die("rand read");
    }
    fprintf(out, "%s-rand-read %.2f %ld\n", name, (double)ops * 4096 / 1048576.0 / ((now_ns() - t) / 1e9), ops * 4096);
    t = now_ns();
    for (long i = 0; i < ops; i++) {
        off_t off = (off_t)(next_rand() % (unsigned long long)nblocks) * 4096;
        if (pwrite(fd, block, 4096, off) != 4096) die("rand write");
    }
    if (fsync(fd) != 0) die("fsync");
    fprintf(out, "%s-rand-write %.2f %ld\n", name, (double)ops * 4096 / 1048576.0 / ((now_ns() - t) / 1e9), ops * 4096);
    if (close(fd) != 0 || unlink(path) != 0) die("cleanup");
}

static int fileio(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s fileio OUTFILE SIZE_MIB NAME=DIR...\n", argv[0]);
        return 2;
    }
    FILE *out = fopen(argv[2], "w");
    if (!out) die("fopen");
    long mib = atol(argv[3]);
    if (mib <= 0) mib = 16;
    for (int i = 4; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "bad NAME=DIR %s\n", argv[i]);
            return 2;
        }
        *eq = 0;
        fileio_dir(out, argv[i], eq + 1, mib);
    }
    if (fclose(out) != 0) die("fclose");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "fileio") == 0) return fileio(argc, argv);
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
