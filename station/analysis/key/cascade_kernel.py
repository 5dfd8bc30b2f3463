"""Compiled Cascade kernel (numba): block parities, binary search and the cascade effect.

Cascade (Brassard & Salvail, EUROCRYPT '93, LNCS 765, 410) corrects Bob's key towards
Alice's with interactive parity checks. Each pass p shuffles the key with a public
permutation, cuts it into blocks of k_p bits and compares block parities; a block with odd
parity difference holds an odd number of errors and a binary search (BINARY) finds one of
them by asking Alice for the parity of half the current range. Flipping that bit changes
the parity difference of the block holding it in every earlier pass, so those blocks are
searched again (the "cascade"). Accounting follows Martinez-Mateo, Pacher, Peev, Ciurana,
Peev, "Demystifying the information reconciliation protocol Cascade", QIC 15, 453 (2015),
arXiv:1407.3257: every parity Alice discloses counts one leaked bit. Parities Bob already
knows (the right half of a range whose own and left-half parities were disclosed) are not
asked again, so not counted again.

Separation of the two sides: ``a`` (Alice's bits) is read only by :func:`_alice_parity`,
whose every call is one disclosed bit added to the leak; everything else is Bob's side.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


@njit(cache=True)
def _alice_parity(a: U8, perm_row: I64, lo: int, hi: int) -> int:
    """Alice's answer to "parity of your bits at shuffled positions lo..hi-1" (public)."""
    s = 0
    for i in range(lo, hi):
        s ^= a[perm_row[i]]
    return s


@njit(cache=True)
def _bob_parity(b: U8, perm_row: I64, lo: int, hi: int) -> int:
    s = 0
    for i in range(lo, hi):
        s ^= b[perm_row[i]]
    return s


@njit(cache=True)
def cascade_kernel(a: U8, b: U8, perms: I64, ksizes: I64) -> tuple[int, int]:
    """Correct ``b`` in place towards ``a``; return (leaked bits, bits flipped).

    ``perms[p]`` maps shuffled position -> key index for pass p; ``ksizes[p]`` is the block
    size of pass p. Terminates: each binary search flips one true error (Alice's parities
    are exact), so there are at most n searches with a flip, and each flip pushes at most
    one block per pass onto the work stack.
    """
    n = a.shape[0]
    n_pass = perms.shape[0]
    inv = np.empty((n_pass, n), dtype=np.int64)
    nblocks = np.empty(n_pass, dtype=np.int64)
    tree = np.empty(n_pass, dtype=np.int64)  # nodes per block in the binary-search tree
    boff = np.zeros(n_pass + 1, dtype=np.int64)  # offset of each pass's blocks
    for p in range(n_pass):
        for i in range(n):
            inv[p, perms[p, i]] = i
        nblocks[p] = (n + ksizes[p] - 1) // ksizes[p]
        t = 1
        while t < ksizes[p]:
            t *= 2
        tree[p] = 2 * t
        boff[p + 1] = boff[p] + nblocks[p]
    noff = np.zeros(n_pass + 1, dtype=np.int64)
    for p in range(n_pass):
        noff[p + 1] = noff[p] + nblocks[p] * tree[p]
    # Alice's known subrange parities: -1 unknown, else 0/1 (tree nodes, heap indexing).
    known = np.full(noff[n_pass], -1, dtype=np.int8)
    diff = np.zeros(boff[n_pass], dtype=np.uint8)  # Alice xor Bob parity per block
    cap = boff[n_pass] + n_pass * (n + 1) + 1
    stack_p = np.empty(cap, dtype=np.int64)
    stack_j = np.empty(cap, dtype=np.int64)
    leak = 0
    flips = 0
    for cur in range(n_pass):
        k = ksizes[cur]
        top = 0
        for j in range(nblocks[cur]):
            lo = j * k
            hi = min(lo + k, n)
            pa = _alice_parity(a, perms[cur], lo, hi)
            leak += 1
            known[noff[cur] + j * tree[cur] + 1] = pa
            d = pa ^ _bob_parity(b, perms[cur], lo, hi)
            diff[boff[cur] + j] = d
            if d:
                stack_p[top] = cur
                stack_j[top] = j
                top += 1
        while top > 0:
            top -= 1
            p = stack_p[top]
            j = stack_j[top]
            if diff[boff[p] + j] == 0:
                continue
            kp = ksizes[p]
            lo = j * kp
            hi = min(lo + kp, n)
            base = noff[p] + j * tree[p]
            node = 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                left = 2 * node
                if known[base + left] < 0:
                    pl = _alice_parity(a, perms[p], lo, mid)
                    leak += 1
                    known[base + left] = pl
                    known[base + left + 1] = known[base + node] ^ pl
                if known[base + left] != _bob_parity(b, perms[p], lo, mid):
                    node = left
                    hi = mid
                else:
                    node = left + 1
                    lo = mid
            idx = perms[p, lo]
            b[idx] ^= 1
            flips += 1
            for q in range(cur + 1):
                jq = inv[q, idx] // ksizes[q]
                diff[boff[q] + jq] ^= 1
                if diff[boff[q] + jq] == 1:
                    stack_p[top] = q
                    stack_j[top] = jq
                    top += 1
    return leak, flips
