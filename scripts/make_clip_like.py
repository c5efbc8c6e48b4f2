#!/usr/bin/env python3
"""Seeded CLIP-like embeddings for database scale tests (not used at build or test time).

CLIP image embeddings are not uniform noise: they share a strong common direction (random pairs
have cosine ~0.5), form many clusters of very different sizes (styles, subjects), and each
cluster is anisotropic (a few directions of large variance). This draws a mixture of that kind:

  x = normalise(g * mu + c_k + A_k z + s * e),   k ~ Zipf-like weights over `clusters`

with mu a global direction, c_k random cluster centres, A_k a per-cluster basis of `rank`
directions with decaying scales, z, e standard normal. Rows are L2-normalised float32.

  make_clip_like.py OUT_DIR --n 1000000 --parts 10 [--queries 1000] [--npz] [--seed 0]

writes OUT_DIR/part-000.npy ... (or .npz with embedding/img_id/patch_coords like the CompVis
parts) and OUT_DIR-queries.npy (beside the folder, so that importing the folder leaves it out):
held-out draws of the same mixture, not in the database.
"""
import argparse
import os

import numpy as np


def mixture(d, clusters, rank, rng):
    mu = rng.standard_normal(d).astype(np.float32)
    mu /= np.linalg.norm(mu)
    centres = rng.standard_normal((clusters, d)).astype(np.float32) / np.sqrt(d)
    bases = rng.standard_normal((clusters, d, rank)).astype(np.float32) / np.sqrt(d)
    scales = (0.5 * 0.8 ** np.arange(rank)).astype(np.float32)  # anisotropic: decaying variance
    bases *= scales[None, None, :]
    w = 1.0 / (np.arange(1, clusters + 1) ** 0.7)  # Zipf-like cluster sizes
    rng.shuffle(w)
    return mu, centres, bases, (w / w.sum())


def draw(n, mix, rng, common=1.3, noise=0.6):
    mu, centres, bases, w = mix
    d = mu.shape[0]
    k = rng.choice(len(w), size=n, p=w)
    x = np.empty((n, d), np.float32)
    order = np.argsort(k, kind="stable")
    ks = k[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends):
        c = ks[s]
        rows = order[s:e]
        z = rng.standard_normal((e - s, bases.shape[2])).astype(np.float32)
        x[rows] = centres[c] + z @ bases[c].T
    x += common * mu[None, :]
    x += rng.standard_normal((n, d)).astype(np.float32) * (noise / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--n", type=int, default=1000000)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--parts", type=int, default=10)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--clusters", type=int, default=0, help="0: n / 400, at least 16")
    p.add_argument("--rank", type=int, default=24)
    p.add_argument("--npz", action="store_true", help="CompVis-style .npz parts")
    p.add_argument("--fp16", action="store_true", help="store the parts as float16")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    clusters = a.clusters or max(16, a.n // 400)
    mix = mixture(a.d, clusters, a.rank, rng)
    per = -(-a.n // a.parts)
    first = 0
    for i in range(a.parts):
        m = min(per, a.n - first)
        if m <= 0:
            break
        x = draw(m, mix, rng)
        if a.fp16:
            x = x.astype(np.float16)
        base = os.path.join(a.out, f"part-{i:03d}")
        if a.npz:
            ids = np.arange(first, first + m, dtype=np.int64)
            coords = np.zeros((m, 4), np.int64)
            np.savez(base + ".npz", embedding=x, img_id=ids, patch_coords=coords)
        else:
            np.save(base + ".npy", x)
        first += m
        print(f"{base}: {m} x {a.d}", flush=True)
    if a.queries > 0:
        np.save(a.out.rstrip("/") + "-queries.npy", draw(a.queries, mix, rng))
    print(f"{clusters} clusters, {first} vectors, {a.queries} held-out queries")


if __name__ == "__main__":
    main()
