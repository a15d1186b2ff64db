/* The load client of benchmarks/c1m: many WebSockets from one process.
 *
 * One epoll loop, one non-blocking socket per connection, no thread. A
 * connection binds to one of NADDR loopback source addresses (127.1.0.1
 * ...) with IP_BIND_ADDRESS_NO_PORT, so that the port is chosen at connect
 * over the whole 4-tuple and each source address has its own port space.
 * It sends a fixed upgrade request, waits for the 101, sends one masked
 * text frame "s CH" (subscribe to channel CH), and counts as open when the
 * server's "k" frame comes back.
 *
 * Several clients run side by side (a process may hold only as many
 * sockets as its RLIMIT_NOFILE allows): each is given its own range of
 * source addresses, ADDR_FIRST to ADDR_FIRST + NADDR - 1 (address i is
 * 127.1.0.0 + i).
 *
 * Per connection the client keeps 16 bytes in a table indexed by fd (plus
 * a buffer malloc'd only while a frame is split across reads), so what a
 * connection costs here is mostly the kernel's socket.
 *
 * Messages the server sends are text frames "ID T" (ID a small integer, T
 * the server's CLOCK_MONOTONIC in ns when it began the broadcast); the
 * client counts deliveries per ID and keeps a histogram of now - T.
 * A ping is answered with a pong; a close frame closes the socket.
 *
 * Driven by lines on stdin, answered by one JSON line each on stdout:
 *   open N RATE    open N more connections at RATE per second; answers when
 *                  each is open (acknowledged) or has failed
 *   report         deliveries since the last reset: total, per ID, latency
 *                  p50/p99/max (ms) and the histogram (ms bucket, count)
 *   reset          zero the delivery counters and the histogram
 *   drop K         close K open connections (every tenth first) and open K
 *                  at once; answers when all are open again (or failed)
 *   stat           connections open, failures, RSS and CPU of this process
 *   quit           exit
 *
 * Build: gcc -O2 -o client client.c
 * Usage: client HOST PORT ADDR_FIRST NADDR CHANNELS
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
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { S_FREE = 0, S_CONNECTING, S_UPGRADING, S_SUBSCRIBING, S_OPEN };

struct conn {
    uint8_t state;
    uint8_t chan;
    uint16_t partial_len; /* bytes held in partial */
    uint32_t _pad;
    char *partial; /* a split frame or response head, rarely set */
};

#define MAX_IDS 4096
#define HIST_MS 600000 /* one bucket per ms up to 10 minutes */

static struct conn *conns;
static int max_fd;
static int ep;
static struct sockaddr_in server;
static int addr_first, naddr, nchannels;
static char upgrade[512];
static int upgrade_len;

static long opened_total, failed_total, open_now;
static long conn_seq; /* which channel / source address the next one gets */
static long pending;  /* connections started and not yet open or failed */
static long errs[8];  /* connect errors by kind: see err_slot */

static long delivered, per_id[MAX_IDS];
static uint32_t *hist;
static long hist_max_us;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int err_slot(int e) {
    switch (e) {
    case EADDRNOTAVAIL: return 0;
    case ECONNREFUSED: return 1;
    case ETIMEDOUT: return 2;
    case ECONNRESET: return 3;
    case EMFILE: case ENFILE: return 4;
    case EPIPE: return 5;
    case 0: return 6; /* closed by the server before open */
    default: return 7;
    }
}

static void conn_close(int fd, int failed, int e) {
    struct conn *c = &conns[fd];
    if (c->state == S_OPEN) open_now--;
    else if (c->state != S_FREE) {
        pending--;
        if (failed) { failed_total++; errs[err_slot(e)]++; }
    }
    free(c->partial);
    memset(c, 0, sizeof *c);
    close(fd);
}

static void start_one(void) {
    long k = conn_seq++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { failed_total++; errs[err_slot(errno)]++; return; }
    if (fd >= max_fd) { close(fd); failed_total++; errs[4]++; return; }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    /* 127.1.0.0 + i: 127.1.x.y */
    uint32_t a = (127u << 24) | (1u << 16) | (uint32_t)(addr_first + k % naddr);
    src.sin_addr.s_addr = htonl(a);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
        failed_total++; errs[err_slot(errno)]++; close(fd); return;
    }
    struct conn *c = &conns[fd];
    c->chan = (uint8_t)(k % nchannels);
    pending++;
    int r = connect(fd, (struct sockaddr *)&server, sizeof server);
    if (r < 0 && errno != EINPROGRESS) {
        c->state = S_CONNECTING;
        conn_close(fd, 1, errno);
        return;
    }
    c->state = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* One masked client frame (RFC 6455 section 5.3) with a fixed key. */
static int send_frame(int fd, int opcode, const char *payload, int len) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t buf[200];
    if (len > 125) len = 125;
    buf[0] = 0x80 | opcode;
    buf[1] = 0x80 | len;
    memcpy(buf + 2, key, 4);
    for (int i = 0; i < len; i++) buf[6 + i] = payload[i] ^ key[i & 3];
    return send(fd, buf, 6 + len, MSG_NOSIGNAL) == 6 + len ? 0 : -1;
}

static void record(const char *p, long n) {
    /* "ID T" */
    long id = 0;
    long i = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') id = id * 10 + (p[i++] - '0');
    if (i < n && p[i] == ' ') i++;
    int64_t t = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') t = t * 10 + (p[i++] - '0');
    delivered++;
    if (id >= 0 && id < MAX_IDS) per_id[id]++;
    long us = (long)((now_ns() - t) / 1000);
    if (us < 0) us = 0;
    if (us > hist_max_us) hist_max_us = us;
    long ms = us / 1000;
    if (ms >= HIST_MS) ms = HIST_MS - 1;
    hist[ms]++;
}

/* Parses what is in buf; returns bytes consumed, or -1 to close. */
static long parse(int fd, struct conn *c, const char *buf, long n) {
    long off = 0;
    if (c->state == S_UPGRADING) {
        const char *end = memmem(buf, n, "\r\n\r\n", 4);
        if (!end) return 0;
        if (n < 12 || memcmp(buf + 9, "101", 3) != 0) return -1;
        off = end + 4 - buf;
        char sub[8];
        int sl = snprintf(sub, sizeof sub, "s %d", c->chan);
        if (send_frame(fd, 1, sub, sl) < 0) return -1;
        c->state = S_SUBSCRIBING;
    }
    while (n - off >= 2) {
        const uint8_t *f = (const uint8_t *)buf + off;
        int opcode = f[0] & 0x0f;
        long len = f[1] & 0x7f;
        long hdr = 2;
        if (len == 126) {
            if (n - off < 4) break;
            len = (f[2] << 8) | f[3];
            hdr = 4;
        } else if (len == 127) {
            return -1; /* nothing here sends that much */
        }
        if (n - off < hdr + len) break;
        const char *payload = buf + off + hdr;
        if (opcode == 1 || opcode == 2) {
            if (c->state == S_SUBSCRIBING) {
                c->state = S_OPEN;
                pending--;
                open_now++;
                opened_total++;
            } else {
                record(payload, len);
            }
        } else if (opcode == 9) {
            if (send_frame(fd, 10, payload, (int)len) < 0) return -1;
        } else if (opcode == 8) {
            send_frame(fd, 8, payload, len >= 2 ? 2 : 0);
            return -1;
        }
        off += hdr + len;
    }
    return off;
}

static void on_readable(int fd) {
    static char rbuf[65536];
    struct conn *c = &conns[fd];
    long have = 0;
    if (c->partial_len) {
        memcpy(rbuf, c->partial, c->partial_len);
        have = c->partial_len;
    }
    ssize_t r = recv(fd, rbuf + have, sizeof rbuf - have, 0);
    if (r == 0) { conn_close(fd, 1, 0); return; }
    if (r < 0) {
        if (errno == EAGAIN) return;
        conn_close(fd, 1, errno);
        return;
    }
    have += r;
    long used = parse(fd, c, rbuf, have);
    if (used < 0) { conn_close(fd, 1, 0); return; }
    long left = have - used;
    if (left > 0) {
        if (left > 60000) { conn_close(fd, 1, 0); return; }
        char *p = realloc(c->partial, left);
        if (!p) { conn_close(fd, 1, ENOMEM); return; }
        memcpy(p, rbuf + used, left);
        c->partial = p;
        c->partial_len = (uint16_t)left;
    } else if (c->partial) {
        free(c->partial);
        c->partial = NULL;
        c->partial_len = 0;
    }
}

static void on_writable(int fd) {
    struct conn *c = &conns[fd];
    int e = 0;
    socklen_t el = sizeof e;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
    if (e) { conn_close(fd, 1, e); return; }
    if (send(fd, upgrade, upgrade_len, MSG_NOSIGNAL) != upgrade_len) {
        conn_close(fd, 1, errno);
        return;
    }
    c->state = S_UPGRADING;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void pump(int timeout_ms) {
    static struct epoll_event evs[4096];
    int n = epoll_wait(ep, evs, 4096, timeout_ms);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == 0) continue; /* stdin: read by the caller */
        if (conns[fd].state == S_FREE) continue;
        if (conns[fd].state == S_CONNECTING) {
            on_writable(fd);
        } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            on_readable(fd);
        }
    }
}

static void print_errs(void) {
    static const char *names[8] = {"EADDRNOTAVAIL", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET",
                                   "EMFILE", "EPIPE", "closed", "other"};
    printf("\"errors\": {");
    int first = 1;
    for (int i = 0; i < 8; i++) {
        if (!errs[i]) continue;
        printf("%s\"%s\": %ld", first ? "" : ", ", names[i], errs[i]);
        first = 0;
    }
    printf("}");
}

/* Runs the loop until the started connections are all open or failed, or deadline. */
static double settle(double t0, double deadline_s) {
    while (pending > 0 && now_s() - t0 < deadline_s) pump(10);
    return now_s() - t0;
}

static void do_open(long n, double rate) {
    double t0 = now_s();
    long started = 0;
    long failed0 = failed_total;
    while (started < n) {
        double elapsed = now_s() - t0;
        long due = (long)(elapsed * rate) + 1;
        if (due > n) due = n;
        while (started < due) { start_one(); started++; }
        /* sleep in epoll until the next one is due (not a busy 1 ms tick) */
        int wait_ms = (int)(((double)started / rate - (now_s() - t0)) * 1000.0);
        pump(wait_ms < 1 ? 1 : wait_ms > 50 ? 50 : wait_ms);
    }
    double secs = settle(t0, n / rate + 120.0);
    printf("{\"ev\": \"opened\", \"n\": %ld, \"open\": %ld, \"failed\": %ld, \"pending\": %ld, "
           "\"secs\": %.3f, ",
           n, open_now, failed_total - failed0, pending, secs);
    print_errs();
    printf("}\n");
    fflush(stdout);
}

static void do_drop(long k) {
    long dropped = 0;
    for (int pass = 0; pass < 10 && dropped < k; pass++) {
        for (int fd = 3 + pass; fd < max_fd && dropped < k; fd += 10) {
            if (conns[fd].state == S_OPEN) {
                conn_close(fd, 0, 0);
                dropped++;
            }
        }
    }
    double t0 = now_s();
    long failed0 = failed_total;
    for (long i = 0; i < dropped; i++) {
        start_one();
        if ((i & 1023) == 0) pump(0);
    }
    double secs = settle(t0, 300.0);
    printf("{\"ev\": \"reconnected\", \"n\": %ld, \"open\": %ld, \"failed\": %ld, \"pending\": %ld, "
           "\"secs\": %.3f, ",
           dropped, open_now, failed_total - failed0, pending, secs);
    print_errs();
    printf("}\n");
    fflush(stdout);
}

static double pct(double q) {
    long target = (long)(q * delivered);
    if (target >= delivered) target = delivered - 1;
    long seen = 0;
    for (long i = 0; i < HIST_MS; i++) {
        seen += hist[i];
        if (seen > target) return (double)i + 0.5;
    }
    return HIST_MS;
}

static void do_report(void) {
    printf("{\"ev\": \"report\", \"delivered\": %ld, \"p50_ms\": %.1f, \"p99_ms\": %.1f, "
           "\"max_ms\": %.3f, \"per_id\": {",
           delivered, delivered ? pct(0.5) : 0.0, delivered ? pct(0.99) : 0.0, hist_max_us / 1000.0);
    int first = 1;
    for (int i = 0; i < MAX_IDS; i++) {
        if (!per_id[i]) continue;
        printf("%s\"%d\": %ld", first ? "" : ", ", i, per_id[i]);
        first = 0;
    }
    printf("}, \"hist\": [");
    first = 1;
    for (long i = 0; i < HIST_MS; i++) {
        if (!hist[i]) continue;
        printf("%s[%ld, %u]", first ? "" : ", ", i, hist[i]);
        first = 0;
    }
    printf("]}\n");
    fflush(stdout);
}

static void do_stat(void) {
    long rss_kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) rss_kb = atol(line + 6);
    if (f) fclose(f);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    printf("{\"ev\": \"stat\", \"open\": %ld, \"opened_total\": %ld, \"failed\": %ld, "
           "\"pending\": %ld, \"rss_kb\": %ld, \"cpu_s\": %.3f, ",
           open_now, opened_total, failed_total, pending, rss_kb, cpu);
    print_errs();
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT ADDR_FIRST NADDR CHANNELS\n", argv[0]);
        return 2;
    }
    server.sin_family = AF_INET;
    server.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &server.sin_addr);
    addr_first = atoi(argv[3]);
    naddr = atoi(argv[4]);
    nchannels = atoi(argv[5]);
    if (nchannels < 1 || nchannels > 250 || naddr < 1 || addr_first < 1 ||
        addr_first + naddr > 65000)
        return 2;
    upgrade_len = snprintf(upgrade, sizeof upgrade,
                           "GET /ws HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n",
                           argv[1], argv[2]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    max_fd = (int)rl.rlim_cur;
    conns = calloc(max_fd, sizeof *conns);
    hist = calloc(HIST_MS, sizeof *hist);
    if (!conns || !hist) return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = 0};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
    char line[256];
    long llen = 0;
    for (;;) {
        pump(50);
        for (;;) {
            ssize_t r = read(0, line + llen, 1);
            if (r == 0) return 0;
            if (r < 0) break;
            if (line[llen] != '\n') {
                if (llen < (long)sizeof line - 2) llen++;
                continue;
            }
            line[llen] = 0;
            llen = 0;
            long a = 0;
            double b = 0;
            if (sscanf(line, "open %ld %lf", &a, &b) == 2 && b > 0) do_open(a, b);
            else if (sscanf(line, "drop %ld", &a) == 1) do_drop(a);
            else if (!strcmp(line, "report")) do_report();
            else if (!strcmp(line, "reset")) {
                delivered = 0;
                hist_max_us = 0;
                memset(per_id, 0, sizeof per_id);
                memset(hist, 0, HIST_MS * sizeof *hist);
                printf("{\"ev\": \"reset\"}\n");
                fflush(stdout);
            } else if (!strcmp(line, "stat")) do_stat();
            else if (!strcmp(line, "quit")) return 0;
            else { printf("{\"ev\": \"error\", \"line\": \"?\"}\n"); fflush(stdout); }
        }
    }
}
