#!/usr/bin/env python3
"""Reference build throughput for `rdm db build`: OpenAI CLIP (clip/model.py from the checkout
named by $CLIP_SRC, nothing copied) at ViT-L/14 size with random weights, standard Pillow
preprocessing (clip._transform), images decoded and encoded one batch after the other on the
same threads -- the loop of the sister repo's database builder. Also writes the random weights
(--save-weights) and the test images (--make-images) used by the C++ side.

  CLIP_SRC=/work/ref/openai+CLIP python3 scripts/bench_reference_db_build.py \
      --images /tmp/bench_imgs --make-images 32 --save-weights /tmp/vitl14_random.pt --batch 8 --threads 2
  ./build/rdm --threads 2 db build --images /tmp/bench_imgs --clip /tmp/vitl14_random.pt --out /tmp/bench_db --batch 8
"""
import argparse
import importlib.util
import os
import sys
import time

import numpy as np
import torch
from PIL import Image


def load_clip(src):
    sys.path.insert(0, src)
    # clip/simple_tokenizer.py imports ftfy (not packaged for Debian 12; only text cleaning uses
    # it, never called here); clip/clip.py needs python3-packaging (and tqdm, stood in if missing).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_reference_ldm import install_package_stubs
    install_package_stubs()
    import clip  # noqa: E402  (the reference package: clip/clip.py, clip/model.py)
    return clip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--make-images", type=int, default=0)
    ap.add_argument("--save-weights", default="")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clip = load_clip(os.environ.get("CLIP_SRC", "/work/ref/openai+CLIP"))
    if a.make_images:
        os.makedirs(a.images, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(a.make_images):
            h, w = (480, 640) if i % 2 == 0 else (640, 480)
            y, x = np.mgrid[0:h, 0:w]
            img = np.stack([(x * (i + 1)) % 256, (y * 3 + i * 17) % 256, ((x + y) // (i + 2)) % 256], -1)
            img = (img + rng.integers(0, 32, img.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(os.path.join(a.images, f"img_{i:03d}.jpg"), quality=90)
    torch.manual_seed(0)
    model = clip.model.CLIP(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024,
                            vision_patch_size=14, context_length=77, vocab_size=49408,
                            transformer_width=768, transformer_heads=12, transformer_layers=12).float().eval()
    if a.save_weights:
        torch.save(model.state_dict(), a.save_weights)
    transform = clip.clip._transform(224)
    files = sorted(os.path.join(a.images, f) for f in os.listdir(a.images) if f.endswith(".jpg"))
    t0 = time.perf_counter()
    n = 0
    with torch.no_grad():
        for s in range(0, len(files), a.batch):
            px = torch.stack([transform(Image.open(f)) for f in files[s:s + a.batch]])
            emb = model.encode_image(px)
            n += emb.shape[0]
    dt = time.perf_counter() - t0
    print(f"reference: {n} images in {dt:.2f} s = {n / dt:.3f} images/s (batch {a.batch}, threads {a.threads})")


if __name__ == "__main__":
    main()
