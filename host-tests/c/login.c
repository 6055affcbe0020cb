/*
 * A real C host for moltlink: registers (or reloads) a MoltChats agent, logs in, forces a
 * refresh and calls whoami, doing all I/O itself: HTTP/1.1 over POSIX sockets, an atomic
 * 0600 credentials file, /dev/urandom for the seed, the clock.
 *
 *   login <api-base> <username> <credentials-path>
 *     api-base: e.g. http://127.0.0.1:PORT/moltchats/api/v1 (plain http only)
 *
 * Login and whoami are driven with the callback pump (ml_chats_pump); the refresh with
 * ml_chats_poll + caller-owned buffers. Exits 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L

#include "moltlink.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- checks and transcript ------------------------------------------------------------ */

static int g_passed, g_failed;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (cond) {                                                                                        \
            g_passed++;                                                                                    \
        } else {                                                                                           \
            g_failed++;                                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("  ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static const char *last_error(void) {
    static char buf[1024];
    if (ml_last_error_message((uint8_t *)buf, sizeof buf) == 0) buf[0] = '\0';
    return buf;
}

/* Check a return code; on failure print its name and the library's message. */
#define CHECK_RC(rc, what)                                                                                 \
    CHECK((rc) == ML_OK, "%s -> %s: %s", what, ml_error_code_name(rc), last_error())

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--) *v++ = 0;
}

/* ---- files ----------------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) { free(buf); buf = NULL; }
            buf = bigger;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) { free(buf); return -1; }
    *out = buf;
    *len = n;
    return 0;
}

/* Write tmp (0600), fsync, rename over path, fsync the directory. */
static int write_atomic(const char *path, const uint8_t *bytes, size_t len) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { close(fd); unlink(tmp); return -1; }
        off += (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) { close(fd); unlink(tmp); return -1; }
    if (close(fd) != 0 || rename(tmp, path) != 0) { unlink(tmp); return -1; }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, ".");
    int dfd = open(slash == dir ? "/" : dir, O_RDONLY);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return 0;
}

/* ---- a little JSON: read one string value (serde_json's compact output) ------------------ */

/* Parse a JSON string starting at *p (which points at the opening quote) into out. */
static int json_string(const char **p, char *out, size_t cap) {
    const char *s = *p;
    if (*s != '"') return -1;
    s++;
    size_t n = 0;
    while (*s && *s != '"') {
        char c = *s++;
        if (c == '\\') {
            char e = *s++;
            switch (e) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                if (sscanf(s, "%4x", &v) != 1 || v > 0x7f) return -1; /* ASCII escapes only */
                c = (char)v;
                s += 4;
                break;
            }
            default: return -1;
            }
        }
        if (n + 1 >= cap) return -1;
        out[n++] = c;
    }
    if (*s != '"') return -1;
    out[n] = '\0';
    *p = s + 1;
    return 0;
}

/* The string value of the first `"key":` in json. */
static int json_get(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(json, pat);
    if (!at) return -1;
    at += strlen(pat);
    return json_string(&at, out, cap);
}

/* Append s to a JSON string literal in buf (escaping), returns 0 or -1 when full. */
static int json_append_string(char *buf, size_t cap, size_t *n, const char *s) {
    if (*n + 1 >= cap) return -1;
    buf[(*n)++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20) snprintf(esc, sizeof esc, "\\u%04x", c);
        else { esc[0] = (char)c; esc[1] = '\0'; }
        size_t k = strlen(esc);
        if (*n + k + 1 >= cap) return -1;
        memcpy(buf + *n, esc, k);
        *n += k;
    }
    if (*n + 2 >= cap) return -1;
    buf[(*n)++] = '"';
    buf[*n] = '\0';
    return 0;
}

/* Append `,["name","value"]` (no comma when first) to a JSON array being built in buf. */
static int json_append_pair(char *buf, size_t cap, size_t *n, int first, const char *name, const char *value) {
    if (*n + 3 >= cap) return -1;
    if (!first) buf[(*n)++] = ',';
    buf[(*n)++] = '[';
    if (json_append_string(buf, cap, n, name)) return -1;
    buf[(*n)++] = ',';
    if (json_append_string(buf, cap, n, value) || *n + 3 >= cap) return -1;
    buf[(*n)++] = ']';
    buf[*n] = '\0';
    return 0;
}

/* ---- HTTP/1.1 over a socket ----------------------------------------------------------------- */

typedef struct {
    int status;
    char headers_json[8192]; /* [["name","value"],...] */
    uint8_t *body;
    size_t body_len;
} HttpResponse;

static int parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap, const char **path) {
    if (strncmp(url, "http://", 7) != 0) return -1; /* plain http only */
    const char *h = url + 7;
    const char *end = h + strcspn(h, ":/");
    if ((size_t)(end - h) + 1 > hcap || end == h) return -1;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    if (*end == ':') {
        const char *pe = end + 1 + strcspn(end + 1, "/");
        if ((size_t)(pe - end - 1) + 1 > pcap || pe == end + 1) return -1;
        memcpy(port, end + 1, (size_t)(pe - end - 1));
        port[pe - end - 1] = '\0';
        end = pe;
    } else {
        snprintf(port, pcap, "80");
    }
    *path = *end ? end : "/";
    return 0;
}

static size_t find_crlfcrlf(const uint8_t *buf, size_t len) {
    for (size_t i = 0; i + 3 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') return i;
    return (size_t)-1;
}

/* Decode a chunked body in place; returns the decoded length or -1. */
static long dechunk(uint8_t *buf, size_t len) {
    size_t in = 0, out = 0;
    for (;;) {
        char line[32];
        size_t k = 0;
        while (in < len && buf[in] != '\r' && k + 1 < sizeof line) line[k++] = (char)buf[in++];
        line[k] = '\0';
        if (in + 1 >= len || buf[in] != '\r' || buf[in + 1] != '\n') return -1;
        in += 2;
        char *endp;
        unsigned long size = strtoul(line, &endp, 16);
        if (endp == line) return -1;
        if (size == 0) return (long)out;
        if (size > len - in) return -1;
        memmove(buf + out, buf + in, size);
        out += size;
        in += size + 2;
        if (in > len) return -1;
    }
}

/* Perform one request described by the core's meta JSON. Returns 0, or -1 with err set. */
static int http_perform(const char *meta, const uint8_t *body, size_t body_len, HttpResponse *resp, char *err,
                        size_t errcap) {
    char method[16], url[2048], host[256], port[16];
    const char *path;
    memset(resp, 0, sizeof *resp);
    if (json_get(meta, "method", method, sizeof method) || json_get(meta, "url", url, sizeof url) ||
        parse_url(url, host, sizeof host, port, sizeof port, &path)) {
        snprintf(err, errcap, "cannot use request meta (only http:// URLs are supported)");
        return -1;
    }

    /* Request head: our own framing headers, then the core's headers. */
    size_t hcap = 16384, n = 0;
    char *head = malloc(hcap);
    if (!head) { snprintf(err, errcap, "out of memory"); return -1; }
    n += (size_t)snprintf(head + n, hcap - n,
                          "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\nContent-Length: %zu\r\n", method,
                          path, host, port, body_len);
    const char *h = strstr(meta, "\"headers\":[");
    if (h) {
        h += strlen("\"headers\":[");
        while (*h == '[') {
            char name[256], value[8192];
            h++;
            if (json_string(&h, name, sizeof name) || *h++ != ',' || json_string(&h, value, sizeof value) ||
                *h++ != ']') {
                free(head);
                snprintf(err, errcap, "malformed headers in request meta");
                return -1;
            }
            if (*h == ',') h++;
            if (!strcasecmp(name, "host") || !strcasecmp(name, "connection") || !strcasecmp(name, "content-length"))
                continue;
            int w = snprintf(head + n, hcap - n, "%s: %s\r\n", name, value);
            wipe(value, sizeof value); /* may be a bearer token */
            if (w < 0 || (size_t)w >= hcap - n) { free(head); snprintf(err, errcap, "headers too long"); return -1; }
            n += (size_t)w;
        }
    }
    if (n + 3 > hcap) { free(head); snprintf(err, errcap, "headers too long"); return -1; }
    memcpy(head + n, "\r\n", 3);
    n += 2;

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) { wipe(head, n); free(head); snprintf(err, errcap, "resolve %s: %s", host, gai_strerror(gai)); return -1; }
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) { wipe(head, n); free(head); snprintf(err, errcap, "connect %s:%s: %s", host, port, strerror(errno)); return -1; }

    int rc = 0;
    const uint8_t *parts[2] = {(const uint8_t *)head, body};
    size_t lens[2] = {n, body_len};
    for (int i = 0; i < 2 && rc == 0; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t w = send(fd, parts[i] + off, lens[i] - off, 0);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) { snprintf(err, errcap, "send: %s", strerror(errno)); rc = -1; break; }
            off += (size_t)w;
        }
    }
    wipe(head, n);
    free(head);

    /* Read until EOF (Connection: close). */
    size_t cap = 16384, len = 0;
    uint8_t *buf = malloc(cap);
    while (rc == 0 && buf) {
        if (len == cap) {
            if (cap >= (8u << 20)) { snprintf(err, errcap, "response over 8 MiB"); rc = -1; break; }
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) break;
            buf = bigger;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { snprintf(err, errcap, "recv: %s", strerror(errno)); rc = -1; break; }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (!buf) { snprintf(err, errcap, "out of memory"); return -1; }
    if (rc != 0) { free(buf); return -1; }

    size_t hend = find_crlfcrlf(buf, len);
    int major, minor, status;
    if (hend == (size_t)-1 || sscanf((const char *)buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 ||
        status < 100 || status > 999) {
        free(buf);
        snprintf(err, errcap, "malformed HTTP response (%zu bytes)", len);
        return -1;
    }
    buf[hend] = '\0';
    resp->status = status;

    /* Headers → [["name","value"],...]; note Content-Length and chunking. */
    long content_length = -1;
    int chunked = 0;
    size_t jn = 0;
    resp->headers_json[jn++] = '[';
    char *line = strstr((char *)buf, "\r\n");
    int first = 1;
    while (line && *line) {
        line += 2;
        char *eol = strstr(line, "\r\n");
        if (eol) *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *value = colon + 1;
            while (*value == ' ' || *value == '\t') value++;
            if (!strcasecmp(line, "content-length")) content_length = strtol(value, NULL, 10);
            if (!strcasecmp(line, "transfer-encoding") && strstr(value, "chunked")) chunked = 1;
            if (json_append_pair(resp->headers_json, sizeof resp->headers_json, &jn, first, line, value)) {
                free(buf);
                snprintf(err, errcap, "response headers too long");
                return -1;
            }
            first = 0;
        }
        line = eol;
    }
    resp->headers_json[jn++] = ']';
    resp->headers_json[jn] = '\0';

    size_t body_at = hend + 4, avail = len - body_at;
    if (chunked) {
        long dl = dechunk(buf + body_at, avail);
        if (dl < 0) { free(buf); snprintf(err, errcap, "malformed chunked body"); return -1; }
        avail = (size_t)dl;
    } else if (content_length >= 0) {
        if ((size_t)content_length > avail) {
            free(buf);
            snprintf(err, errcap, "body truncated: %zu of %ld bytes", avail, content_length);
            return -1;
        }
        avail = (size_t)content_length;
    }
    resp->body = malloc(avail ? avail : 1);
    if (!resp->body) { free(buf); snprintf(err, errcap, "out of memory"); return -1; }
    memcpy(resp->body, buf + body_at, avail);
    resp->body_len = avail;
    free(buf);
    return 0;
}

/* ---- the host ------------------------------------------------------------------------------ */

#define MAX_QUEUE 32

typedef struct {
    uint64_t id;
    char *meta;
    uint8_t *body;
    size_t body_len;
} PendingHttp;

typedef struct {
    MlChats *chats;
    const char *cred_path;
    PendingHttp http[MAX_QUEUE];
    size_t n_http;
    uint64_t tickets[MAX_QUEUE];
    size_t n_tickets;
    char *events[MAX_QUEUE];
    size_t n_events;
    int failed;
} Host;

static void record_event(Host *h, const char *json) {
    say("event   %s", json);
    if (h->n_events < MAX_QUEUE) h->events[h->n_events++] = strdup(json);
    else h->failed = 1;
}

static void clear_events(Host *h) {
    for (size_t i = 0; i < h->n_events; i++) free(h->events[i]);
    h->n_events = 0;
}

/* The first event of this type (and containing `also`, if given), or NULL. */
static const char *find_event(const Host *h, const char *type, const char *also) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    for (size_t i = 0; i < h->n_events; i++)
        if (strstr(h->events[i], pat) && (!also || strstr(h->events[i], also))) return h->events[i];
    return NULL;
}

static int do_persist(Host *h, uint64_t ticket, const uint8_t *bytes, size_t len) {
    if (write_atomic(h->cred_path, bytes, len) != 0) {
        fprintf(stderr, "persist #%llu: cannot write %s: %s\n", (unsigned long long)ticket, h->cred_path,
                strerror(errno));
        return -1;
    }
    say("persist #%llu: %zu bytes -> %s (atomic, 0600)", (unsigned long long)ticket, len, h->cred_path);
    return 0;
}

static void do_http(Host *h, uint64_t id, const char *meta, const uint8_t *body, size_t body_len) {
    char method[16] = "?", url[2048] = "?", err[512];
    json_get(meta, "method", method, sizeof method);
    json_get(meta, "url", url, sizeof url);
    say("http #%llu -> %s %s (%zu-byte body)", (unsigned long long)id, method, url, body_len);
    HttpResponse resp;
    int rc;
    uint64_t t = now_ms();
    if (http_perform(meta, body, body_len, &resp, err, sizeof err) != 0) {
        say("http #%llu <- transport error: %s", (unsigned long long)id, err);
        rc = ml_chats_handle_transport_error(h->chats, id, err, now_ms());
        CHECK_RC(rc, "ml_chats_handle_transport_error");
        return;
    }
    say("http #%llu <- %d (%zu-byte body, %llu ms)", (unsigned long long)id, resp.status, resp.body_len,
        (unsigned long long)(now_ms() - t));
    rc = ml_chats_handle_response(h->chats, id, (uint16_t)resp.status, resp.headers_json, resp.body, resp.body_len,
                                  now_ms());
    CHECK_RC(rc, "ml_chats_handle_response");
    wipe(resp.body, resp.body_len); /* tokens */
    free(resp.body);
}

/* Callbacks: queue work; they never call back into the library. */
static void cb_send_http(void *ctx, uint64_t id, const char *meta_json, const uint8_t *body, size_t body_len) {
    Host *h = ctx;
    if (h->n_http == MAX_QUEUE) { h->failed = 1; return; }
    PendingHttp *p = &h->http[h->n_http++];
    p->id = id;
    p->meta = strdup(meta_json);
    p->body = malloc(body_len ? body_len : 1);
    if (!p->meta || !p->body) { h->failed = 1; return; }
    memcpy(p->body, body, body_len);
    p->body_len = body_len;
}

static void cb_persist(void *ctx, uint64_t ticket, const uint8_t *bytes, size_t len) {
    Host *h = ctx;
    if (do_persist(h, ticket, bytes, len) != 0 || h->n_tickets == MAX_QUEUE) { h->failed = 1; return; }
    h->tickets[h->n_tickets++] = ticket;
}

static void cb_emit_event(void *ctx, const char *event_json) { record_event(ctx, event_json); }

/* Wait for a deadline (bounded) and tell the core. */
static int wait_for(Host *h, int has_deadline, uint64_t deadline) {
    if (!has_deadline) {
        fprintf(stderr, "stuck: nothing to do and no deadline\n");
        return -1;
    }
    uint64_t now = now_ms();
    if (deadline > now + 15000) {
        fprintf(stderr, "next deadline is %llu ms away: giving up\n", (unsigned long long)(deadline - now));
        return -1;
    }
    if (deadline > now) sleep_ms(deadline - now);
    int rc = ml_chats_handle_timeout(h->chats, now_ms());
    CHECK_RC(rc, "ml_chats_handle_timeout");
    return rc == ML_OK ? 0 : -1;
}

/* Pump until an event of `type` (containing `also`) arrives. */
static int drive_pump(Host *h, const char *type, const char *also) {
    MlCallbacks cbs = {h, cb_send_http, cb_persist, cb_emit_event, NULL}; /* no realtime session: ws unused */
    for (int step = 0; step < 50; step++) {
        int32_t has_deadline = 0;
        uint64_t deadline = 0;
        int rc = ml_chats_pump(h->chats, &cbs, &has_deadline, &deadline);
        CHECK_RC(rc, "ml_chats_pump");
        if (rc != ML_OK || h->failed) return -1;
        if (find_event(h, type, also)) return 0;
        if (find_event(h, "auth_failed", NULL)) return -1;
        if (h->n_tickets == 0 && h->n_http == 0) {
            if (wait_for(h, has_deadline, deadline) != 0) return -1;
            continue;
        }
        for (size_t i = 0; i < h->n_tickets; i++) {
            rc = ml_chats_handle_persisted(h->chats, h->tickets[i], now_ms());
            CHECK_RC(rc, "ml_chats_handle_persisted");
        }
        h->n_tickets = 0;
        for (size_t i = 0; i < h->n_http; i++) {
            PendingHttp *p = &h->http[i];
            do_http(h, p->id, p->meta, p->body, p->body_len);
            wipe(p->meta, strlen(p->meta));
            wipe(p->body, p->body_len);
            free(p->meta);
            free(p->body);
        }
        h->n_http = 0;
    }
    fprintf(stderr, "no %s event after 50 pumps\n", type);
    return -1;
}

/* Read the current output's meta or body: first into a small buffer, then into one of the
 * size the library reports. Returns a malloc'd, NUL-terminated copy. */
typedef int32_t (*ReadFn)(const MlChats *, uint8_t *, size_t, size_t *);
static uint8_t *read_current(MlChats *c, ReadFn read, size_t *len_out) {
    uint8_t small[32];
    size_t needed = 0;
    int rc = read(c, small, sizeof small, &needed);
    if (rc == ML_OK) {
        uint8_t *copy = malloc(needed + 1);
        if (!copy) return NULL;
        memcpy(copy, small, needed);
        copy[needed] = 0;
        wipe(small, sizeof small);
        if (len_out) *len_out = needed;
        return copy;
    }
    CHECK(rc == ML_BUFFER_TOO_SMALL && needed > sizeof small, "read: %s", ml_error_code_name(rc));
    uint8_t *buf = malloc(needed + 1);
    if (!buf) return NULL;
    rc = read(c, buf, needed + 1, &needed);
    CHECK_RC(rc, "read current output (retry)");
    CHECK(buf[needed] == 0, "a NUL is appended when there is room");
    if (len_out) *len_out = needed;
    return buf;
}

/* Poll until an event of `type` (containing `also`) arrives. */
static int drive_poll(Host *h, const char *type, const char *also) {
    for (int step = 0; step < 200; step++) {
        MlOutput out;
        int rc = ml_chats_poll(h->chats, &out);
        CHECK_RC(rc, "ml_chats_poll");
        if (rc != ML_OK) return -1;
        switch (out.kind) {
        case ML_OUTPUT_WAIT:
            if (find_event(h, type, also)) return 0;
            if (find_event(h, "auth_failed", NULL)) return -1;
            if (wait_for(h, out.has_deadline, out.deadline_ms) != 0) return -1;
            break;
        case ML_OUTPUT_HTTP: {
            size_t body_len = 0;
            char *meta = (char *)read_current(h->chats, ml_chats_output_meta, NULL);
            uint8_t *body = read_current(h->chats, ml_chats_output_body, &body_len);
            CHECK(meta && body && body_len == out.body_len, "http output readable");
            if (!meta || !body) return -1;
            do_http(h, out.id, meta, body, body_len);
            wipe(body, body_len);
            free(meta);
            free(body);
            break;
        }
        case ML_OUTPUT_PERSIST: {
            size_t len = 0;
            uint8_t *bytes = read_current(h->chats, ml_chats_output_body, &len);
            CHECK(bytes && len == out.body_len, "persist output readable");
            if (!bytes || do_persist(h, out.id, bytes, len) != 0) { free(bytes); return -1; }
            wipe(bytes, len);
            free(bytes);
            rc = ml_chats_handle_persisted(h->chats, out.id, now_ms());
            CHECK_RC(rc, "ml_chats_handle_persisted");
            break;
        }
        case ML_OUTPUT_EVENT: {
            char *meta = (char *)read_current(h->chats, ml_chats_output_meta, NULL);
            if (!meta) return -1;
            /* {"kind":"event","event":{...}}: keep the inner object. */
            const char *inner = strstr(meta, "\"event\":");
            CHECK(inner != NULL, "event meta has an event: %s", meta);
            if (inner) {
                inner += strlen("\"event\":");
                size_t l = strlen(inner);
                char *copy = strdup(inner);
                if (copy && l > 0) copy[l - 1] = '\0'; /* drop the outer closing brace */
                if (copy) record_event(h, copy);
                free(copy);
            }
            free(meta);
            break;
        }
        default:
            CHECK(0, "unknown output kind %u", out.kind);
            return -1;
        }
    }
    fprintf(stderr, "no %s event after 200 polls\n", type);
    return -1;
}

/* An active realtime session through the C ABI: connect, subscribe, then feed recorded server
 * frames (`frames_path`: the channels to follow as a JSON array on the first line, then one
 * frame per line) as if they came from the socket, answering every output on the way (HTTP for
 * real, e.g. the pending poll; sockets the library opens are "opened" at once). Every frame must
 * end in at least one event; the recorded messages for followed channels arrive. Run under
 * valgrind by run.sh. */
static int realtime_replay(Host *h, const char *frames_path) {
    uint8_t *raw = NULL;
    size_t text_len = 0;
    CHECK(read_file(frames_path, &raw, &text_len) == 0, "read %s", frames_path);
    if (!raw) return -1;
    char *text = calloc(text_len + 1, 1); /* NUL-terminated for strtok_r */
    if (!text) { free(raw); return -1; }
    memcpy(text, raw, text_len);
    free(raw);
    char *save = NULL;
    char *channels = strtok_r(text, "\n", &save);
    int rc = ml_chats_connect(h->chats, now_ms());
    CHECK_RC(rc, "ml_chats_connect");
    rc = ml_chats_subscribe(h->chats, channels, now_ms());
    CHECK_RC(rc, "ml_chats_subscribe");
    uint64_t conn = 0;
    size_t frames = 0, events = 0, messages = 0, sends = 0;
    char *frame = NULL;
    for (;;) {
        /* Answer outputs until the library waits. */
        for (int step = 0; step < 10000; step++) {
            MlOutput out;
            rc = ml_chats_poll(h->chats, &out);
            CHECK_RC(rc, "ml_chats_poll");
            if (rc != ML_OK || out.kind == ML_OUTPUT_WAIT) break;
            char *meta = (char *)read_current(h->chats, ml_chats_output_meta, NULL);
            size_t body_len = 0;
            uint8_t *body = read_current(h->chats, ml_chats_output_body, &body_len);
            if (!meta || !body) { free(meta); free(body); free(text); return -1; }
            if (out.kind == ML_OUTPUT_HTTP) {
                do_http(h, out.id, meta, body, body_len);
            } else if (out.kind == ML_OUTPUT_PERSIST) {
                CHECK(do_persist(h, out.id, body, body_len) == 0, "persist");
                CHECK_RC(ml_chats_handle_persisted(h->chats, out.id, now_ms()), "ml_chats_handle_persisted");
            } else if (out.kind == ML_OUTPUT_EVENT) {
                events++;
                if (strstr(meta, "\"type\":\"message\"")) messages++;
                if (getenv("REPLAY_DEBUG")) say("event   %.160s", meta);
            } else if (out.kind == ML_OUTPUT_WS_OPEN) {
                const char *c = strstr(meta, "\"conn\":");
                conn = c ? strtoull(c + 7, NULL, 10) : 0;
                CHECK_RC(ml_chats_handle_ws_open(h->chats, conn, now_ms()), "ml_chats_handle_ws_open");
            } else if (out.kind == ML_OUTPUT_WS_SEND) {
                sends++;
            }
            wipe(meta, strlen(meta));
            wipe(body, body_len);
            free(meta);
            free(body);
        }
        frame = strtok_r(NULL, "\n", &save);
        if (!frame) break;
        CHECK(conn != 0, "a socket is open before frame %zu", frames);
        rc = ml_chats_handle_ws_frame(h->chats, conn, (const uint8_t *)frame, strlen(frame), now_ms());
        CHECK_RC(rc, "ml_chats_handle_ws_frame");
        frames++;
    }
    say("realtime %zu recorded frames -> %zu events (%zu messages), %zu frames sent", frames, events, messages, sends);
    CHECK(frames > 0 && events >= frames, "every frame ends in an event (%zu frames, %zu events)", frames, events);
    CHECK(messages > 0, "recorded messages delivered");
    rc = ml_chats_disconnect(h->chats, now_ms());
    CHECK_RC(rc, "ml_chats_disconnect");
    free(text);
    return 0;
}

/* Error paths that need no server. */
static void exercise_errors(MlChats *c) {
    MlOutput out;
    size_t needed = 0;
    int rc = ml_chats_poll(NULL, &out);
    CHECK(rc == ML_NULL_POINTER, "poll(NULL) -> %s", ml_error_code_name(rc));
    size_t need = ml_last_error_message(NULL, 0);
    char msg[256];
    CHECK(need > 1 && need <= sizeof msg, "last error size %zu", need);
    ml_last_error_message((uint8_t *)msg, sizeof msg);
    CHECK(strstr(msg, "NULL") != NULL, "message: %s", msg);
    char tiny[5];
    CHECK(ml_last_error_message((uint8_t *)tiny, sizeof tiny) == need && strlen(tiny) == 4, "truncated");
    say("error   poll(NULL) -> %s: %s", ml_error_code_name(rc), msg);

    CHECK(!strcmp(ml_error_code_name(ML_BUFFER_TOO_SMALL), "BUFFER_TOO_SMALL"), "code name");
    CHECK(!strcmp(ml_error_code_name(12345), "UNKNOWN"), "unknown code name");
    rc = ml_chats_output_meta(c, NULL, 0, &needed);
    CHECK(rc == ML_NO_OUTPUT, "meta before poll -> %s", ml_error_code_name(rc));
    rc = ml_chats_handle_response(c, 999999, 200, "[]", NULL, 0, now_ms());
    CHECK(rc == ML_UNKNOWN_ID, "unknown id -> %s", ml_error_code_name(rc));
    say("error   handle_response(999999) -> %s: %s", ml_error_code_name(rc), last_error());
    rc = ml_chats_handle_response(c, 1, 200, "{\"not\":\"pairs\"}", NULL, 0, now_ms());
    CHECK(rc == ML_INVALID_ARGUMENT, "bad headers_json -> %s", ml_error_code_name(rc));
    const char bad_utf8[] = {'a', (char)0xff, 0};
    rc = ml_chats_register(c, bad_utf8, now_ms());
    CHECK(rc == ML_INVALID_UTF8, "bad UTF-8 -> %s", ml_error_code_name(rc));
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s <api-base> <username> <credentials-path> [recorded-frames]\n", argv[0]);
        return 2;
    }
    const char *api = argv[1], *username = argv[2], *path = argv[3];
    signal(SIGPIPE, SIG_IGN);
    printf("moltlink %s C host: %s as %s, credentials %s\n", ml_version(), api, username, path);

    uint8_t seed[32];
    int ufd = open("/dev/urandom", O_RDONLY);
    CHECK(ufd >= 0 && read(ufd, seed, sizeof seed) == (ssize_t)sizeof seed, "read /dev/urandom");
    if (ufd >= 0) close(ufd);

    uint8_t *creds = NULL;
    size_t creds_len = 0;
    int have_creds = read_file(path, &creds, &creds_len) == 0;
    Host h = {0};
    h.cred_path = path;
    int rc = ml_chats_new(api, creds, creds_len, seed, sizeof seed, &h.chats);
    wipe(seed, sizeof seed);
    if (creds) { wipe(creds, creds_len); free(creds); }
    CHECK_RC(rc, "ml_chats_new");
    if (rc != ML_OK) return 1;

    exercise_errors(h.chats);

    /* 1. Register, or log in with the saved credentials (pump). */
    if (have_creds) {
        say("step    login with saved credentials (%zu bytes)", creds_len);
        rc = ml_chats_login(h.chats, now_ms());
        CHECK_RC(rc, "ml_chats_login");
        /* The saved refresh token is usable, so this is a rotation, not a challenge. */
        CHECK(drive_pump(&h, "authenticated", "\"how\":\"refresh\"") == 0, "login by refresh completes");
    } else {
        say("step    register %s", username);
        rc = ml_chats_register(h.chats, username, now_ms());
        CHECK_RC(rc, "ml_chats_register");
        CHECK(drive_pump(&h, "authenticated", "\"how\":\"register\"") == 0, "registration completes");
        CHECK(find_event(&h, "registered", NULL) != NULL, "registered event");
    }
    int32_t authed = 0;
    rc = ml_chats_is_authenticated(h.chats, now_ms(), &authed);
    CHECK(rc == ML_OK && authed == 1, "authenticated after login");

    /* The agent id, through a too-small buffer first. */
    char small[4], agent_id[128];
    size_t needed = 0;
    rc = ml_chats_agent_id(h.chats, (uint8_t *)small, sizeof small, &needed);
    CHECK(rc == ML_BUFFER_TOO_SMALL && needed >= sizeof small, "tiny buffer -> %s", ml_error_code_name(rc));
    say("error   agent_id(4-byte buffer) -> %s, %zu bytes needed: %s", ml_error_code_name(rc), needed, last_error());
    CHECK(needed < sizeof agent_id, "agent id fits");
    rc = ml_chats_agent_id(h.chats, (uint8_t *)agent_id, needed + 1, &needed);
    CHECK_RC(rc, "ml_chats_agent_id");
    say("agent   id %s", agent_id);
    clear_events(&h);

    /* 2. Force one refresh (poll + buffers). */
    say("step    refresh");
    rc = ml_chats_refresh(h.chats, now_ms());
    CHECK_RC(rc, "ml_chats_refresh");
    CHECK(drive_poll(&h, "authenticated", "\"how\":\"refresh\"") == 0, "refresh completes");
    clear_events(&h);

    /* 3. whoami (pump). */
    uint64_t call_id = 0;
    say("step    whoami");
    rc = ml_chats_whoami(h.chats, now_ms(), &call_id);
    CHECK_RC(rc, "ml_chats_whoami");
    CHECK(drive_pump(&h, "call_succeeded", NULL) == 0, "whoami completes");
    const char *done = find_event(&h, "call_succeeded", NULL);
    char want_user[128], want_call[64];
    snprintf(want_user, sizeof want_user, "\"username\":\"%s\"", username);
    snprintf(want_call, sizeof want_call, "\"call_id\":%llu", (unsigned long long)call_id);
    CHECK(done && strstr(done, want_user), "whoami names %s", username);
    CHECK(done && strstr(done, want_call), "whoami answers call %llu", (unsigned long long)call_id);
    clear_events(&h);

    /* 4. An active realtime session fed recorded frames (optional). */
    if (argc == 5) {
        say("step    realtime session, recorded frames from %s", argv[4]);
        CHECK(realtime_replay(&h, argv[4]) == 0, "realtime replay");
    }

    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "credentials file is 0600");

    ml_chats_free(h.chats);
    printf("%s: %d checks passed, %d failed\n", have_creds ? "reload run" : "register run", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
