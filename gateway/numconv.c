/* numconv.c — decimal text to doubles and back (numconv.h).
 *
 * Both directions are on the ingest hot path (a float per field read, a
 * float per field written when a point is re-encoded), so neither goes
 * through the C library's locale-aware printf/strtod except in rare cases:
 * reading takes exact fast paths and falls back to strtod_l; writing uses
 * grisu2 and a table-free integer writer (numconv.h, inline). */
#include "numconv.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* ------------------------------------------------------------------ */
/* Reading */

/* strtod follows LC_NUMERIC; line protocol always uses '.', whatever locale
 * the process (or an embedding library) has set. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Exact powers of ten: up to 1e22 every one is a double, which makes the
 * fast path below correctly rounded (Clinger). */
const double gw_num_pow10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#if LDBL_MANT_DIG == 64
/* x87 extended precision: every integer below 2^64 and every power of ten
 * up to 1e27 (5^27 < 2^64) is exact. */
static const long double pow10_ext[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};
#endif

int gw_num_parse_double(const char *s, size_t n, double *out)
{
    const char *p = s, *e = s + n;
    uint64_t m = 0;
    int nsig = 0, exp10 = 0, neg = 0;
    char small[64];
    char *z;
    double d;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; p < e && is_digit(*p); p++) {
        if (m || *p != '0') {
            m = m * 10 + (uint64_t)(*p - '0');
            nsig++;
        }
        if (nsig > 19)
            goto slow;
    }
    if (p < e && *p == '.') {
        for (p++; p < e && is_digit(*p); p++) {
            if (m || *p != '0') {
                m = m * 10 + (uint64_t)(*p - '0');
                nsig++;
            }
            if (nsig > 19)
                goto slow;
            exp10--;
        }
    }
    if (p < e) { /* exponent */
        int eneg = 0, x = 0;
        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        for (; p < e; p++)
            if (x < 100000) /* far beyond any double; keeps x from overflowing */
                x = x * 10 + (*p - '0');
        exp10 += eneg ? -x : x;
    }
    if (m == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if (m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        d = (double)m;
        d = exp10 < 0 ? d / gw_num_pow10[-exp10] : d * gw_num_pow10[exp10];
        *out = neg ? -d : d;
        return 0;
    }
#if LDBL_MANT_DIG == 64
    /* Computed values (0.1 + 0.2, averages, durations) print with 17 digits,
     * beyond the exact range above. In extended precision m / 10^k rounds
     * once, to 64 bits; rounding that to 53 bits is then correct unless it
     * landed exactly halfway between two doubles (low 11 bits 0x400): only
     * then could the first rounding have decided the second. */
    if (exp10 >= -27 && exp10 <= 27) {
        long double q = (long double)m;
        uint64_t sig;
        q = exp10 < 0 ? q / pow10_ext[-exp10] : q * pow10_ext[exp10];
        memcpy(&sig, &q, sizeof(sig)); /* the significand, explicit top bit */
        if ((sig & 0x7FF) != 0x400) {
            d = (double)q;
            *out = neg ? -d : d;
            return 0;
        }
    }
#endif

slow:
    /* Rare: more than 19 significant digits or a large exponent. strtod
     * needs a NUL-terminated copy; the body is not terminated. */
    if (n < sizeof(small)) {
        z = small;
    } else {
        z = malloc(n + 1);
        if (!z)
            return -ENOMEM;
    }
    memcpy(z, s, n);
    z[n] = '\0';
    pthread_once(&c_locale_once, c_locale_init);
    d = c_locale ? strtod_l(z, NULL, c_locale) : strtod(z, NULL);
    if (z != small)
        free(z);
    if (isinf(d))
        return -1;
    *out = d;
    return 0;
}
/* ------------------------------------------------------------------ */
/* Writing */

/* Shortest-digit double to decimal: Grisu2 (Loitsch, "Printing
 * floating-point numbers quickly and accurately with integers", PLDI 2010),
 * in the form of nlohmann/json's to_chars. Its digits always lie strictly
 * inside the rounding interval, so they read back bit-exact; in rare cases
 * they are one digit longer than the shortest. Locale-free and ~10x faster
 * than printf("%.17g") plus strtod checks. */

typedef struct {
    uint64_t f;
    int e;
} diyfp_t;

static diyfp_t diy_mul(diyfp_t x, diyfp_t y)
{
    unsigned __int128 p = (unsigned __int128)x.f * y.f;
    uint64_t h = (uint64_t)(p >> 64) + (uint64_t)((p >> 63) & 1); /* rounded */
    return (diyfp_t){h, x.e + y.e + 64};
}

static diyfp_t diy_normalize(diyfp_t x)
{
    int s = __builtin_clzll(x.f);
    return (diyfp_t){x.f << s, x.e - s};
}

/* 10^k for k = -300, -292, ..., 340 as f * 2^e, f normalised and rounded to
 * nearest (computed exactly with rational arithmetic). */
static const struct {
    uint64_t f;
    int e;
    int k;
} cached_pow10[] = {
    {0xAB70FE17C79AC6CAULL, -1060, -300}, {0xFF77B1FCBEBCDC4FULL, -1034, -292},
    {0xBE5691EF416BD60CULL, -1007, -284}, {0x8DD01FAD907FFC3CULL, -980, -276},
    {0xD3515C2831559A83ULL, -954, -268}, {0x9D71AC8FADA6C9B5ULL, -927, -260},
    {0xEA9C227723EE8BCBULL, -901, -252}, {0xAECC49914078536DULL, -874, -244},
    {0x823C12795DB6CE57ULL, -847, -236}, {0xC21094364DFB5637ULL, -821, -228},
    {0x9096EA6F3848984FULL, -794, -220}, {0xD77485CB25823AC7ULL, -768, -212},
    {0xA086CFCD97BF97F4ULL, -741, -204}, {0xEF340A98172AACE5ULL, -715, -196},
    {0xB23867FB2A35B28EULL, -688, -188}, {0x84C8D4DFD2C63F3BULL, -661, -180},
    {0xC5DD44271AD3CDBAULL, -635, -172}, {0x936B9FCEBB25C996ULL, -608, -164},
    {0xDBAC6C247D62A584ULL, -582, -156}, {0xA3AB66580D5FDAF6ULL, -555, -148},
    {0xF3E2F893DEC3F126ULL, -529, -140}, {0xB5B5ADA8AAFF80B8ULL, -502, -132},
    {0x87625F056C7C4A8BULL, -475, -124}, {0xC9BCFF6034C13053ULL, -449, -116},
    {0x964E858C91BA2655ULL, -422, -108}, {0xDFF9772470297EBDULL, -396, -100},
    {0xA6DFBD9FB8E5B88FULL, -369, -92}, {0xF8A95FCF88747D94ULL, -343, -84},
    {0xB94470938FA89BCFULL, -316, -76}, {0x8A08F0F8BF0F156BULL, -289, -68},
    {0xCDB02555653131B6ULL, -263, -60}, {0x993FE2C6D07B7FACULL, -236, -52},
    {0xE45C10C42A2B3B06ULL, -210, -44}, {0xAA242499697392D3ULL, -183, -36},
    {0xFD87B5F28300CA0EULL, -157, -28}, {0xBCE5086492111AEBULL, -130, -20},
    {0x8CBCCC096F5088CCULL, -103, -12}, {0xD1B71758E219652CULL, -77, -4},
    {0x9C40000000000000ULL, -50, 4}, {0xE8D4A51000000000ULL, -24, 12},
    {0xAD78EBC5AC620000ULL, 3, 20}, {0x813F3978F8940984ULL, 30, 28},
    {0xC097CE7BC90715B3ULL, 56, 36}, {0x8F7E32CE7BEA5C70ULL, 83, 44},
    {0xD5D238A4ABE98068ULL, 109, 52}, {0x9F4F2726179A2245ULL, 136, 60},
    {0xED63A231D4C4FB27ULL, 162, 68}, {0xB0DE65388CC8ADA8ULL, 189, 76},
    {0x83C7088E1AAB65DBULL, 216, 84}, {0xC45D1DF942711D9AULL, 242, 92},
    {0x924D692CA61BE758ULL, 269, 100}, {0xDA01EE641A708DEAULL, 295, 108},
    {0xA26DA3999AEF774AULL, 322, 116}, {0xF209787BB47D6B85ULL, 348, 124},
    {0xB454E4A179DD1877ULL, 375, 132}, {0x865B86925B9BC5C2ULL, 402, 140},
    {0xC83553C5C8965D3DULL, 428, 148}, {0x952AB45CFA97A0B3ULL, 455, 156},
    {0xDE469FBD99A05FE3ULL, 481, 164}, {0xA59BC234DB398C25ULL, 508, 172},
    {0xF6C69A72A3989F5CULL, 534, 180}, {0xB7DCBF5354E9BECEULL, 561, 188},
    {0x88FCF317F22241E2ULL, 588, 196}, {0xCC20CE9BD35C78A5ULL, 614, 204},
    {0x98165AF37B2153DFULL, 641, 212}, {0xE2A0B5DC971F303AULL, 667, 220},
    {0xA8D9D1535CE3B396ULL, 694, 228}, {0xFB9B7CD9A4A7443CULL, 720, 236},
    {0xBB764C4CA7A44410ULL, 747, 244}, {0x8BAB8EEFB6409C1AULL, 774, 252},
    {0xD01FEF10A657842CULL, 800, 260}, {0x9B10A4E5E9913129ULL, 827, 268},
    {0xE7109BFBA19C0C9DULL, 853, 276}, {0xAC2820D9623BF429ULL, 880, 284},
    {0x80444B5E7AA7CF85ULL, 907, 292}, {0xBF21E44003ACDD2DULL, 933, 300},
    {0x8E679C2F5E44FF8FULL, 960, 308}, {0xD433179D9C8CB841ULL, 986, 316},
    {0x9E19DB92B4E31BA9ULL, 1013, 324}, {0xEB96BF6EBADF77D9ULL, 1039, 332},
    {0xAF87023B9BF0EE6BULL, 1066, 340},
};

enum { G_ALPHA = -60, G_GAMMA = -32 };

/* Walk digits down while that moves closer to the value and stays inside
 * the interval (Grisu2's final rounding). */
static void grisu_round(char *buf, int len, uint64_t dist, uint64_t delta, uint64_t rest,
                        uint64_t ten_k)
{
    while (rest < dist && delta - rest >= ten_k &&
           (rest + ten_k < dist || dist - rest > rest + ten_k - dist)) {
        buf[len - 1]--;
        rest += ten_k;
    }
}

/* Digits of the positive, finite, non-zero v into buf (up to 17, no
 * leading zeros); returns their count, *k the decimal exponent: v ~ digits
 * * 10^k. */
static int grisu2(double v, char *buf, int *k)
{
    uint64_t bits, F;
    int E, len = 0, n, mexp = 0;
    diyfp_t w, m_plus, m_minus, c, wp, wm;
    uint64_t delta, dist, one_f, p2;
    uint32_t p1, pow10;

    memcpy(&bits, &v, sizeof(bits));
    E = (int)(bits >> 52);
    F = bits & ((UINT64_C(1) << 52) - 1);
    w = E ? (diyfp_t){F + (UINT64_C(1) << 52), E - 1075} : (diyfp_t){F, 1 - 1075};
    /* Boundaries halfway to the neighbours; the lower one is closer when v
     * is a power of two (but not the smallest normal). */
    m_plus = diy_normalize((diyfp_t){2 * w.f + 1, w.e - 1});
    m_minus = F == 0 && E > 1 ? (diyfp_t){4 * w.f - 1, w.e - 2} : (diyfp_t){2 * w.f - 1, w.e - 1};
    m_minus.f <<= m_minus.e - m_plus.e;
    m_minus.e = m_plus.e;
    w = diy_normalize(w);

    /* A cached 10^-k that brings the exponent into [alpha, gamma]. */
    {
        int f = G_ALPHA - m_plus.e - 1;
        int kk = (f * 78913) / (1 << 18) + (f > 0);
        int i = (300 + kk + 7) / 8;
        c = (diyfp_t){cached_pow10[i].f, cached_pow10[i].e};
        *k = -cached_pow10[i].k;
    }
    w = diy_mul(w, c);
    wp = diy_mul(m_plus, c);
    wm = diy_mul(m_minus, c);
    wm.f++; /* stay strictly inside the interval despite rounding */
    wp.f--;

    delta = wp.f - wm.f;
    dist = wp.f - w.f;
    one_f = UINT64_C(1) << -wp.e;
    p1 = (uint32_t)(wp.f >> -wp.e);
    p2 = wp.f & (one_f - 1);

    if (p1 >= 1000000000) { pow10 = 1000000000; n = 10; }
    else if (p1 >= 100000000) { pow10 = 100000000; n = 9; }
    else if (p1 >= 10000000) { pow10 = 10000000; n = 8; }
    else if (p1 >= 1000000) { pow10 = 1000000; n = 7; }
    else if (p1 >= 100000) { pow10 = 100000; n = 6; }
    else if (p1 >= 10000) { pow10 = 10000; n = 5; }
    else if (p1 >= 1000) { pow10 = 1000; n = 4; }
    else if (p1 >= 100) { pow10 = 100; n = 3; }
    else if (p1 >= 10) { pow10 = 10; n = 2; }
    else { pow10 = 1; n = 1; }

    while (n > 0) {
        uint64_t rest;
        buf[len++] = (char)('0' + p1 / pow10);
        p1 %= pow10;
        n--;
        rest = ((uint64_t)p1 << -wp.e) + p2;
        if (rest <= delta) {
            *k += n;
            grisu_round(buf, len, dist, delta, rest, (uint64_t)pow10 << -wp.e);
            return len;
        }
        pow10 /= 10;
    }
    for (;;) {
        p2 *= 10;
        buf[len++] = (char)('0' + (p2 >> -wp.e));
        p2 &= one_f - 1;
        mexp++;
        delta *= 10;
        dist *= 10;
        if (p2 <= delta)
            break;
    }
    *k -= mexp;
    grisu_round(buf, len, dist, delta, p2, one_f);
    return len;
}

/* Write the finite v as a line protocol float, as JavaScript prints numbers:
 * plain digits from 1e-6 up to 1e21, exponent form (1e+21, 5e-324) outside
 * that. Returns the end. */
char *gw_num_put_double(char *d, double v)
{
    char dig[20];
    int n, k, pt;

    if (v == 0) {
        if (signbit(v))
            *d++ = '-';
        *d++ = '0';
        return d;
    }
    if (v < 0) {
        *d++ = '-';
        v = -v;
    }
    /* Integers are common in metrics and their digits are their shortest
     * form below 2^53, where every integer is exact. */
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
        return gw_num_put_u64(d, (uint64_t)v);

    n = grisu2(v, dig, &k);
    pt = n + k; /* position of the decimal point after the first digit */
    if (n <= pt && pt <= 21) {
        memcpy(d, dig, (size_t)n);
        d += n;
        memset(d, '0', (size_t)(pt - n));
        return d + (pt - n);
    }
    if (0 < pt && pt <= 21) {
        memcpy(d, dig, (size_t)pt);
        d += pt;
        *d++ = '.';
        memcpy(d, dig + pt, (size_t)(n - pt));
        return d + (n - pt);
    }
    if (-6 < pt && pt <= 0) {
        *d++ = '0';
        *d++ = '.';
        memset(d, '0', (size_t)-pt);
        d += -pt;
        memcpy(d, dig, (size_t)n);
        return d + n;
    }
    *d++ = dig[0];
    if (n > 1) {
        *d++ = '.';
        memcpy(d, dig + 1, (size_t)(n - 1));
        d += n - 1;
    }
    *d++ = 'e';
    *d++ = pt - 1 < 0 ? '-' : '+';
    return gw_num_put_u64(d, (uint64_t)(pt - 1 < 0 ? -(pt - 1) : pt - 1));
}

size_t gw_num_double(char *out, double v)
{
    return (size_t)(gw_num_put_double(out, v) - out);
}

size_t gw_num_u64(char *out, uint64_t v)
{
    return (size_t)(gw_num_put_u64(out, v) - out);
}

size_t gw_num_i64(char *out, int64_t v)
{
    return (size_t)(gw_num_put_i64(out, v) - out);
}
