#!/usr/bin/env python3
"""Small CompVis-style retrieval databases for tests/unit/test_retrieval_hostile.cpp, written
the way artbench_databases.zip holds them: np.savez_compressed parts with keys `embedding`
(float32 or float16, [n, 32]), `img_id` (unicode <U, byte |S or integer ids) and
`patch_coords` ([n, 4] int). knn2img.py loads every .npz of a folder and concatenates them.
Also writes expected_ids.txt (ids in import order: parts sorted by file name) and
expected_embedding.npy (the concatenated float32 rows).
Run with Debian's python3-numpy: /usr/bin/python3 make_fixtures.py"""
import numpy as np

rng = np.random.default_rng(7)
dim = 32
centers = rng.normal(size=(5, dim))
all_ids, all_emb = [], []
for part, n in enumerate([11, 9, 13]):
    emb = (centers[rng.integers(0, 5, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
    ids = np.array([f"wikiart_{part}_{i:04d}" for i in range(n)])  # dtype <U15
    coords = rng.integers(0, 768, size=(n, 4))
    np.savez_compressed(f"artbench-test/part_{part}.npz", embedding=emb, img_id=ids, patch_coords=coords)
    all_ids += list(ids)
    all_emb.append(emb)
np.save("expected_embedding.npy", np.concatenate(all_emb))
with open("expected_ids.txt", "w") as f:
    f.write("\n".join(all_ids) + "\n")

# Byte-string ids with float16 embeddings, and integer ids.
emb = rng.normal(size=(6, dim)).astype(np.float16)
np.savez_compressed("variants/bytes_ids_f16.npz", embedding=emb,
                    img_id=np.array([b"img-%d" % i for i in range(6)]), patch_coords=np.zeros((6, 4), np.int64))
np.savez_compressed("variants/int_ids.npz", embedding=rng.normal(size=(5, dim)).astype(np.float32),
                    img_id=np.arange(100, 105, dtype=np.int64))
# Non-ASCII unicode ids (UTF-32 in the file).
np.savez_compressed("variants/unicode_ids.npz", embedding=rng.normal(size=(3, dim)).astype(np.float32),
                    img_id=np.array(["café", "日本画", "x"]))
