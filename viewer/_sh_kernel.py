"""View-dependent colour for the viewer: one fused, single-threaded numba pass.

``sh_rgb_uint8`` evaluates ``clamp(SH(dir) + 0.5, 0, 1)`` (gsplat's rule, the toolkit's
basis in :mod:`render.sh`) for every Gaussian and writes 8-bit RGB. Single-threaded on
purpose: the refresh runs beside the web server and the browser on a small machine, and
a multi-threaded runtime waiting for busy cores costs more than it gains here (measured:
torch with 2 threads on a loaded 2-core machine took 1.4 s where 1 thread took 50 ms).
Tests compare it with :func:`render.sh.sh_colors` in float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
      1.445305721320277, -0.5900435899266435)


@njit(cache=True, fastmath=True, nogil=True)
def _sh_rgb(means, coeffs, campos, degree, out):
    n = means.shape[0]
    b = np.empty(16, np.float32)
    for i in range(n):
        x = means[i, 0] - campos[0]
        y = means[i, 1] - campos[1]
        z = means[i, 2] - campos[2]
        r = np.sqrt(x * x + y * y + z * z)
        if r < 1e-12:
            r = 1e-12
        x, y, z = x / r, y / r, z / r
        b[0] = C0
        nb = 1
        if degree >= 1:
            b[1] = -C1 * y
            b[2] = C1 * z
            b[3] = -C1 * x
            nb = 4
        if degree >= 2:
            xx, yy, zz = x * x, y * y, z * z
            b[4] = C2[0] * x * y
            b[5] = C2[1] * y * z
            b[6] = C2[2] * (2.0 * zz - xx - yy)
            b[7] = C2[3] * x * z
            b[8] = C2[4] * (xx - yy)
            nb = 9
            if degree >= 3:
                b[9] = C3[0] * y * (3.0 * xx - yy)
                b[10] = C3[1] * x * y * z
                b[11] = C3[2] * y * (4.0 * zz - xx - yy)
                b[12] = C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
                b[13] = C3[4] * x * (4.0 * zz - xx - yy)
                b[14] = C3[5] * z * (xx - yy)
                b[15] = C3[6] * x * (xx - 3.0 * yy)
                nb = 16
        for c in range(3):
            acc = 0.5
            for k in range(nb):
                acc += b[k] * coeffs[i, k, c]
            if acc < 0.0:
                acc = 0.0
            elif acc > 1.0:
                acc = 1.0
            out[i, c] = np.uint8(acc * 255.0 + 0.5)


def sh_rgb_uint8(means: np.ndarray, coeffs: np.ndarray, campos: np.ndarray, degree: int) -> np.ndarray:
    """8-bit RGB [M,3] of Gaussians at ``means`` [M,3] with SH ``coeffs`` [M,K,3] (K >= (degree+1)^2),
    seen from ``campos`` [3]. Float32 inputs, C-contiguous."""
    out = np.empty((means.shape[0], 3), np.uint8)
    if means.shape[0]:
        _sh_rgb(np.ascontiguousarray(means, np.float32), np.ascontiguousarray(coeffs, np.float32),
                np.asarray(campos, np.float32).reshape(3), int(degree), out)
    return out
