/*
 * tether's signed session cookie, read natively for the gateway's lane: the common case of
 * hashing/session/decide.read_cookie_value in "signed" mode, nothing else.
 *
 *   SessionCheck(context, keys, window)   keys: [(id, secret, activates_at, retires_at|None)]
 *   check.verify(value, now) -> address (bytes) | None
 *
 * verify answers the address only when Python would honour the value without re-issuing it:
 * canonical base64 of tether's own signed layout (wire._parse_canonical with the signed tail),
 * a key that still verifies at `now`, an equal HMAC-SHA-256 tag (first 128 bits, over
 * signing.mac_message), not expired, signed by the key that signs now and with at least half
 * its sliding window left. Everything else is None and the caller hands the request to the
 * Python path, which judges, counts and re-issues (the unit tests hold the two equal with
 * hypothesis). Address and key id must be ASCII here (Python decodes them as UTF-8).
 *
 * SHA-256 is FIPS 180-4; its round constants are derived at import from the primes, exactly
 * (integer square and cube roots), instead of being typed in. HMAC is RFC 2104 with the
 * padded inner/outer states and the constant message prefix absorbed once per key.
 *
 * A browser sends the same value on every request, so values whose tag verified are kept in
 * a cache of 8,192 entries, two-way (1.7 MiB; value bytes compared exactly, tagged with the SessionCheck's
 * serial number, so a new key ring or route never sees another's entries): a hit skips the
 * base64 decoding and the HMAC, and still re-checks everything that depends on the clock
 * (the key's retirement, the signer, expiry, the half window). Only verified values enter
 * it, so a forged value can at most evict an entry (which is then verified again).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "wire.h"

#define MAC_BYTES 16
#define MAX_KEYS 8
#define MAX_KEY_ID 32
#define DOMAIN "tether-session-v1"

static uint32_t K[64], H0[8];

/* floor(x^(1/r)) for r = 2 or 3, exact, for x < 2^110. */
static unsigned __int128 iroot(unsigned __int128 x, int r) {
    unsigned __int128 lo = 0, hi = (unsigned __int128)1 << (r == 2 ? 56 : 38);
    while (lo < hi) {
        unsigned __int128 mid = (lo + hi + 1) / 2, p = mid * mid;
        if (r == 3) {
            p *= mid;
        }
        if (p <= x) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

/* K: first 32 bits of the fractional parts of the cube roots of the first 64 primes;
 * H0: of the square roots of the first 8. */
static void sha256_constants(void) {
    int found = 0;
    for (unsigned p = 2; found < 64; p++) {
        int prime = 1;
        for (unsigned d = 2; d * d <= p; d++) {
            if (p % d == 0) {
                prime = 0;
                break;
            }
        }
        if (!prime) {
            continue;
        }
        K[found] = (uint32_t)iroot((unsigned __int128)p << 96, 3);
        if (found < 8) {
            H0[found] = (uint32_t)iroot((unsigned __int128)p << 64, 2);
        }
        found++;
    }
}

typedef struct {
    uint32_t h[8];
    unsigned char buf[64];
    uint64_t total; /* bytes absorbed */
    unsigned n;     /* bytes waiting in buf */
} sha256;

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const unsigned char *block) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void sha_init(sha256 *s) {
    memcpy(s->h, H0, sizeof H0);
    s->total = 0;
    s->n = 0;
}

static void sha_update(sha256 *s, const unsigned char *p, size_t len) {
    s->total += len;
    if (s->n) {
        size_t take = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, take);
        s->n += (unsigned)take, p += take, len -= take;
        if (s->n < 64) {
            return;
        }
        compress(s->h, s->buf);
        s->n = 0;
    }
    for (; len >= 64; p += 64, len -= 64) {
        compress(s->h, p);
    }
    memcpy(s->buf, p, len);
    s->n = (unsigned)len;
}

static void sha_final(sha256 *s, unsigned char out[32]) {
    uint64_t bits = s->total * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (s->n < 56 ? 56 : 120) - s->n;
    for (int i = 0; i < 8; i++) {
        pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha_update(s, pad, padlen + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24), out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8), out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v) {
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

typedef struct {
    char id[MAX_KEY_ID];
    Py_ssize_t idlen;
    long long activates, retires; /* retires < 0: open-ended */
    sha256 inner;                 /* after key^ipad and the message prefix */
    sha256 outer;                 /* after key^opad */
} skey;

typedef struct {
    PyObject_HEAD
    int nkeys;
    long long window;
    uint64_t serial; /* unique per SessionCheck: the cache's owner tag */
    skey keys[MAX_KEYS]; /* sorted by (activates_at, id), as signing.KeyRing */
} SessionCheck;

#define CACHE_SLOTS 8192 /* even: slots 2k and 2k+1 form a set */
#define CACHE_VALUE 128  /* longer values (or addresses) are verified every time */
#define CACHE_ADDR 56
typedef struct {
    uint64_t serial; /* 0: empty */
    uint64_t expires, valid_until;
    int key;
    unsigned char vlen, alen, age;
    char value[CACHE_VALUE];
    char addr[CACHE_ADDR];
} centry;
static centry CACHE[CACHE_SLOTS];
static uint64_t SERIALS;

static uint32_t slot_of(uint64_t serial, const char *v, Py_ssize_t n) {
    uint32_t h = 2166136261u ^ (uint32_t)serial; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)v[i]) * 16777619u;
    }
    return (h % (CACHE_SLOTS / 2)) * 2;
}

static int key_setup(skey *k, const char *id, Py_ssize_t idlen, const unsigned char *secret,
                     Py_ssize_t slen, const unsigned char *context, Py_ssize_t clen) {
    unsigned char block[64] = {0}, ipad[64], opad[64], lp[4];
    if (slen > 64) {
        sha256 s;
        sha_init(&s);
        sha_update(&s, secret, (size_t)slen);
        sha_final(&s, block);
    } else {
        memcpy(block, secret, (size_t)slen);
    }
    for (int i = 0; i < 64; i++) {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
    }
    sha_init(&k->inner);
    sha_update(&k->inner, ipad, 64);
    sha_update(&k->inner, (const unsigned char *)DOMAIN, sizeof DOMAIN - 1);
    put_u32(lp, (uint32_t)clen);
    sha_update(&k->inner, lp, 4);
    sha_update(&k->inner, context, (size_t)clen);
    put_u32(lp, (uint32_t)idlen);
    sha_update(&k->inner, lp, 4);
    sha_update(&k->inner, (const unsigned char *)id, (size_t)idlen);
    sha_init(&k->outer);
    sha_update(&k->outer, opad, 64);
    memcpy(k->id, id, (size_t)idlen);
    k->idlen = idlen;
    return 0;
}

static int key_before(const skey *a, const skey *b) {
    if (a->activates != b->activates) {
        return a->activates < b->activates;
    }
    int c = memcmp(a->id, b->id, (size_t)(a->idlen < b->idlen ? a->idlen : b->idlen));
    return c < 0 || (c == 0 && a->idlen < b->idlen);
}

static PyObject *check_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Py_buffer context;
    PyObject *keys;
    long long window;
    if (kw != NULL && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "SessionCheck takes positional arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*OL", &context, &keys, &window)) {
        return NULL;
    }
    SessionCheck *self = NULL;
    PyObject *seq = PySequence_Fast(keys, "keys must be a sequence");
    if (seq == NULL) {
        goto out;
    }
    if (PySequence_Fast_GET_SIZE(seq) > MAX_KEYS) {
        PyErr_SetString(PyExc_ValueError, "too many keys");
        goto out;
    }
    self = (SessionCheck *)type->tp_alloc(type, 0);
    if (self == NULL) {
        goto out;
    }
    self->window = window;
    self->serial = ++SERIALS;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        const char *id;
        Py_ssize_t idlen;
        Py_buffer secret;
        long long activates;
        PyObject *retires;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "s#y*LO", &id, &idlen, &secret,
                              &activates, &retires)) {
            Py_CLEAR(self);
            goto out;
        }
        skey *k = &self->keys[self->nkeys];
        long long r = retires == Py_None ? -1 : PyLong_AsLongLong(retires);
        if (idlen < 1 || idlen > MAX_KEY_ID || (r == -1 && PyErr_Occurred())) {
            PyBuffer_Release(&secret);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "key id must be 1-32 bytes");
            }
            Py_CLEAR(self);
            goto out;
        }
        key_setup(k, id, idlen, secret.buf, secret.len, context.buf, context.len);
        PyBuffer_Release(&secret);
        k->activates = activates;
        k->retires = retires == Py_None ? -1 : r;
        for (int j = self->nkeys; j > 0 && key_before(&self->keys[j], &self->keys[j - 1]); j--) {
            skey t = self->keys[j];
            self->keys[j] = self->keys[j - 1];
            self->keys[j - 1] = t;
        }
        self->nkeys++;
    }
out:
    Py_XDECREF(seq);
    PyBuffer_Release(&context);
    return (PyObject *)self;
}

static signed char B64[256];

static void b64_table(void) {
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(B64, -1, sizeof B64);
    for (int i = 0; a[i]; i++) {
        B64[(unsigned char)a[i]] = (signed char)i;
    }
}

/* wire.b64decode: canonical padded standard base64 only; the decoded length, or -1. */
static Py_ssize_t b64_decode(const unsigned char *s, Py_ssize_t n, unsigned char *out) {
    if (n == 0 || n % 4) {
        return -1;
    }
    int pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i += 4) {
        int last = i + 4 == n, v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = last && j >= 4 - pad ? 0 : B64[s[i + j]];
            if (v[j] < 0) {
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        out[o++] = (unsigned char)(x >> 16);
        if (!(last && pad == 2)) {
            out[o++] = (unsigned char)(x >> 8);
        }
        if (!(last && pad)) {
            out[o++] = (unsigned char)x;
        }
    }
    if ((pad == 2 && (B64[s[n - 3]] & 0x0F)) || (pad == 1 && (B64[s[n - 2]] & 0x03))) {
        return -1; /* non-zero unused bits: not canonical */
    }
    return o;
}

/* wire._varint with at most `limit` bytes; the next position, or -1. */
static Py_ssize_t varint(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end, int limit,
                         uint64_t *value) {
    uint64_t v = 0;
    for (int i = 0; i < limit; i++) {
        if (pos >= end) {
            return -1;
        }
        unsigned char b = d[pos++];
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (b < 0x80) {
            *value = v;
            return pos;
        }
    }
    return -1;
}

static int ascii(const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* The clock-dependent half of the decision, for a value whose tag verified with keys[key]. */
static int still_good(const SessionCheck *self, int key, uint64_t expires, uint64_t valid_until,
                      long long now) {
    const skey *k = &self->keys[key], *signer = NULL;
    if (k->retires >= 0 && now >= k->retires) {
        return 0; /* retired since: unknown key */
    }
    for (int i = self->nkeys - 1; i >= 0 && signer == NULL; i--) {
        const skey *c = &self->keys[i];
        if ((c->retires < 0 || now < c->retires) && c->activates <= now) {
            signer = c;
        }
    }
    if (signer != k) {
        return 0; /* a stale signer (re-issue), or no signer (Python decides) */
    }
    uint64_t t = now < 0 ? 0 : (uint64_t)now;
    if ((expires && t > expires) || (valid_until && t > valid_until)) {
        return 0; /* expired */
    }
    /* Python: valid_until - now < window // 2 (exact integers; a huge valid_until never is) */
    if (valid_until < (uint64_t)LLONG_MAX && (long long)valid_until - now < self->window / 2) {
        return 0; /* half the window used: re-issue */
    }
    return 1;
}

/* The address of a value Python honours as is (module docstring) in addr and alen, and 1;
 * else 0. */
int session_verify(PyObject *obj, const char *value, Py_ssize_t vlen, long long now,
                   const char **addr, Py_ssize_t *alen, unsigned char *scratch) {
    SessionCheck *self = (SessionCheck *)obj;
    if (vlen > 256) {
        return 0;
    }
    centry *c = NULL;
    if (vlen <= CACHE_VALUE) {
        centry *set = &CACHE[slot_of(self->serial, value, vlen)];
        for (int w = 0; w < 2; w++) {
            centry *e = &set[w];
            if (e->serial == self->serial && e->vlen == vlen &&
                !memcmp(e->value, value, (size_t)vlen)) {
                e->age = 0;
                set[1 - w].age = 1;
                if (!still_good(self, e->key, e->expires, e->valid_until, now)) {
                    return 0;
                }
                *addr = e->addr;
                *alen = e->alen;
                return 1;
            }
        }
        c = set[0].age >= set[1].age ? &set[0] : &set[1]; /* the way used least recently */
    }
    unsigned char *d = scratch;
    Py_ssize_t n = b64_decode((const unsigned char *)value, vlen, d);
    if (n < 2 || d[0] != 0x0A || d[1] > 0x7F) {
        return 0;
    }
    Py_ssize_t a0 = 2, pos = 2 + d[1];
    uint64_t expires = 0, valid_until = 0;
    if (pos < n && d[pos] == 0x10 && (pos = varint(d, pos + 1, n, 9, &expires)) < 0) {
        return 0;
    }
    if (pos + 2 > n || d[pos] != 0xC8 || d[pos + 1] != 0x3E) {
        return 0;
    }
    pos = varint(d, pos + 2, n, 9, &valid_until);
    if (pos < 0 || pos + 3 > n || d[pos] != 0xD2 || d[pos + 1] != 0x3E || d[pos + 2] > 0x7F) {
        return 0;
    }
    Py_ssize_t k0 = pos + 3, klen = d[pos + 2];
    pos = k0 + klen;
    if (pos + 3 + MAC_BYTES != n || d[pos] != 0xDA || d[pos + 1] != 0x3E || d[pos + 2] != 0x10) {
        return 0;
    }
    Py_ssize_t alen_ = d[1];
    if (alen_ == 0 || !ascii(d + a0, alen_) || !ascii(d + k0, klen)) {
        return 0;
    }
    int ki = -1;
    for (int i = self->nkeys - 1; i >= 0 && ki < 0; i--) {
        const skey *k = &self->keys[i];
        if ((k->retires < 0 || now < k->retires) && k->idlen == klen &&
            !memcmp(k->id, d + k0, (size_t)klen)) {
            ki = i;
        }
    }
    if (ki < 0) {
        return 0; /* unknown or retired key: rejected */
    }
    const skey *key = &self->keys[ki];
    unsigned char tail[4 + 128 + 16], digest[32];
    put_u32(tail, (uint32_t)alen_);
    memcpy(tail + 4, d + a0, (size_t)alen_);
    put_u64(tail + 4 + alen_, expires);
    put_u64(tail + 12 + alen_, valid_until);
    sha256 s = key->inner;
    sha_update(&s, tail, (size_t)(20 + alen_));
    sha_final(&s, digest);
    s = key->outer;
    sha_update(&s, digest, 32);
    sha_final(&s, digest);
    unsigned char diff = 0;
    const unsigned char *mac = d + n - MAC_BYTES;
    for (int i = 0; i < MAC_BYTES; i++) {
        diff |= (unsigned char)(digest[i] ^ mac[i]);
    }
    if (diff) {
        return 0;
    }
    if (c != NULL && alen_ <= CACHE_ADDR) { /* verified: remember it, whatever the clock says */
        CACHE[(c - CACHE) ^ 1].age = 1; /* the other way of the set */
        c->age = 0;
        c->serial = self->serial;
        c->vlen = (unsigned char)vlen;
        memcpy(c->value, value, (size_t)vlen);
        c->alen = (unsigned char)alen_;
        memcpy(c->addr, d + a0, (size_t)alen_);
        c->key = ki;
        c->expires = expires;
        c->valid_until = valid_until;
    }
    if (!still_good(self, ki, expires, valid_until, now)) {
        return 0;
    }
    *addr = (const char *)(d + a0);
    *alen = alen_;
    return 1;
}

static PyObject *check_verify(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "verify(value: bytes, now: int)");
        return NULL;
    }
    long long now = PyLong_AsLongLong(args[1]);
    if (now == -1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned char scratch[256];
    const char *addr;
    Py_ssize_t alen;
    if (!session_verify(self, PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), now, &addr,
                        &alen, scratch)) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(addr, alen);
}

static PyMethodDef check_methods[] = {
    {"verify", (PyCFunction)(void (*)(void))check_verify, METH_FASTCALL,
     "verify(value, now) -> address | None (see wire/session.c)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject SessionCheckType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tether.gateway.wire._wire.SessionCheck",
    .tp_basicsize = sizeof(SessionCheck),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Precomputed keys of one Service's signed session cookies (wire/session.c).",
    .tp_new = check_new,
    .tp_methods = check_methods,
};

static PyObject *sha256_digest(PyObject *mod, PyObject *arg) {
    Py_buffer b;
    unsigned char out[32];
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    sha256 s;
    sha_init(&s);
    sha_update(&s, b.buf, (size_t)b.len);
    sha_final(&s, out);
    PyBuffer_Release(&b);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

PyMethodDef session_methods[] = {
    {"sha256", sha256_digest, METH_O, "SHA-256 of a bytes-like object (tested against hashlib)."},
    {NULL, NULL, 0, NULL},
};

int session_init(PyObject *module) {
    sha256_constants();
    b64_table();
    if (PyType_Ready(&SessionCheckType) < 0) {
        return -1;
    }
    Py_INCREF(&SessionCheckType);
    if (PyModule_AddObject(module, "SessionCheck", (PyObject *)&SessionCheckType) < 0) {
        Py_DECREF(&SessionCheckType);
        return -1;
    }
    return 0;
}
