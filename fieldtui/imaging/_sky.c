/* Sky statistics and windowed centroids of a float32 image, compiled.
 *
 * mesh_stats: the sky level (a clipped mode) and rms of each box of a background mesh,
 * by SExtractor's estimator (Bertin & Arnouts 1996, A&AS 117, 393, section 3.1; the
 * SExtractor manual, "Background"); stars.py's background_map filters and interpolates
 * the mesh. windowed_centroids: SExtractor's XWIN/YWIN iteration; stars.py has its
 * numpy twin, with the same edge rule (see there). A plain C extension (no numpy
 * headers): arrays come in as buffers and the GIL is released while it runs, so two
 * frames are measured on two cores. Built by setup.py where a C compiler is available.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NLEVELS_MAX 4096 /* histogram bins at most */
#define HIST_NSIGMA 5.0  /* the histogram spans mean +- 5 sigma of the 2-sigma-clipped pixels */
#define BINS_PER_SIGMA_PIXELS 0.99735570100358 /* sqrt(2/pi) * 5 / 4: bins per pixel */
#define MIN_GOOD 0.5     /* a box with fewer usable pixels than this share is left out */

/* One box (rows y0..y1, columns x0..x1 of an image w wide): mode and sigma in *mode, *sigma,
 * or 0 when the box has too few finite pixels. hist: NLEVELS_MAX counts of scratch. */
static int box_stats(const float *img, Py_ssize_t w, Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t x0, Py_ssize_t x1,
                     long *hist, float *mode, float *sigma)
{
    Py_ssize_t y, x, area = (y1 - y0) * (x1 - x0);
    double s = 0.0, s2 = 0.0, mean, sd, v;
    long n = 0, nlev, k, lo, hi, total, half_count, acc;
    float lcut, hcut, qscale, qzero, cste;
    double mea, sig, sig_prev, med;
    int it;

    /* 1. mean and sigma of the finite pixels */
    for (y = y0; y < y1; y++) {
        const float *row = img + y * w;
        for (x = x0; x < x1; x++) {
            float p = row[x];
            if (isfinite(p)) {
                s += p;
                s2 += (double)p * p;
                n++;
            }
        }
    }
    if ((double)n < MIN_GOOD * (double)area || n == 0)
        return 0;
    mean = s / n;
    v = s2 / n - mean * mean;
    sd = v > 0.0 ? sqrt(v) : 0.0;
    /* 2. again within mean +- 2 sigma */
    lcut = (float)(mean - 2.0 * sd);
    hcut = (float)(mean + 2.0 * sd);
    s = s2 = 0.0;
    n = 0;
    for (y = y0; y < y1; y++) {
        const float *row = img + y * w;
        for (x = x0; x < x1; x++) {
            float p = row[x];
            if (p >= lcut && p <= hcut) {
                s += p;
                s2 += (double)p * p;
                n++;
            }
        }
    }
    if (n == 0)
        return 0;
    mean = s / n;
    v = s2 / n - mean * mean;
    sd = v > 0.0 ? sqrt(v) : 0.0;
    /* 3. histogram over mean +- 5 sigma, about 1 bin per 1.25 pixels */
    nlev = (long)(BINS_PER_SIGMA_PIXELS * n + 1);
    if (nlev > NLEVELS_MAX)
        nlev = NLEVELS_MAX;
    qscale = sd > 0.0 ? (float)(2.0 * HIST_NSIGMA * sd / nlev) : 1.0f;
    qzero = (float)(mean - HIST_NSIGMA * sd);
    cste = 0.499999f - qzero / qscale;
    memset(hist, 0, (size_t)nlev * sizeof(long));
    for (y = y0; y < y1; y++) {
        const float *row = img + y * w;
        for (x = x0; x < x1; x++) {
            float b = row[x] / qscale + cste;
            if (b >= 0.0f && b < (float)nlev)
                hist[(long)b]++;
        }
    }
    /* 4. clip at median +- 3 sigma of the histogram until sigma settles */
    lo = 0;
    hi = nlev - 1;
    sig = 10.0 * (nlev - 1);
    sig_prev = 1.0;
    mea = med = 0.0;
    for (it = 0; it < 100 && sig >= 0.1 && fabs(sig / sig_prev - 1.0) > 1e-4; it++) {
        double sm = 0.0, sm2 = 0.0, t;
        sig_prev = sig;
        total = 0;
        for (k = lo; k <= hi; k++) {
            total += hist[k];
            sm += (double)hist[k] * k;
            sm2 += (double)hist[k] * k * k;
        }
        /* median with linear interpolation inside its bin (bin k spans k - 0.5 .. k + 0.5) */
        med = 0.0;
        if (total > 0) {
            half_count = total; /* compare 2 * cumulative with total: no rounding */
            acc = 0;
            for (k = lo; k <= hi; k++) {
                if (2 * (acc + hist[k]) >= half_count) {
                    med = k - 0.5 + (hist[k] > 0 ? (0.5 * total - acc) / (double)hist[k] : 0.5);
                    break;
                }
                acc += hist[k];
            }
            mea = sm / total;
            t = sm2 / total - mea * mea;
            sig = t > 0.0 ? sqrt(t) : 0.0;
        } else {
            mea = 0.0;
            sig = 0.0;
        }
        t = med - 3.0 * sig;
        lo = t > 0.0 ? (long)(t + 0.5) : 0;
        t = med + 3.0 * sig;
        hi = t < (double)(nlev - 1) ? (long)(t + 0.5) : nlev - 1;
        if (lo > hi)
            break;
    }
    /* 5. the mode: 2.5 median - 1.5 mean where the clipped histogram is nearly symmetric */
    if (sig > 0.0)
        *mode = (float)(qzero + (fabs((mea - med) / sig) < 0.3 ? 2.5 * med - 1.5 * mea : med) * qscale);
    else
        *mode = (float)(qzero + mea * qscale);
    *sigma = (float)(sig * qscale);
    return 1;
}

/* Whether a buffer of len bytes holds a * b items of item bytes (a, b >= 0), without
 * overflowing: dimensions that multiply past PY_SSIZE_T_MAX never fit. */
static int holds(Py_ssize_t len, Py_ssize_t a, Py_ssize_t b, Py_ssize_t item)
{
    if (a < 0 || b < 0)
        return 0;
    if (a == 0 || b == 0)
        return 1;
    if (a > PY_SSIZE_T_MAX / b / item)
        return 0;
    return len >= a * b * item;
}

/* mesh_stats(img, h, w, bw, bh, mode, sigma, good)
 * img: float32 (h, w) C-contiguous; mode, sigma: float32 (ny, nx) with nx = ceil(w / bw),
 * ny = ceil(h / bh) (the last row and column of boxes may be smaller); good: uint8 (ny, nx),
 * 0 where a box had fewer than half its pixels finite (mode and sigma are then 0). */
static PyObject *mesh_stats(PyObject *self, PyObject *args)
{
    Py_buffer ib, mb, sb, gb;
    PyObject *result = NULL;
    Py_ssize_t h, w, bw, bh, nx, ny;
    int failed = 0;
    if (!PyArg_ParseTuple(args, "y*nnnnw*w*w*", &ib, &h, &w, &bw, &bh, &mb, &sb, &gb))
        return NULL;
    if (h < 1 || w < 1 || bw < 1 || bh < 1) {
        PyErr_SetString(PyExc_ValueError, "mesh_stats: h, w, bw and bh must be positive");
        goto done;
    }
    nx = w / bw + (w % bw != 0); /* ceil(w / bw), without overflow for a huge bw */
    ny = h / bh + (h % bh != 0);
    if (!holds(ib.len, h, w, sizeof(float)) || !holds(mb.len, ny, nx, sizeof(float)) ||
        !holds(sb.len, ny, nx, sizeof(float)) || !holds(gb.len, ny, nx, 1)) {
        PyErr_SetString(PyExc_ValueError, "mesh_stats: buffer sizes do not match h, w, bw, bh");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    {
        long *hist = (long *)malloc(NLEVELS_MAX * sizeof(long));
        const float *img = (const float *)ib.buf;
        float *mode = (float *)mb.buf, *sigma = (float *)sb.buf;
        unsigned char *good = (unsigned char *)gb.buf;
        Py_ssize_t j, i;
        if (hist == NULL) {
            failed = 1;
        } else {
            for (j = 0; j < ny; j++)
                for (i = 0; i < nx; i++) {
                    /* j * bh < h and i * bw < w: the box's far edges without overflow */
                    Py_ssize_t y1 = h - j * bh > bh ? (j + 1) * bh : h, x1 = w - i * bw > bw ? (i + 1) * bw : w;
                    float m = 0.0f, sg = 0.0f;
                    good[j * nx + i] = (unsigned char)box_stats(img, w, j * bh, y1, i * bw, x1, hist, &m, &sg);
                    mode[j * nx + i] = m;
                    sigma[j * nx + i] = sg;
                }
            free(hist);
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&ib);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&gb);
    return result;
}

/* windowed_centroids(img, h, w, level, xy, n, sigma, nsig, max_iter, step_min, max_shift, out, ok)
 * img: float32 (h, w); xy: float64 (n, 2) starting positions (x, y; pixel centres at integers);
 * out: float64 (n, 2) the windowed centroids; ok: uint8 (n,), 0 where the star keeps its
 * starting position (window off the image, no light in it, moved max_shift or more, or
 * not finite). The same steps as stars.py's numpy code. */
static PyObject *windowed_centroids(PyObject *self, PyObject *args)
{
    Py_buffer ib, xb, ob, kb;
    PyObject *result = NULL;
    Py_ssize_t h, w, n;
    double level, sigma, nsig, step_min, max_shift;
    int max_iter, failed = 0;
    if (!PyArg_ParseTuple(args, "y*nndy*nddiddw*w*", &ib, &h, &w, &level, &xb, &n, &sigma, &nsig, &max_iter,
                          &step_min, &max_shift, &ob, &kb))
        return NULL;
    if (h < 1 || w < 1 || n < 0 || !(sigma > 0.0) || !holds(ib.len, h, w, sizeof(float)) ||
        !holds(xb.len, n, 2, sizeof(double)) || !holds(ob.len, n, 2, sizeof(double)) || !holds(kb.len, n, 1, 1)) {
        PyErr_SetString(PyExc_ValueError, "windowed_centroids: buffer sizes do not match h, w, n");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    {
        const float *img = (const float *)ib.buf;
        const double *xy = (const double *)xb.buf;
        double *out = (double *)ob.buf;
        unsigned char *ok = (unsigned char *)kb.buf;
        double rad = nsig * sigma, inv2s2 = 1.0 / (2.0 * sigma * sigma);
        double inner2 = rad > 0.5 ? (rad - 0.5) * (rad - 0.5) : 0.0, outer2 = (rad + 0.5) * (rad + 0.5);
        /* a window wider than the image (2 rad + 1 > h or w) always leaves it: no star is
         * refined, and the box below (which could not be allocated) is not needed */
        int fits = rad >= 0.0 && 2.0 * rad + 1.0 <= (double)(h < w ? h : w) && max_shift >= 0.0 && max_shift <= (double)(h + w);
        Py_ssize_t half = fits ? (Py_ssize_t)ceil(rad + max_shift) + 1 : 0, s;
        double *ex = (double *)malloc((size_t)(2 * half + 1) * sizeof(double));
        if (ex == NULL)
            failed = 1;
        for (s = 0; s < n && !failed; s++) {
            double x0 = xy[2 * s], y0 = xy[2 * s + 1], mx = x0, my = y0;
            Py_ssize_t cx, cy, yy, xx;
            /* a start off the image is not refined (and is never cast to an index) */
            int it, good = fits && x0 >= -1.0 && x0 <= (double)w && y0 >= -1.0 && y0 <= (double)h;
            if (good) {
                cx = (Py_ssize_t)nearbyint(x0);
                cy = (Py_ssize_t)nearbyint(y0);
                for (it = 0; it < max_iter; it++) {
                    double tv = 0.0, sx = 0.0, sy = 0.0, stepx, stepy;
                    if (mx - rad + 0.5 < 0 || mx + rad + 1.5 > w || my - rad + 0.5 < 0 || my + rad + 1.5 > h) {
                        good = 0; /* the window leaves the image */
                        break;
                    }
                    /* exp(-r^2 / 2s^2) = exp(-dx^2 / 2s^2) exp(-dy^2 / 2s^2): a row and a column of factors */
                    for (xx = cx - half; xx <= cx + half; xx++) {
                        double dx = xx - mx;
                        ex[xx - cx + half] = exp(-dx * dx * inv2s2);
                    }
                    for (yy = cy - half; yy <= cy + half; yy++) {
                        double dy = yy - my, ey = exp(-dy * dy * inv2s2);
                        const float *row;
                        if (yy < 0 || yy >= h)
                            continue;
                        row = img + yy * w;
                        for (xx = cx - half; xx <= cx + half; xx++) {
                            double dx = xx - mx, r2 = dx * dx + dy * dy, share = 1.0, wp;
                            if (xx < 0 || xx >= w || r2 >= outer2)
                                continue;
                            if (r2 > inner2) {  /* on the disc's edge: the share inside */
                                share = rad + 0.5 - sqrt(r2);
                                if (share <= 0.0)
                                    continue;
                                if (share > 1.0)
                                    share = 1.0;
                            }
                            wp = ey * ex[xx - cx + half] * share * ((double)row[xx] - level);
                            tv += wp;
                            sx += wp * dx;
                            sy += wp * dy;
                        }
                    }
                    if (!(tv > 0.0)) {
                        good = 0;
                        break;
                    }
                    stepx = 2.0 * sx / tv;
                    stepy = 2.0 * sy / tv;
                    mx += stepx;
                    my += stepy;
                    if (!(hypot(mx - x0, my - y0) < max_shift)) {
                        good = 0;
                        break;
                    }
                    if (stepx * stepx + stepy * stepy < step_min * step_min)
                        break;
                }
            }
            good = good && isfinite(mx) && isfinite(my);
            out[2 * s] = good ? mx : x0;
            out[2 * s + 1] = good ? my : y0;
            ok[s] = (unsigned char)good;
        }
        free(ex);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&ib);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&kb);
    return result;
}

static PyMethodDef methods[] = {
    {"mesh_stats", mesh_stats, METH_VARARGS, "mesh_stats(img, h, w, bw, bh, mode, sigma, good)"},
    {"windowed_centroids", windowed_centroids, METH_VARARGS,
     "windowed_centroids(img, h, w, level, xy, n, sigma, nsig, max_iter, step_min, max_shift, out, ok)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sky",
                                    "Compiled sky mesh statistics and windowed centroids of fieldtui.imaging.",
                                    -1, methods};

/* SOURCE_SHA: the digest of this file, set by setup.py (fieldtui._kernels) */
#ifndef SOURCE_SHA
#define SOURCE_SHA ""
#endif

PyMODINIT_FUNC PyInit__sky(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_SHA", SOURCE_SHA) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
