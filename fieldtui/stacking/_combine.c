/* The per-pixel kernel of fieldtui.stacking.combine, compiled: sort, reject, average.
 *
 * The same algorithm as the numba kernel (_combine_numba.py, _pixel), line for line, in
 * double precision; see combine.py for the rejection rules and their sources. A
 * plain C extension (no numpy headers): arrays come in as buffers, and the GIL is
 * released while it runs, so Python threads can combine parts of a block at once.
 * (-ffp-contract=off: no fused multiply-adds, so the doubles round as numba's do.)
 * Built by setup.py where a C compiler is available; combine.py falls back to the
 * numba kernel without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static double pixel(double *v, int32_t *id, const double *weights, const double *rel, double *w, double *r,
                    double *c1, double *c2, Py_ssize_t m, int kind, double k_lo, double k_hi, int iters,
                    int use_median, double floor_sd, double slope, double level, int uniform, int shortcut,
                    Py_ssize_t *nrej)
{
    Py_ssize_t i, j, lo, hi, it;
    int sums = 0;
    double ref = 0.0;
    *nrej = 0;
    /* insertion sort (stable) of v with its frames' indices id: N is tens; then each value's
     * weight and relative noise in w and r. With every weight and every relative noise the
     * same (uniform: masters, unweighted stacks) w and r hold that one value everywhere and
     * only v moves */
    if (uniform) {
        for (i = 1; i < m; i++) {
            double x = v[i];
            j = i - 1;
            while (j >= 0 && v[j] > x) {
                v[j + 1] = v[j];
                j--;
            }
            v[j + 1] = x;
        }
    } else {
        for (i = 1; i < m; i++) {
            double x = v[i];
            int32_t y = id[i];
            j = i - 1;
            while (j >= 0 && v[j] > x) {
                v[j + 1] = v[j];
                id[j + 1] = id[j];
                j--;
            }
            v[j + 1] = x;
            id[j + 1] = y;
        }
        for (i = 0; i < m; i++) {
            w[i] = weights[id[i]];
            r[i] = rel[id[i]];
        }
    }
    if (m == 0)
        return NAN;
    if (use_median)
        return (m % 2) ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
    lo = 0;
    hi = m;
    if (kind != 0) {
        for (it = 0; it < iters; it++) {
            Py_ssize_t n = hi - lo, new_lo = lo, new_hi = hi;
            double med, fl;
            if (n < 3)
                break;
            med = 0.5 * (v[lo + (n - 1) / 2] + v[lo + n / 2]);
            /* the floor at this pixel's level: the frames' noise plus the signal's shot noise */
            fl = floor_sd;
            if (slope > 0.0 && med > level)
                fl = sqrt(floor_sd * floor_sd + slope * (med - level));
            /* the deviation used below is never under floor_sd, and rounding is monotonic:
             * when the two end values stand within the thresholds the floor alone sets,
             * they stand within the real ones too, and the pass rejects nothing (the
             * deviation is not needed: the same result, without its iterations) */
            if (shortcut && kind != 3 && fl > 0.0 && !(v[lo] < med - k_lo * fl * r[lo]) &&
                !(v[hi - 1] > med + k_hi * fl * r[hi - 1]))
                break;
            if (!sums) {
                /* prefix sums relative to the median (no cancellation in double) */
                ref = v[(m - 1) / 2];
                c1[0] = 0.0;
                c2[0] = 0.0;
                for (i = 0; i < m; i++) {
                    double d = v[i] - ref;
                    c1[i + 1] = c1[i] + d;
                    c2[i + 1] = c2[i] + d * d;
                }
                sums = 1;
            }
            if (kind == 3) {
                double rm = 0.5 * (double)(n - 1), s = 0.0, sxy = 0.0, sxx, slope, icpt, dev = 0.0;
                for (i = lo; i < hi; i++) {
                    s += v[i];
                    sxy += ((double)(i - lo) - rm) * v[i];
                }
                sxx = (double)n * ((double)n * (double)n - 1.0) / 12.0;
                slope = sxy / sxx;
                icpt = s / (double)n - slope * rm;
                for (i = lo; i < hi; i++)
                    dev += fabs(v[i] - (icpt + slope * (double)(i - lo)));
                dev /= (double)n;
                while (new_lo < new_hi && v[new_lo] < icpt + slope * (double)(new_lo - lo) - k_lo * dev)
                    new_lo++;
                while (new_hi > new_lo && v[new_hi - 1] > icpt + slope * (double)(new_hi - 1 - lo) + k_hi * dev)
                    new_hi--;
            } else {
                double s1 = c1[hi] - c1[lo], s2 = c2[hi] - c2[lo];
                double mean = s1 / (double)n;
                double var = s2 - (double)n * mean * mean;
                double sd = sqrt((var > 0.0 ? var : 0.0) / (double)(n - 1));
                if (kind == 2) {
                    double mr = med - ref;
                    int k;
                    for (k = 0; k < 10; k++) {
                        double a = mr - 1.5 * sd, b = mr + 1.5 * sd, ws, ws2, wm, nsd, wv;
                        Py_ssize_t ia = lo, ib = hi, na, nb;
                        while (ia < hi && v[ia] - ref < a)
                            ia++;
                        while (ib > ia && v[ib - 1] - ref > b)
                            ib--;
                        na = ia - lo;
                        nb = hi - ib;
                        ws = (double)na * a + (c1[ib] - c1[ia]) + (double)nb * b;
                        ws2 = (double)na * a * a + (c2[ib] - c2[ia]) + (double)nb * b * b;
                        wm = ws / (double)n;
                        wv = ws2 - (double)n * wm * wm;
                        nsd = 1.134 * sqrt((wv > 0.0 ? wv : 0.0) / (double)(n - 1));
                        if (fabs(nsd - sd) <= 5e-4 * sd) {
                            sd = nsd;
                            break;
                        }
                        sd = nsd;
                    }
                    sd *= 1.0 + 2.0 / ((double)n + 3.5);
                }
                if (sd < fl)
                    sd = fl;
                /* each value against its own frame's noise (rejection peels the ends only) */
                while (new_lo < new_hi && v[new_lo] < med - k_lo * sd * r[new_lo])
                    new_lo++;
                while (new_hi > new_lo && v[new_hi - 1] > med + k_hi * sd * r[new_hi - 1])
                    new_hi--;
            }
            if (new_hi <= new_lo) { /* never reject everything: keep the middle value */
                Py_ssize_t mid = lo + (n - 1) / 2;
                new_lo = mid;
                new_hi = mid + 1;
            }
            if (new_lo == lo && new_hi == hi)
                break;
            lo = new_lo;
            hi = new_hi;
        }
    }
    {
        double num = 0.0, den = 0.0;
        for (i = lo; i < hi; i++) {
            num += w[i] * v[i];
            den += w[i];
        }
        *nrej = m - (hi - lo);
        if (den <= 0.0)
            return NAN;
        return num / den;
    }
}

/* combine_rows(flat, n, p, q0, q1, weights, rel, kind, k_lo, k_hi, iters, use_median, floors, nfloor,
 *              out, nrej[, shortcut[, slopes, levels]])
 * flat: float32 (n, p) C-contiguous; weights, rel: float64 (n,); floors: float64 (nfloor,), pixel q
 * uses floors[q % nfloor]; out: float32 (p,); nrej: int16 (p,). Combines pixels q0 … q1 − 1.
 * shortcut (default 1): skip a clipping pass the floor shows rejects nothing (0: measure its
 * deviation anyway; the results are the same, for tests and timing). slopes, levels: float64
 * (nfloor,), the floor's signal term: at a pixel whose median m is above levels[q % nfloor],
 * the floor is sqrt(floor² + slope · (m − level)) (default: none). */
static PyObject *combine_rows(PyObject *self, PyObject *args)
{
    Py_buffer fb, wb, ob, rb, relb, flb, slb = {0}, lvb = {0};
    PyObject *result = NULL;
    Py_ssize_t n, p, q0, q1, q, i, nfloor;
    int kind, iters, use_median, shortcut = 1;
    double k_lo, k_hi;
    double *v, *w, *r, *c1, *c2;
    int32_t *id;
    int uniform = 1;
    const float *flat;
    const double *weights, *rel, *floors, *slopes = NULL, *levels = NULL;
    float *out;
    int16_t *nr;
    if (!PyArg_ParseTuple(args, "y*nnnny*y*iddipy*nw*w*|py*y*", &fb, &n, &p, &q0, &q1, &wb, &relb, &kind, &k_lo,
                          &k_hi, &iters, &use_median, &flb, &nfloor, &ob, &rb, &shortcut, &slb, &lvb))
        return NULL;
    if (n < 0 || p < 0 || q0 < 0 || q1 > p || q0 > q1 || fb.len < n * p * (Py_ssize_t)sizeof(float) ||
        wb.len < n * (Py_ssize_t)sizeof(double) || relb.len < n * (Py_ssize_t)sizeof(double) || nfloor < 1 ||
        flb.len < nfloor * (Py_ssize_t)sizeof(double) || ob.len < p * (Py_ssize_t)sizeof(float) ||
        rb.len < p * (Py_ssize_t)sizeof(int16_t) || (slb.buf != NULL) != (lvb.buf != NULL) ||
        (slb.buf != NULL && (slb.len < nfloor * (Py_ssize_t)sizeof(double) ||
                             lvb.len < nfloor * (Py_ssize_t)sizeof(double)))) {
        PyErr_SetString(PyExc_ValueError, "combine_rows: buffer sizes do not match n, p");
        goto done;
    }
    v = (double *)malloc(sizeof(double) * (size_t)(5 * n + 2) + sizeof(int32_t) * (size_t)n);
    if (v == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    w = v + n;
    r = w + n;
    c1 = r + n;
    c2 = c1 + n + 1;
    id = (int32_t *)(c2 + n + 1);
    flat = (const float *)fb.buf;
    weights = (const double *)wb.buf;
    rel = (const double *)relb.buf;
    floors = (const double *)flb.buf;
    if (slb.buf != NULL) {
        slopes = (const double *)slb.buf;
        levels = (const double *)lvb.buf;
    }
    out = (float *)ob.buf;
    nr = (int16_t *)rb.buf;
    for (i = 1; i < n; i++)
        if (weights[i] != weights[0] || rel[i] != rel[0])
            uniform = 0;
    if (uniform)
        for (i = 0; i < n; i++) {
            w[i] = weights[0];
            r[i] = rel[0];
        }
    Py_BEGIN_ALLOW_THREADS
    for (q = q0; q < q1; q++) {
        Py_ssize_t m = 0, k = 0;
        if (uniform) {
            for (i = 0; i < n; i++) {
                float x = flat[i * p + q];
                if (isfinite(x))
                    v[m++] = (double)x;
            }
        } else {
            for (i = 0; i < n; i++) {
                float x = flat[i * p + q];
                if (isfinite(x)) {
                    v[m] = (double)x;
                    id[m] = (int32_t)i;
                    m++;
                }
            }
        }
        out[q] = (float)pixel(v, id, weights, rel, w, r, c1, c2, m, kind, k_lo, k_hi, iters, use_median,
                              floors[q % nfloor], slopes ? slopes[q % nfloor] : 0.0,
                              levels ? levels[q % nfloor] : 0.0, uniform, shortcut, &k);
        nr[q] = (int16_t)k;
    }
    Py_END_ALLOW_THREADS
    free(v);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&fb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&relb);
    PyBuffer_Release(&flb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&rb);
    if (slb.buf != NULL)
        PyBuffer_Release(&slb);
    if (lvb.buf != NULL)
        PyBuffer_Release(&lvb);
    return result;
}

static PyMethodDef methods[] = {
    {"combine_rows", combine_rows, METH_VARARGS,
     "combine_rows(flat, n, p, q0, q1, weights, rel, kind, k_lo, k_hi, iters, use_median, floors, nfloor, out, "
     "nrej[, shortcut[, slopes, levels]])"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_combine",
                                    "Compiled per-pixel kernel of fieldtui.stacking.combine.", -1, methods};

/* SOURCE_SHA: the digest of this file, set by setup.py (fieldtui._kernels) */
#ifndef SOURCE_SHA
#define SOURCE_SHA ""
#endif

PyMODINIT_FUNC PyInit__combine(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_SHA", SOURCE_SHA) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
