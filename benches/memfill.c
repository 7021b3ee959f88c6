/*
 * memfill: the workload of benches/snapshot.sh, built statically into the
 * benchmark image.
 *
 *   memfill MIB [WARMUP_MS]
 *
 * Touches MIB MiB of heap with pseudo-random (incompressible) bytes, so a
 * checkpoint has MIB MiB of memory to save, optionally spins WARMUP_MS of CPU
 * (a server's warm-up: caches, JIT, ...), prints "ready", then answers like a
 * server: one line "tick N" every 10 ms, forever.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: memfill MIB [WARMUP_MS]\n");
        return 2;
    }
    size_t mib = strtoull(argv[1], NULL, 10);
    uint64_t warmup = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    size_t n = mib << 17; /* 8-byte words */
    uint64_t *mem = malloc(n * sizeof(uint64_t) + 8);
    if (!mem) {
        perror("malloc");
        return 1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        mem[i] = x;
    }
    volatile uint64_t sink = 0;
    uint64_t until = now_ms() + warmup;
    while (now_ms() < until)
        for (int i = 0; i < 100000; i++)
            sink += (uint64_t)i * x;
    printf("ready %zu MiB\n", mib);
    fflush(stdout);
    for (uint64_t t = 1;; t++) {
        usleep(10000);
        printf("tick %llu %llu\n", (unsigned long long)t, (unsigned long long)(mem[t % n] & 0xff));
        fflush(stdout);
    }
}
