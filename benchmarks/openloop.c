/*
 * Open-loop HTTP/1.1 load generator for benchmarks/harness.py (compiled with the machine's gcc
 * at benchmark time: gcc -O2 -o openloop openloop.c).
 *
 * Sends request i at start + i / rate, whatever happened to earlier ones (no coordinated
 * omission): each request gets a new connection (Connection: close), and its latency is counted
 * from its *scheduled* send time to the server closing the connection after the reply. One
 * thread, epoll, and a timerfd armed at the next scheduled send, so it costs a few microseconds
 * of CPU per request where the Python generator costs hundreds.
 *
 * Usage: openloop HOST PORT RATE TIMEOUT_MS REQUESTS_FILE
 * REQUESTS_FILE holds complete raw requests, each preceded by its length as a decimal line.
 * Output, one line per request in schedule order: "status latency_us lag_us reason", where
 * status is the HTTP status or 0 (connect error), -1 (timeout), -2 (no status line); reason is
 * the JSON "reason" field of the reply, or "-". Last line: "cpu_us N" (this process's own CPU).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX 4096

typedef struct {
    const char *data;
    size_t len;
    size_t sent;
    int64_t scheduled;  /* ns */
    int64_t started;    /* ns, when connect() was called */
    int64_t finished;
    int fd;
    int status;
    char reply[REPLY_MAX];
    size_t got;
} Request;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void finish(int ep, Request *r, int status, int64_t at) {
    epoll_ctl(ep, EPOLL_CTL_DEL, r->fd, NULL);
    close(r->fd);
    r->fd = -1;
    r->status = status;
    r->finished = at;
}

static int parse_status(const Request *r) {
    if (r->got < 12 || strncmp(r->reply, "HTTP/1.", 7) != 0) return -2;
    return atoi(r->reply + 9);
}

static void reason_of(const Request *r, char *out, size_t size) {
    const char *key = "\"reason\":";
    char *at = memmem(r->reply, r->got, key, strlen(key));
    snprintf(out, size, "-");
    if (!at) return;
    at += strlen(key);
    while (at < r->reply + r->got && (*at == ' ' || *at == '"')) at++;
    size_t n = 0;
    while (at + n < r->reply + r->got && n + 1 < size &&
           ((at[n] >= 'a' && at[n] <= 'z') || at[n] == '_'))
        n++;
    if (n) {
        memcpy(out, at, n);
        out[n] = 0;
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT RATE TIMEOUT_MS REQUESTS_FILE\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) return 2;
    double rate = atof(argv[3]);
    int64_t timeout = (int64_t)atoll(argv[4]) * 1000000LL;
    FILE *f = fopen(argv[5], "rb");
    if (!f || rate <= 0) return 2;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(size + 1);
    if (!buf || fread(buf, 1, size, f) != (size_t)size) return 2;
    fclose(f);
    size_t count = 0, cap = 1024;
    Request *reqs = calloc(cap, sizeof(Request));
    for (char *p = buf; p < buf + size;) {
        char *end;
        size_t len = strtoul(p, &end, 10);
        if (*end != '\n') break;
        if (count == cap) reqs = realloc(reqs, (cap *= 2) * sizeof(Request));
        memset(&reqs[count], 0, sizeof(Request));
        reqs[count].data = end + 1;
        reqs[count].len = len;
        reqs[count].fd = -1;
        count++;
        p = end + 1 + len;
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    int ep = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    int64_t interval = (int64_t)(1e9 / rate);
    int64_t start = now_ns() + 50000000LL;
    size_t next = 0, done = 0, open_from = 0;
    struct epoll_event events[256];
    while (done < count) {
        int64_t now = now_ns();
        /* Send everything whose time has come; if we are late, the lag counts in latency. */
        while (next < count && start + (int64_t)next * interval <= now) {
            Request *r = &reqs[next];
            r->scheduled = start + (int64_t)next * interval;
            r->started = now;
            r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            int one = 1;
            setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (r->fd < 0 || (connect(r->fd, (struct sockaddr *)&addr, sizeof addr) < 0 &&
                              errno != EINPROGRESS)) {
                if (r->fd >= 0) close(r->fd);
                r->fd = -1;
                r->status = 0;
                r->finished = now;
                done++;
            } else {
                struct epoll_event e = {.events = EPOLLOUT, .data.u64 = next};
                epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &e);
            }
            next++;
        }
        /* Time out requests in flight for too long. */
        for (size_t i = open_from; i < next; i++) {
            Request *r = &reqs[i];
            if (r->fd >= 0 && now - r->scheduled > timeout) {
                finish(ep, r, -1, now);
                done++;
            }
            if (i == open_from && r->fd < 0 && r->finished) open_from++;
        }
        if (next < count) {
            struct itimerspec its = {0};
            int64_t at = start + (int64_t)next * interval;
            its.it_value.tv_sec = at / 1000000000LL;
            its.it_value.tv_nsec = at % 1000000000LL;
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(ep, events, 256, 100);
        now = now_ns();
        for (int k = 0; k < n; k++) {
            if (events[k].data.u64 == UINT64_MAX) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0) { /* spurious */ }
                continue;
            }
            Request *r = &reqs[events[k].data.u64];
            if (r->fd < 0) continue;
            if (r->sent < r->len) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                ssize_t w = err ? -1 : write(r->fd, r->data + r->sent, r->len - r->sent);
                if (w < 0 && errno != EAGAIN) {
                    finish(ep, r, 0, now);
                    done++;
                    continue;
                }
                if (w > 0) r->sent += (size_t)w;
                if (r->sent == r->len) {
                    struct epoll_event e = {.events = EPOLLIN, .data.u64 = events[k].data.u64};
                    epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &e);
                }
                continue;
            }
            char scratch[4096];
            for (;;) {
                char *into = r->got < REPLY_MAX ? r->reply + r->got : scratch;
                size_t room = r->got < REPLY_MAX ? REPLY_MAX - r->got : sizeof scratch;
                ssize_t got = read(r->fd, into, room);
                if (got > 0) {
                    if (into != scratch) r->got += (size_t)got;
                    continue;
                }
                if (got == 0) {
                    finish(ep, r, parse_status(r), now);
                    done++;
                } else if (errno != EAGAIN) {
                    finish(ep, r, r->got ? parse_status(r) : 0, now);
                    done++;
                }
                break;
            }
        }
    }
    char reason[64];
    for (size_t i = 0; i < count; i++) {
        Request *r = &reqs[i];
        reason_of(r, reason, sizeof reason);
        printf("%d %lld %lld %s\n", r->status, (long long)((r->finished - r->scheduled) / 1000),
               (long long)((r->started - r->scheduled) / 1000), reason);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("cpu_us %lld\n", (long long)(ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec +
                                        ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec));
    return 0;
}
