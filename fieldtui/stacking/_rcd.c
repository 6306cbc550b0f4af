/* RCD demosaicing of a float32 Bayer mosaic in strips of rows, compiled.
 *
 * The same arithmetic, in the same order and in single precision, as rcd.py's
 * _strip (see rcd.py for the algorithm and its source): the tests compare the two
 * bit for bit. (-ffp-contract=off: no fused multiply-adds, so each operation rounds
 * as numpy's does.) A plain C extension (no numpy headers): arrays come in as
 * buffers and the GIL is released while it runs. Built by setup.py where a C
 * compiler is available; rcd.py uses its numpy code without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define AT(a, y, x) ((a)[(Py_ssize_t)(y) * wp + (x)])

static inline float ratio(float l0, float ln, float eps)
{
    float sm = l0 + ln, f;
    if (!(sm > 0.0f))
        return 1.0f;
    f = (l0 - ln) / (eps + sm);
    f += 1.0f;
    if (f < 0.0f)
        f = 0.0f;
    if (f > 2.0f)
        f = 2.0f;
    return f;
}

static inline float blend(float a, float ga, float b, float gb)
{
    float t = gb * a;
    t += ga * b;
    return t / (ga + gb);
}

static inline float refine(const float *d, Py_ssize_t wp, Py_ssize_t y, Py_ssize_t x)
{
    float nb = AT(d, y - 1, x - 1) + AT(d, y - 1, x + 1), c = AT(d, y, x);
    nb += AT(d, y + 1, x - 1);
    nb += AT(d, y + 1, x + 1);
    nb *= 0.25f;
    return (fabsf(0.5f - c) < fabsf(0.5f - nb)) ? nb : c;
}

/* 7-tap high-pass [1, -3, -1, 6, -1, -3, 1] at (y, x) along (dy, dx) */
static inline float hpf(const float *c, Py_ssize_t wp, Py_ssize_t y, Py_ssize_t x, int dy, int dx)
{
    float t = AT(c, y - 3 * dy, x - 3 * dx) - 3.0f * AT(c, y - 2 * dy, x - 2 * dx);
    t -= AT(c, y - dy, x - dx);
    t += 6.0f * AT(c, y, x);
    t -= AT(c, y + dy, x + dx);
    t -= 3.0f * AT(c, y + 2 * dy, x + 2 * dx);
    t += AT(c, y + 3 * dy, x + 3 * dx);
    return t;
}

static void strip(const float *c, Py_ssize_t hp, Py_ssize_t wp, int ry, int rx, float eps, float epssq, float *rgb,
                  float *hv, float *vh, float *vhd, float *aux)
{
    Py_ssize_t n = hp * wp, y, x;
    float *red = rgb, *green = rgb + n, *blue = rgb + 2 * n;
    int by = 1 - ry, bx = 1 - rx, pass;
    memset(rgb, 0, sizeof(float) * 3 * (size_t)n);
    /* step 1: vertical/horizontal direction at every pixel (vh = V, then V / (V + H)) */
    for (y = 0; y < n; y++)
        vh[y] = vhd[y] = 0.5f;
    memset(hv, 0, sizeof(float) * (size_t)n);
    for (pass = 0; pass < 2; pass++) {
        Py_ssize_t st = pass == 0 ? wp : 1; /* the filter's step: down a column, along a row */
        for (y = 4; y < hp - 4; y++) {
            const float *restrict r = c + y * wp;
            float *restrict o = hv + y * wp;
            for (x = 4; x < wp - 4; x++) {
                float t = r[x - 3 * st] - 3.0f * r[x - 2 * st];
                t -= r[x - st];
                t += 6.0f * r[x];
                t -= r[x + st];
                t -= 3.0f * r[x + 2 * st];
                t += r[x + 3 * st];
                o[x] = t;
            }
        }
        for (y = 4; y < hp - 4; y++) {
            const float *restrict h = hv + y * wp;
            float *restrict a = aux + y * wp, *restrict d = vh + y * wp;
            for (x = 4; x < wp - 4; x++) {
                float u = h[x - st], t = u * u;
                u = h[x];
                t += u * u;
                u = h[x + st];
                t += u * u;
                t = t > epssq ? t : epssq;
                if (pass == 0)
                    a[x] = t;
                else
                    d[x] = a[x] / (a[x] + t);
            }
        }
    }
    for (y = 4; y < hp - 4; y++)
        for (x = 4; x < wp - 4; x++)
            AT(vhd, y, x) = refine(vh, wp, y, x);
    /* the known samples */
    for (y = 0; y < hp; y++) {
        int py = (int)(y & 1);
        float *known = py == ry ? red : blue;
        int kx = py == ry ? rx : bx;
        for (x = kx; x < wp; x += 2)
            AT(known, y, x) = AT(c, y, x);
        for (x = 1 - kx; x < wp; x += 2)
            AT(green, y, x) = AT(c, y, x);
    }
    /* step 2: low-pass at red and blue sites (hv: the rows' [1, 2, 1], aux: the low-pass) */
    memset(hv, 0, sizeof(float) * (size_t)n);
    for (y = 4; y < hp - 4; y++)
        for (x = 4; x < wp - 4; x++) {
            float t = AT(c, y, x - 1) + 2.0f * AT(c, y, x);
            t += AT(c, y, x + 1);
            AT(hv, y, x) = t;
        }
    memset(aux, 0, sizeof(float) * (size_t)n);
    for (y = 4; y < hp - 4; y++)
        for (x = 4 + (((y & 1) == ry ? rx : bx) + 4) % 2; x < wp - 4; x += 2) {
            float t = AT(hv, y - 1, x) + 2.0f * AT(hv, y, x);
            t += AT(hv, y + 1, x);
            t *= 0.0625f;
            AT(aux, y, x) = t;
        }
    /* step 3: green at red and blue sites */
    for (y = 4; y < hp - 4; y++)
        for (x = 4 + (((y & 1) == ry ? rx : bx) + 4) % 2; x < wp - 4; x += 2) {
            float c0 = AT(c, y, x), l0 = AT(aux, y, x), est[2];
            for (pass = 0; pass < 2; pass++) {
                int dy = pass == 0, dx = pass == 1;
                float m1 = AT(c, y - dy, x - dx), p1 = AT(c, y + dy, x + dx);
                float m2 = AT(c, y - 2 * dy, x - 2 * dx), p2 = AT(c, y + 2 * dy, x + 2 * dx);
                float mid = fabsf(m1 - p1), gm, gp, em, ep;
                mid += eps;
                gm = mid + fabsf(c0 - m2);
                gm += fabsf(m1 - AT(c, y - 3 * dy, x - 3 * dx));
                gm += fabsf(m2 - AT(c, y - 4 * dy, x - 4 * dx));
                gp = mid + fabsf(c0 - p2);
                gp += fabsf(p1 - AT(c, y + 3 * dy, x + 3 * dx));
                gp += fabsf(p2 - AT(c, y + 4 * dy, x + 4 * dx));
                em = m1 * ratio(l0, AT(aux, y - 2 * dy, x - 2 * dx), eps);
                ep = p1 * ratio(l0, AT(aux, y + 2 * dy, x + 2 * dx), eps);
                est[pass] = blend(em, gm, ep, gp);
            }
            {
                float he = est[1];
                he -= est[0];
                he *= AT(vhd, y, x);
                he += est[0];
                AT(green, y, x) = he;
            }
        }
    /* step 4.2: red at blue sites, then blue at red sites (the two diagonals averaged) */
    for (pass = 0; pass < 2; pass++) {
        int sy = pass == 0 ? by : ry, sx = pass == 0 ? bx : rx;
        float *xp = pass == 0 ? red : blue;
        for (y = 4 + (sy + 4) % 2; y < hp - 4; y += 2)
            for (x = 4 + (sx + 4) % 2; x < wp - 4; x += 2) {
                float g0 = AT(green, y, x);
                float nw = AT(xp, y - 1, x - 1), ne = AT(xp, y - 1, x + 1), sw = AT(xp, y + 1, x - 1),
                      se = AT(xp, y + 1, x + 1);
                float d1 = fabsf(nw - se), d2 = fabsf(ne - sw), gnw, gne, gsw, gse, pe, qe;
                d1 += eps;
                d2 += eps;
                gnw = d1 + fabsf(nw - AT(xp, y - 3, x - 3));
                gnw += fabsf(g0 - AT(green, y - 2, x - 2));
                gne = d2 + fabsf(ne - AT(xp, y - 3, x + 3));
                gne += fabsf(g0 - AT(green, y - 2, x + 2));
                gsw = d2 + fabsf(sw - AT(xp, y + 3, x - 3));
                gsw += fabsf(g0 - AT(green, y + 2, x - 2));
                gse = d1 + fabsf(se - AT(xp, y + 3, x + 3));
                gse += fabsf(g0 - AT(green, y + 2, x + 2));
                pe = blend(nw - AT(green, y - 1, x - 1), gnw, se - AT(green, y + 1, x + 1), gse);
                qe = blend(ne - AT(green, y - 1, x + 1), gne, sw - AT(green, y + 1, x - 1), gsw);
                qe -= pe;
                qe *= 0.5f;
                qe += pe;
                qe += g0;
                AT(xp, y, x) = qe;
            }
    }
    /* step 4.3: red and blue at green sites */
    for (y = 4; y < hp - 4; y++)
        for (x = 4 + (((y & 1) == ry ? 1 - rx : 1 - bx) + 4) % 2; x < wp - 4; x += 2) {
            float g0 = AT(green, y, x), vd = AT(vhd, y, x);
            float n1 = fabsf(g0 - AT(green, y - 2, x)), s1 = fabsf(g0 - AT(green, y + 2, x));
            float w1 = fabsf(g0 - AT(green, y, x - 2)), e1 = fabsf(g0 - AT(green, y, x + 2));
            n1 += eps;
            s1 += eps;
            w1 += eps;
            e1 += eps;
            for (pass = 0; pass < 2; pass++) {
                float *xp = pass == 0 ? red : blue;
                float nn = AT(xp, y - 1, x), so = AT(xp, y + 1, x), ww = AT(xp, y, x - 1), ee = AT(xp, y, x + 1);
                float sn = fabsf(nn - so), ew = fabsf(ww - ee), gn, gs, gw, ge, ve, he;
                gn = n1 + sn;
                gn += fabsf(nn - AT(xp, y - 3, x));
                gs = s1 + sn;
                gs += fabsf(so - AT(xp, y + 3, x));
                gw = w1 + ew;
                gw += fabsf(ww - AT(xp, y, x - 3));
                ge = e1 + ew;
                ge += fabsf(ee - AT(xp, y, x + 3));
                ve = blend(nn - AT(green, y - 1, x), gn, so - AT(green, y + 1, x), gs);
                he = blend(ww - AT(green, y, x - 1), gw, ee - AT(green, y, x + 1), ge);
                he -= ve;
                he *= vd;
                he += ve;
                he += g0;
                AT(xp, y, x) = he;
            }
        }
}

/* rcd_image(pad, h, w, halo, strip_rows, ry, rx, eps, epssq, out, work)
 * pad: float32 (h + 2 halo, w + 2 halo) C-contiguous, the mosaic with its mirrored border;
 * (ry, rx): the red site's parity; out: float32 (h, w, 3); work: float32 scratch of
 * 7 (min(strip_rows, h) + 2 halo)(w + 2 halo) values (the caller keeps it, so its pages
 * are not faulted in again at every call). Strips of strip_rows rows (halo rows of
 * overlap each side) as rcd.py's rcd_numpy does. */
static PyObject *rcd_image(PyObject *self, PyObject *args)
{
    Py_buffer cb, ob, wb;
    PyObject *result = NULL;
    Py_ssize_t h, w, halo, rows, wp, n;
    int ry, rx;
    double eps, epssq;
    float *work;
    if (!PyArg_ParseTuple(args, "y*nnnniiddw*w*", &cb, &h, &w, &halo, &rows, &ry, &rx, &eps, &epssq, &ob, &wb))
        return NULL;
    wp = w + 2 * halo;
    n = ((rows < h ? rows : h) + 2 * halo) * wp;
    if (h < 1 || w < 1 || halo < 12 || halo % 2 || rows < 2 || rows % 2 || (ry != 0 && ry != 1) ||
        (rx != 0 && rx != 1) || cb.len < (h + 2 * halo) * wp * (Py_ssize_t)sizeof(float) ||
        ob.len < 3 * h * w * (Py_ssize_t)sizeof(float) || wb.len < 7 * n * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "rcd_image: buffer sizes do not match h, w, halo, rows");
        goto done;
    }
    work = (float *)wb.buf;
    Py_BEGIN_ALLOW_THREADS
    {
        const float *pad = (const float *)cb.buf;
        float *out = (float *)ob.buf;
        Py_ssize_t y0, y, x;
        for (y0 = 0; y0 < h; y0 += rows) {
            Py_ssize_t y1 = y0 + rows < h ? y0 + rows : h, hp = y1 - y0 + 2 * halo, np_ = hp * wp;
            float *rgb = work + 4 * n;
            strip(pad + y0 * wp, hp, wp, ry, rx, (float)eps, (float)epssq, rgb, work, work + n, work + 2 * n,
                  work + 3 * n);
            for (y = 0; y < y1 - y0; y++) {
                const float *r = rgb + (y + halo) * wp + halo, *g = r + np_, *b = g + np_;
                float *o = out + ((y0 + y) * w) * 3;
                for (x = 0; x < w; x++) {
                    o[3 * x] = r[x];
                    o[3 * x + 1] = g[x];
                    o[3 * x + 2] = b[x];
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&wb);
    return result;
}

static PyMethodDef methods[] = {
    {"rcd_image", rcd_image, METH_VARARGS, "rcd_image(pad, h, w, halo, strip_rows, ry, rx, eps, epssq, out, work)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rcd", "Compiled RCD demosaicing of fieldtui.stacking.rcd.",
                                    -1, methods};

/* SOURCE_SHA: the digest of this file, set by setup.py (fieldtui._kernels) */
#ifndef SOURCE_SHA
#define SOURCE_SHA ""
#endif

PyMODINIT_FUNC PyInit__rcd(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_SHA", SOURCE_SHA) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
