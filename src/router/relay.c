/*
 * gvpod-relay: the in-pod end of a route to a service that listens only on
 * the pod's loopback (not `runsc port-forward`: see src/runsc/forward.rs).
 * gvpod runs it per connection with `runsc exec`, from a
 * read-only bind mount of gvpod's own copy (never a file of the image):
 *
 *     gvpod-relay PORT
 *
 * connects to 127.0.0.1:PORT (then [::1]:PORT), then copies stdin to the
 * connection and the connection to stdout until both directions end (EOF
 * on stdin half-closes the connection). Exit 0 after a connection; 3 with
 * one line on stderr when nothing listens; 2 on bad arguments.
 *
 *     gvpod-relay --cat FILE...
 *
 * prints the files (the pod's /proc/net/tcp for `gvpod port --listening`,
 * on images that have no cat); exit 1 if one cannot be read.
 *
 *     gvpod-relay --probe PORT
 *
 * connects to 127.0.0.1:PORT (then [::1]:PORT) and exits at once: 0 when
 * something accepts, 3 with one line when nothing listens (a supervised
 * service's tcp health check, when the pod's address is refused).
 *
 *     gvpod-relay --init
 *
 * the main process of a pod whose work is its supervised services (a spec
 * pod with services and no command): as PID 1 it reaps every orphan and
 * exits 0 on SIGTERM, SIGINT or SIGHUP (PID 1 ignores signals it has no
 * handler for, so `gvpod stop` would otherwise wait for its timeout).
 *
 *     gvpod-relay --group CMD [ARG...]
 *
 * runs CMD in a session (and process group) of its own, forwards SIGTERM,
 * SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to that whole group, kills
 * the group 10 s after a SIGTERM, SIGINT, SIGHUP or SIGQUIT if CMD has not
 * ended (docker stop's grace), and when CMD ends kills what is left of the
 * group (systemd's control-group kill mode): a supervised service is one
 * process to signal (`runsc kill --pid`), whatever its shell starts. Exits with CMD's status (128+N for signal N), 127 when CMD
 * cannot be run.
 *
 * Built static (no dependency on the image's libc) by build.rs. Plain C on
 * purpose: it is small, has no state, and must run on any image.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int dial(int port)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    int err;

    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    v6.sin6_addr = in6addr_loopback;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&v4, sizeof v4) == 0)
        return s;
    err = errno;
    if (s >= 0)
        close(s);
    s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&v6, sizeof v6) == 0)
        return s;
    if (s >= 0)
        close(s);
    errno = err;
    return -1;
}

/* Writes all of buf; 0 on success. */
static int write_all(int fd, const char *buf, ssize_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= w;
    }
    return 0;
}

static int cat(int n, char **files)
{
    static char buf[65536];
    int rc = 0;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) {
            fprintf(stderr, "gvpod-relay: %s: %s\n", files[i], strerror(errno));
            rc = 1;
            continue;
        }
        size_t r;
        while ((r = fread(buf, 1, sizeof buf, f)) > 0)
            if (write_all(1, buf, (ssize_t)r) < 0)
                rc = 1;
        fclose(f);
    }
    return rc;
}

static int init_main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD)
            return 0;
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
}

static int group_main(char **cmd)
{
    static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGALRM);
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++)
        sigaddset(&set, fwd[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "gvpod-relay: fork: %s\n", strerror(errno));
        return 127;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        setsid();
        execvp(cmd[0], cmd);
        fprintf(stderr, "gvpod-relay: %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig < 0)
            continue;
        if (sig == SIGALRM) {
            kill(-child, SIGKILL);
            continue;
        }
        if (sig != SIGCHLD) {
            kill(-child, sig);
            if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT)
                alarm(10);
            continue;
        }
        int status;
        pid_t p = waitpid(child, &status, WNOHANG);
        if (p != child)
            continue;
        kill(-child, SIGKILL);
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--cat") == 0)
        return cat(argc - 2, argv + 2);
    if (argc == 3 && strcmp(argv[1], "--probe") == 0) {
        int s = dial(atoi(argv[2]));
        if (s < 0) {
            fprintf(stderr, "nothing listens on port %s of the pod: %s\n", argv[2], strerror(errno));
            return 3;
        }
        close(s);
        printf("port %s accepts connections\n", argv[2]);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--init") == 0)
        return init_main();
    if (argc >= 3 && strcmp(argv[1], "--group") == 0)
        return group_main(argv + 2);
    char *end;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: gvpod-relay PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int s = dial((int)port);
    if (s < 0) {
        fprintf(stderr, "gvpod-relay: connecting to 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return 3;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    static char buf[65536];
    int in_open = 1, out_open = 1;
    while (out_open) {
        struct pollfd p[2] = {{.fd = in_open ? 0 : -1, .events = POLLIN}, {.fd = s, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (in_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                in_open = 0;
                shutdown(s, SHUT_WR);
            } else if (write_all(s, buf, n) < 0) {
                return 1;
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(s, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                out_open = 0;
            else if (write_all(1, buf, n) < 0)
                return 1;
        }
    }
    return 0;
}
