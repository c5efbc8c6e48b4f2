#!/usr/bin/env python3
"""Times the Python reference CLIP (github.com/openai/CLIP clip/model.py, imported from the
checkout named by $CLIP_SRC; nothing is copied) at ViT-L/14 size with random weights, to
compare with bench/bench_clip (same shapes, same thread count).

  CLIP_SRC=/path/to/openai-CLIP RDM_THREADS=2 python3 scripts/bench_reference_clip.py

The tokenizer timing needs ftfy and regex; it is skipped when they are missing
(clip/simple_tokenizer.py imports ftfy).
"""
import importlib.util
import json
import os
import sys
import time

import torch


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timeit(fn, min_time=2.0):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n


WORDS = ["a", "painting", "of", "the", "virus", "monster", "playing", "guitar", "oil", "on",
         "canvas", "by", "claude", "monet", "sunset", "over", "mountains", "highly", "detailed",
         "watercolor", "portrait", "cat", "in", "space", "trending", "artstation", "4k", "surreal",
         "caf\u00e9", "night", "city", "neon", "lights", "rain", "Reflections,", "impressionism!"]


def prompts(n):
    """The same deterministic prompts as bench/bench_clip.cpp (same LCG)."""
    state = 12345

    def nxt():
        nonlocal state
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        return state >> 8

    out = []
    for _ in range(n):
        ln = 5 + nxt() % 15
        words = [WORDS[nxt() % len(WORDS)] for _ in range(ln)]
        out.append(" ".join(words) + " " + str(nxt() % 3000))
    return out


def time_tokenizer(src):
    """SimpleTokenizer.encode + the row building of clip.tokenize, warm cache, 10,000 prompts.
    ftfy is replaced by the identity when it is not installed (as the goldens were made)."""
    import types
    try:
        import ftfy  # noqa: F401
    except ImportError:
        sys.modules["ftfy"] = types.SimpleNamespace(fix_text=lambda t: t)
    st = load_module("clip_tok_ref", os.path.join(src, "clip", "simple_tokenizer.py"))
    tok = st.SimpleTokenizer()
    ps = prompts(10000)
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]

    def run():
        rows = [[sot] + tok.encode(t) + [eot] for t in ps]
        res = torch.zeros(len(rows), 77, dtype=torch.int)
        for i, r in enumerate(rows):
            r = r[:77]
            r[-1] = eot
            res[i, :len(r)] = torch.tensor(r)
        return res

    return len(ps) / timeit(run, 3.0)


def main():
    src = os.environ.get("CLIP_SRC")
    if not src:
        sys.exit("set CLIP_SRC to a checkout of github.com/openai/CLIP")
    threads = int(os.environ.get("RDM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    model_py = load_module("clip_model_ref", os.path.join(src, "clip", "model.py"))
    torch.manual_seed(0)
    model = model_py.CLIP(768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12).eval()
    out = {"threads": threads, "torch": torch.__version__}
    try:
        out["tokenize_prompts_per_s"] = time_tokenizer(src)
    except ImportError as e:
        out["tokenize_prompts_per_s"] = "skipped: %s" % e
    with torch.no_grad():
        b = int(os.environ.get("TEXT_BATCH", "8"))
        tok = torch.randint(1, 49406, (b, 77))
        tok[:, 20] = 49407
        out["encode_text_s_per_item"] = timeit(lambda: model.encode_text(tok)) / b
        b = int(os.environ.get("IMAGE_BATCH", "2"))
        px = torch.randn(b, 3, 224, 224)
        out["encode_image_s_per_item"] = timeit(lambda: model.encode_image(px)) / b
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
