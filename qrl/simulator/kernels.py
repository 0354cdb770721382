"""Numba kernels of the compiled path: one call per step of a circuit's schedule.

A batch of states is held as two real arrays, the real and the imaginary parts, each of
shape (2^n, batch) with the batch innermost, so that every loop over the batch is a
contiguous, vectorisable loop of real arithmetic (complex arithmetic in Numba does not
vectorise). Wire q is bit n-1-q of the amplitude index, as everywhere in the simulator.

Every kernel takes float32 or float64 arrays (Numba compiles one version per dtype on first
use and caches it on disk). A phase over the wires is the product of two half tables, one per
half of the wires, each built wire by wire from cos(phi / 2) and sin(phi / 2) (computed by
NumPy's vectorised functions): no trigonometry inside the kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import numba
except ImportError:  # the compiled path is optional: pip install "qrl-quantum-rl[fast]"
    numba = None  # type: ignore[assignment]

AVAILABLE = numba is not None


def _jit(func: Any) -> Any:
    if numba is None:
        return func
    return numba.njit(cache=True, fastmath=True, error_model="numpy")(func)


@_jit
def _half_table(cos: Any, sin: Any, first: int, count: int, sign: float) -> tuple[Any, Any]:
    """T[h, b] = prod over wires q in [first, first + count) of exp(-i sign / 2 z_q(h) phi_q):
    real and imaginary parts (2^count, batch), h running over those wires' bits (wire first
    the highest), built wire by wire from cos(phi / 2) and sin(phi / 2)."""
    batch = cos.shape[1]
    t_re = np.ones((1, batch), dtype=cos.dtype)
    t_im = np.zeros((1, batch), dtype=cos.dtype)
    for q in range(first, first + count):
        m = t_re.shape[0]
        n_re = np.empty((2 * m, batch), dtype=cos.dtype)
        n_im = np.empty((2 * m, batch), dtype=cos.dtype)
        for h in range(m):
            for b in range(batch):
                c, s = cos[q, b], sin[q, b]
                if sign < 0:
                    s = -s
                r, i = t_re[h, b], t_im[h, b]
                n_re[2 * h, b] = r * c + i * s  # bit 0, z = +1: times (c - i s)
                n_im[2 * h, b] = i * c - r * s
                n_re[2 * h + 1, b] = r * c - i * s  # bit 1, z = -1: times (c + i s)
                n_im[2 * h + 1, b] = i * c + r * s
        t_re, t_im = n_re, n_im
    return t_re, t_im


@_jit
def phase(re: Any, im: Any, cos: Any, sin: Any, sign: float) -> None:
    """Multiply amplitude j of sample b by exp(-i sign / 2 sum_q z_q(j) phi[q, b]), in place.

    :param re: real parts (2^n, batch)
    :param im: imaginary parts, the same shape
    :param cos: cos(phi / 2), (n, batch)
    :param sin: sin(phi / 2), (n, batch)
    :param sign: 1 for the phase, -1 for its conjugate
    """
    n, batch = cos.shape
    a = (n + 1) // 2
    low_bits = n - a
    h_re, h_im = _half_table(cos, sin, 0, a, sign)
    l_re, l_im = _half_table(cos, sin, a, low_bits, sign)
    mask = (1 << low_bits) - 1
    for j in range(re.shape[0]):
        h = j >> low_bits
        lo = j & mask
        for b in range(batch):
            pr = h_re[h, b] * l_re[lo, b] - h_im[h, b] * l_im[lo, b]
            pi = h_re[h, b] * l_im[lo, b] + h_im[h, b] * l_re[lo, b]
            xr = re[j, b]
            xi = im[j, b]
            re[j, b] = pr * xr - pi * xi
            im[j, b] = pr * xi + pi * xr


@_jit
def _signed_sums(sums: Any, bits: int, out: Any, first: int) -> None:
    """out[first + k, b] += sum_h z_k(h) sums[h, b] over the 2^bits rows h, z_k(h) = +1 or
    -1 as bit k of h (the highest first) is clear or set. Signs by branch, not by a float
    factor, which would make float32 arithmetic float64."""
    batch = sums.shape[1]
    for h in range(1 << bits):
        for k in range(bits):
            if (h >> (bits - 1 - k)) & 1:
                for b in range(batch):
                    out[first + k, b] -= sums[h, b]
            else:
                for b in range(batch):
                    out[first + k, b] += sums[h, b]


@_jit
def phase_backward(lam_re: Any, lam_im: Any, out_re: Any, out_im: Any, cos: Any, sin: Any) -> Any:
    """The gradient of a phase step's angles, d_phi[q, b] = sum_j z_q(j) Im(conj(lam_j) out_j),
    then lambda taken back through the step (times the conjugate phase), in place.

    :param lam_re: real parts of lambda after the step (2^n, batch)
    :param lam_im: its imaginary parts
    :param out_re: real parts of the state after the step
    :param out_im: its imaginary parts
    :param cos: cos(phi / 2) of the step's angles phi (n, batch)
    :param sin: sin(phi / 2)
    :return: d_phi (n, batch)
    """
    n, batch = cos.shape
    a = (n + 1) // 2
    low_bits = n - a
    mask = (1 << low_bits) - 1
    rows = np.zeros((1 << a, batch), dtype=cos.dtype)
    cols = np.zeros((1 << low_bits, batch), dtype=cos.dtype)
    for j in range(lam_re.shape[0]):
        h = j >> low_bits
        lo = j & mask
        for b in range(batch):
            w = lam_re[j, b] * out_im[j, b] - lam_im[j, b] * out_re[j, b]
            rows[h, b] += w
            cols[lo, b] += w
    grad = np.zeros((n, batch), dtype=cos.dtype)
    _signed_sums(rows, a, grad, 0)
    _signed_sums(cols, low_bits, grad, a)
    phase(lam_re, lam_im, cos, sin, -1.0)
    return grad


@_jit
def wires(re: Any, im: Any, u_re: Any, u_im: Any, adjoint: bool) -> None:
    """Apply U_0 x U_1 x ... x U_{n-1}, one 2x2 unitary per wire shared by the batch, or the
    adjoints U_q^H, in place.

    :param re: real parts (2^n, batch)
    :param im: imaginary parts
    :param u_re: real parts of the unitaries' entries (n, 4): u00, u01, u10, u11
    :param u_im: their imaginary parts
    :param adjoint: apply U_q^H instead
    """
    dim, batch = re.shape
    n = u_re.shape[0]
    for q in range(n):
        bit = 1 << (n - 1 - q)
        ar, ai, br, bi = u_re[q, 0], u_im[q, 0], u_re[q, 1], u_im[q, 1]
        cr, ci, dr, di = u_re[q, 2], u_im[q, 2], u_re[q, 3], u_im[q, 3]
        if adjoint:  # conj(u00), conj(u10); conj(u01), conj(u11)
            ai, di = -ai, -di
            br, bi, cr, ci = cr, -ci, br, -bi
        for top in range(0, dim, 2 * bit):
            for j in range(top, top + bit):
                k = j + bit
                for b in range(batch):
                    x0r, x0i, x1r, x1i = re[j, b], im[j, b], re[k, b], im[k, b]
                    re[j, b] = ar * x0r - ai * x0i + br * x1r - bi * x1i
                    im[j, b] = ar * x0i + ai * x0r + br * x1i + bi * x1r
                    re[k, b] = cr * x0r - ci * x0i + dr * x1r - di * x1i
                    im[k, b] = cr * x0i + ci * x0r + dr * x1i + di * x1r


@_jit
def wire_traces(psi_re: Any, psi_im: Any, lam_re: Any, lam_im: Any) -> Any:
    """tau_q[c, e] = sum over the batch and the other wires of psi[j_c] conj(lam[j_e]), j_c
    the index with bit q equal to c: the partial trace onto each wire of sum_b psi lam^H.

    :return: real and imaginary parts stacked, (2, n, 2, 2)
    """
    dim, batch = psi_re.shape
    n = 0
    while (1 << n) < dim:
        n += 1
    out = np.zeros((2, n, 2, 2), dtype=psi_re.dtype)
    zero = psi_re[0, 0] - psi_re[0, 0]  # of the arrays' dtype (a literal 0 would be float64)
    for q in range(n):
        bit = 1 << (n - 1 - q)
        acc = np.zeros(8, dtype=psi_re.dtype)
        for top in range(0, dim, 2 * bit):
            for j in range(top, top + bit):
                k = j + bit
                r00 = i00 = r01 = i01 = r10 = i10 = r11 = i11 = zero
                for b in range(batch):
                    p0r, p0i, p1r, p1i = psi_re[j, b], psi_im[j, b], psi_re[k, b], psi_im[k, b]
                    l0r, l0i, l1r, l1i = lam_re[j, b], lam_im[j, b], lam_re[k, b], lam_im[k, b]
                    r00 += p0r * l0r + p0i * l0i
                    i00 += p0i * l0r - p0r * l0i
                    r01 += p0r * l1r + p0i * l1i
                    i01 += p0i * l1r - p0r * l1i
                    r10 += p1r * l0r + p1i * l0i
                    i10 += p1i * l0r - p1r * l0i
                    r11 += p1r * l1r + p1i * l1i
                    i11 += p1i * l1r - p1r * l1i
                acc[0] += r00
                acc[1] += i00
                acc[2] += r01
                acc[3] += i01
                acc[4] += r10
                acc[5] += i10
                acc[6] += r11
                acc[7] += i11
        for c in range(2):
            for e in range(2):
                out[0, q, c, e] = acc[4 * c + 2 * e]
                out[1, q, c, e] = acc[4 * c + 2 * e + 1]
    return out


@_jit
def gather(re: Any, im: Any, source: Any, ph_re: Any, ph_im: Any, out: Any) -> None:
    """new[i, b] = ph[i] old[source[i], b]: a permutation with phases (an entangler in its
    frame), into ``out``: the new real and imaginary parts, stacked (2, 2^n, batch)."""
    dim, batch = re.shape
    for i in range(dim):
        s = source[i]
        pr, pi = ph_re[i], ph_im[i]
        for b in range(batch):
            xr, xi = re[s, b], im[s, b]
            out[0, i, b] = pr * xr - pi * xi
            out[1, i, b] = pr * xi + pi * xr


@_jit
def product_state(h_re: Any, h_im: Any, l_re: Any, l_im: Any, out: Any) -> None:
    """The Kronecker product of two halves' states, per sample: out[j, b] = h[j // L, b]
    l[j % L, b] (complex), L the second half's dimension, into ``out`` (2, 2^n, batch): the
    real and imaginary parts.

    :param h_re: real parts of the first half's state (2^a, batch)
    :param h_im: its imaginary parts
    :param l_re: real parts of the second half's state (2^b, batch)
    :param l_im: its imaginary parts
    """
    low = l_re.shape[0]
    batch = out.shape[2]
    for j in range(out.shape[1]):
        h = j // low
        lo = j - h * low
        for b in range(batch):
            hr, hi, lr, li = h_re[h, b], h_im[h, b], l_re[lo, b], l_im[lo, b]
            out[0, j, b] = hr * lr - hi * li
            out[1, j, b] = hr * li + hi * lr


@_jit
def half_contractions(
    lam_re: Any, lam_im: Any, h_re: Any, h_im: Any, l_re: Any, l_im: Any
) -> tuple[Any, Any]:
    """lambda contracted with each half of a product state h x l, per sample:
    left[h, b] = sum_lo lam[h L + lo, b] conj(l[lo, b]) and right[lo, b] = sum_h
    lam[h L + lo, b] conj(h[h, b]), in one pass over lambda.

    :return: left and right, real and imaginary parts stacked: (2, 2^a, batch), (2, 2^b, batch)
    """
    high, batch = h_re.shape
    low = l_re.shape[0]
    left = np.zeros((2, high, batch), dtype=lam_re.dtype)
    right = np.zeros((2, low, batch), dtype=lam_re.dtype)
    for h in range(high):
        for lo in range(low):
            j = h * low + lo
            for b in range(batch):
                xr, xi = lam_re[j, b], lam_im[j, b]
                lr, li = l_re[lo, b], l_im[lo, b]
                hr, hi = h_re[h, b], h_im[h, b]
                left[0, h, b] += xr * lr + xi * li
                left[1, h, b] += xi * lr - xr * li
                right[0, lo, b] += xr * hr + xi * hi
                right[1, lo, b] += xi * hr - xr * hi
    return left, right


@_jit
def readout(re: Any, im: Any, n: int) -> Any:
    """<X~_q>, <Y~_q>, <Z~_q> of every wire in the state's frame: (3, n, batch).

    <Z~_q> sums |psi_j|^2 z_q(j); <X~_q> + i <Y~_q> = 2 sum conj(psi_j) psi_j', j' = j with
    bit q set, over the j with bit q clear.
    """
    dim, batch = re.shape
    out = np.zeros((3, n, batch), dtype=re.dtype)
    a = (n + 1) // 2
    low_bits = n - a
    mask = (1 << low_bits) - 1
    rows = np.zeros((1 << a, batch), dtype=re.dtype)
    cols = np.zeros((1 << low_bits, batch), dtype=re.dtype)
    for j in range(dim):
        h = j >> low_bits
        lo = j & mask
        for b in range(batch):
            p = re[j, b] * re[j, b] + im[j, b] * im[j, b]
            rows[h, b] += p
            cols[lo, b] += p
    _signed_sums(rows, a, out[2], 0)
    _signed_sums(cols, low_bits, out[2], a)
    acc_x = np.empty(batch, dtype=re.dtype)
    acc_y = np.empty(batch, dtype=re.dtype)
    zero = re[0, 0] - re[0, 0]  # of the arrays' dtype
    for q in range(n):
        bit = 1 << (n - 1 - q)
        if batch == 1:  # one sample: sums over contiguous runs of amplitudes (vectorised)
            sx = sy = zero
            for top in range(0, dim, 2 * bit):
                for j in range(top, top + bit):
                    k = j + bit
                    sx += re[j, 0] * re[k, 0] + im[j, 0] * im[k, 0]
                    sy += re[j, 0] * im[k, 0] - im[j, 0] * re[k, 0]
            out[0, q, 0] = sx + sx
            out[1, q, 0] = sy + sy
            continue
        acc_x[:] = 0
        acc_y[:] = 0
        for top in range(0, dim, 2 * bit):
            for j in range(top, top + bit):
                k = j + bit
                for b in range(batch):
                    x0r, x0i, x1r, x1i = re[j, b], im[j, b], re[k, b], im[k, b]
                    acc_x[b] += x0r * x1r + x0i * x1i
                    acc_y[b] += x0r * x1i - x0i * x1r
        for b in range(batch):
            out[0, q, b] = acc_x[b] + acc_x[b]
            out[1, q, b] = acc_y[b] + acc_y[b]
    return out


@_jit
def _z_table(g: Any, first: int, count: int) -> Any:
    """T[h, b] = sum over wires q in [first, first + count) of z_q(h) g[q, b], (2^count,
    batch), h running over those wires' bits (wire first the highest)."""
    batch = g.shape[1]
    table = np.zeros((1, batch), dtype=g.dtype)
    for q in range(first, first + count):
        m = table.shape[0]
        new = np.empty((2 * m, batch), dtype=g.dtype)
        for h in range(m):
            for b in range(batch):
                new[2 * h, b] = table[h, b] + g[q, b]
                new[2 * h + 1, b] = table[h, b] - g[q, b]
        table = new
    return table


@_jit
def _readout_backward_one(re: Any, im: Any, g: Any, z_high: Any, z_low: Any, out: Any) -> None:
    """:func:`readout_backward` for one sample, a pass per wire over contiguous runs."""
    dim = re.shape[0]
    n = g.shape[1]
    low_bits = n - (n + 1) // 2
    mask = (1 << low_bits) - 1
    for j in range(dim):
        d = z_high[j >> low_bits, 0] + z_low[j & mask, 0]
        out[0, j, 0] = d * re[j, 0]
        out[1, j, 0] = d * im[j, 0]
    for q in range(n):
        bit = 1 << (n - 1 - q)
        gx, gy = g[0, q, 0], g[1, q, 0]
        for top in range(0, dim, 2 * bit):
            for j in range(top, top + bit):
                k = j + bit
                x0r, x0i, x1r, x1i = re[j, 0], im[j, 0], re[k, 0], im[k, 0]
                out[0, j, 0] += gx * x1r + gy * x1i  # (gX - i gY) psi_1
                out[1, j, 0] += gx * x1i - gy * x1r
                out[0, k, 0] += gx * x0r - gy * x0i  # (gX + i gY) psi_0
                out[1, k, 0] += gx * x0i + gy * x0r


@_jit
def readout_backward(re: Any, im: Any, g: Any, out: Any) -> None:
    """lambda = sum_q (gX X + gY Y + gZ Z on wire q) psi, per sample, for the gradient g of
    the frame's expectation values, into ``out``.

    The Z terms are diagonal, sum_q z_q(j) gZ_q: one factor per amplitude from two half
    tables. The X and Y terms of each amplitude are summed over the wires in place (one pass
    over the output instead of one per wire).

    :param g: (3, n, batch): the gradient of <X~_q>, <Y~_q>, <Z~_q>
    :param out: the real and imaginary parts of lambda, stacked (2, 2^n, batch)
    """
    dim, batch = re.shape
    n = g.shape[1]
    a = (n + 1) // 2
    low_bits = n - a
    mask = (1 << low_bits) - 1
    z_high = _z_table(g[2], 0, a)
    z_low = _z_table(g[2], a, low_bits)
    if batch == 1:  # one sample: wire by wire over contiguous runs of amplitudes (vectorised)
        _readout_backward_one(re, im, g, z_high, z_low, out)
        return
    for j in range(dim):
        h = j >> low_bits
        lo = j & mask
        for b in range(batch):
            d = z_high[h, b] + z_low[lo, b]
            out[0, j, b] = d * re[j, b]
            out[1, j, b] = d * im[j, b]
        for q in range(n):
            bit = 1 << (n - 1 - q)
            k = j ^ bit
            if j & bit:  # the |1> amplitude: (gX + i gY) psi_0
                for b in range(batch):
                    gx, gy, xr, xi = g[0, q, b], g[1, q, b], re[k, b], im[k, b]
                    out[0, j, b] += gx * xr - gy * xi
                    out[1, j, b] += gx * xi + gy * xr
            else:  # the |0> amplitude: (gX - i gY) psi_1
                for b in range(batch):
                    gx, gy, xr, xi = g[0, q, b], g[1, q, b], re[k, b], im[k, b]
                    out[0, j, b] += gx * xr + gy * xi
                    out[1, j, b] += gx * xi - gy * xr


@_jit
def _mul2(a: Any, b: Any) -> Any:
    """The product of two 2x2 matrices given as 4 entries (row-major)."""
    out = np.empty(4, dtype=a.dtype)
    out[0] = a[0] * b[0] + a[1] * b[2]
    out[1] = a[0] * b[1] + a[1] * b[3]
    out[2] = a[2] * b[0] + a[3] * b[2]
    out[3] = a[2] * b[1] + a[3] * b[3]
    return out


@_jit
def shared_unitaries(matrices: Any, positions: Any, left: Any, right: Any) -> Any:
    """Per wire, U = left G_last ... G_first right of a shared step (complex).

    :param matrices: the gates of every shared row (rows, n, 4), entries row-major
    :param positions: the step's rows among them, in the order applied
    :param left: the frame change after the gates (4,)
    :param right: the frame change before them (4,)
    :return: (n, 4)
    """
    n = matrices.shape[1]
    out = np.empty((n, 4), dtype=matrices.dtype)
    for q in range(n):
        u = right.copy()
        for p in positions:
            u = _mul2(matrices[p, q], u)
        out[q] = _mul2(left, u)
    return out


@_jit
def shared_gradients(matrices: Any, positions: Any, axes: Any, left: Any, traces: Any) -> Any:
    """The gradient of every gate angle of a shared step, Im Tr(sigma A^H tau A), A the
    product of what follows the gate (left G_last ... G_after), per wire.

    :param matrices: the gates of every shared row (rows, n, 4)
    :param positions: the step's rows among them, in the order applied
    :param axes: each row's rotation axis (0, 1, 2 for x, y, z; 3, a Hadamard: no angle)
    :param left: the frame change after the gates (4,)
    :param traces: the partial traces tau_q of sum_b psi lambda^H after the step, real and
        imaginary parts stacked as :func:`wire_traces` returns them (2, n, 2, 2)
    :return: (len(positions), n)
    """
    k = len(positions)
    n = matrices.shape[1]
    out = np.zeros((k, n), dtype=traces.dtype)
    tau = np.empty(4, dtype=left.dtype)
    for q in range(n):
        for e in range(4):
            tau[e] = traces[0, q, e // 2, e % 2] + 1j * traces[1, q, e // 2, e % 2]
        a = left.copy()
        for i in range(k - 1, -1, -1):
            # m = A^H tau A
            ah = np.empty(4, dtype=a.dtype)
            ah[0], ah[1], ah[2], ah[3] = (
                a[0].conjugate(),
                a[2].conjugate(),
                a[1].conjugate(),
                a[3].conjugate(),
            )
            m = _mul2(ah, _mul2(tau, a))
            axis = axes[i]
            if axis == 0:
                out[i, q] = (m[1] + m[2]).imag
            elif axis == 1:
                out[i, q] = (1j * m[1] - 1j * m[2]).imag
            elif axis == 2:
                out[i, q] = (m[0] - m[3]).imag
            a = _mul2(a, matrices[positions[i], q])
    return out


@_jit
def sample_wires(re: Any, im: Any, u_re: Any, u_im: Any, adjoint: bool) -> None:
    """:func:`wires` with one unitary per wire and sample (per-sample weights), in place.

    :param u_re: real parts of the entries (n, 4, batch): u00, u01, u10, u11
    :param u_im: their imaginary parts
    """
    dim, batch = re.shape
    n = u_re.shape[0]
    e01, e10 = (2, 1) if adjoint else (1, 2)
    for q in range(n):
        bit = 1 << (n - 1 - q)
        ar, ai, br, bi = u_re[q, 0], u_im[q, 0], u_re[q, e01], u_im[q, e01]
        cr, ci, dr, di = u_re[q, e10], u_im[q, e10], u_re[q, 3], u_im[q, 3]
        if adjoint:  # conjugates: the imaginary parts negated
            ai, bi, ci, di = -ai, -bi, -ci, -di
        for top in range(0, dim, 2 * bit):
            for j in range(top, top + bit):
                k = j + bit
                for b in range(batch):
                    x0r, x0i, x1r, x1i = re[j, b], im[j, b], re[k, b], im[k, b]
                    a_i, b_i, c_i, d_i = ai[b], bi[b], ci[b], di[b]
                    re[j, b] = ar[b] * x0r - a_i * x0i + br[b] * x1r - b_i * x1i
                    im[j, b] = ar[b] * x0i + a_i * x0r + br[b] * x1i + b_i * x1r
                    re[k, b] = cr[b] * x0r - c_i * x0i + dr[b] * x1r - d_i * x1i
                    im[k, b] = cr[b] * x0i + c_i * x0r + dr[b] * x1i + d_i * x1r


@_jit
def sample_traces(psi_re: Any, psi_im: Any, lam_re: Any, lam_im: Any) -> Any:
    """:func:`wire_traces` per sample: tau_q,b[c, e] = sum over the other wires of
    psi[j_c, b] conj(lam[j_e, b]).

    :return: real and imaginary parts stacked, (2, n, 4, batch)
    """
    dim, batch = psi_re.shape
    n = 0
    while (1 << n) < dim:
        n += 1
    out = np.zeros((2, n, 4, batch), dtype=psi_re.dtype)
    for q in range(n):
        bit = 1 << (n - 1 - q)
        o = out[:, q]
        for top in range(0, dim, 2 * bit):
            for j in range(top, top + bit):
                k = j + bit
                for b in range(batch):
                    p0r, p0i, p1r, p1i = psi_re[j, b], psi_im[j, b], psi_re[k, b], psi_im[k, b]
                    l0r, l0i, l1r, l1i = lam_re[j, b], lam_im[j, b], lam_re[k, b], lam_im[k, b]
                    o[0, 0, b] += p0r * l0r + p0i * l0i
                    o[1, 0, b] += p0i * l0r - p0r * l0i
                    o[0, 1, b] += p0r * l1r + p0i * l1i
                    o[1, 1, b] += p0i * l1r - p0r * l1i
                    o[0, 2, b] += p1r * l0r + p1i * l0i
                    o[1, 2, b] += p1i * l0r - p1r * l0i
                    o[0, 3, b] += p1r * l1r + p1i * l1i
                    o[1, 3, b] += p1i * l1r - p1r * l1i
    return out


@_jit
def sample_unitaries(matrices: Any, positions: Any, left: Any, right: Any) -> Any:
    """:func:`shared_unitaries` per sample: matrices (rows, n, batch, 4) -> (n, 4, batch)."""
    n, batch = matrices.shape[1], matrices.shape[2]
    out = np.empty((n, 4, batch), dtype=matrices.dtype)
    for q in range(n):
        for b in range(batch):
            u = right.copy()
            for p in positions:
                u = _mul2(matrices[p, q, b], u)
            u = _mul2(left, u)
            for e in range(4):
                out[q, e, b] = u[e]
    return out


@_jit
def sample_gradients(matrices: Any, positions: Any, axes: Any, left: Any, traces: Any) -> Any:
    """:func:`shared_gradients` per sample: matrices (rows, n, batch, 4), traces as
    :func:`sample_traces` returns them (2, n, 4, batch) -> (len(positions), n, batch)."""
    k = len(positions)
    n, batch = matrices.shape[1], matrices.shape[2]
    out = np.zeros((k, n, batch), dtype=traces.dtype)
    t = np.empty(4, dtype=left.dtype)
    ah = np.empty(4, dtype=left.dtype)
    for q in range(n):
        for b in range(batch):
            for e in range(4):
                t[e] = traces[0, q, e, b] + 1j * traces[1, q, e, b]
            a = left.copy()
            for i in range(k - 1, -1, -1):
                ah[0], ah[1] = a[0].conjugate(), a[2].conjugate()
                ah[2], ah[3] = a[1].conjugate(), a[3].conjugate()
                m = _mul2(ah, _mul2(t, a))
                axis = axes[i]
                if axis == 0:
                    out[i, q, b] = (m[1] + m[2]).imag
                elif axis == 1:
                    out[i, q, b] = (1j * m[1] - 1j * m[2]).imag
                elif axis == 2:
                    out[i, q, b] = (m[0] - m[3]).imag
                a = _mul2(a, matrices[positions[i], q, b])
    return out


def compile_all(dtype: Any = np.float32) -> float:
    """Compile (or load from Numba's cache) every kernel for one dtype.

    :return: the seconds it took
    """
    import time

    start = time.perf_counter()
    re = np.ones((4, 2), dtype=dtype)
    im = np.zeros((4, 2), dtype=dtype)
    phi = np.zeros((2, 2), dtype=dtype)
    u = np.zeros((2, 4), dtype=dtype)
    phase(re, im, phi, phi, 1.0)
    phase_backward(re, im, re, im, phi, phi)
    wires(re, im, u, u, False)
    wire_traces(re, im, re, im)
    state = np.empty((2, 4, 2), dtype=dtype)
    gather(re, im, np.arange(4), np.ones(4, dtype=dtype), np.zeros(4, dtype=dtype), state)
    product_state(re[:2], im[:2], re[:2], im[:2], state)
    half_contractions(re, im, re[:2], im[:2], re[:2], im[:2])
    readout(re, im, 2)
    readout_backward(re, im, np.zeros((3, 2, 2), dtype=dtype), state)
    c = np.ones((1, 2, 4), dtype=np.result_type(dtype, np.complex64))
    index = np.zeros(1, dtype=np.int64)
    shared_unitaries(c, index, c[0, 0], c[0, 0])
    shared_gradients(c, index, index, c[0, 0], np.zeros((2, 2, 2, 2), dtype=dtype))
    per_sample = np.ones((1, 2, 2, 4), dtype=c.dtype)
    sample_wires(re, im, np.zeros((2, 4, 2), dtype=dtype), np.zeros((2, 4, 2), dtype=dtype), True)
    sample_traces(re, im, re, im)
    sample_unitaries(per_sample, index, c[0, 0], c[0, 0])
    sample_gradients(per_sample, index, index, c[0, 0], np.zeros((2, 2, 4, 2), dtype=dtype))
    return time.perf_counter() - start


__all__ = ["AVAILABLE", "compile_all"]
