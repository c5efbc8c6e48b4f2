#!/usr/bin/env python3
"""Seeds of fuzz/corpus/png_record: small PNGs with tEXt, zTXt and iTXt chunks holding an rdm
JSON record (the layout `rdm sample` writes). Run with Debian's python3-pil:
/usr/bin/python3 fuzz/make_png_seeds.py fuzz/corpus/png_record"""
import json
import sys

from PIL import Image, PngImagePlugin

out = sys.argv[1]
record = {"prompt": "a fox \u00e9", "seed": 42, "steps": 50, "scale": 5.0, "neighbors": [{"id": 3, "score": 0.5}],
          "model": {"path": "m.ckpt"}, "nested": [[1, [2, {"a": [3]}]]]}
im = Image.new("RGB", (3, 2), (10, 20, 30))
for name, kind in [("text", "tEXt"), ("ztext", "zTXt"), ("itext", "iTXt"), ("itext_z", "iTXt-z")]:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a fox\nSteps: 50, Sampler: DDIM")
    body = json.dumps(record, ensure_ascii=(kind != "iTXt" and kind != "iTXt-z"))
    if kind == "tEXt":
        info.add_text("rdm", body)
    elif kind == "zTXt":
        info.add_text("rdm", body, zip=True)
    else:
        info.add_itxt("rdm", body, lang="en", tkey="rdm", zip=(kind == "iTXt-z"))
    im.save(f"{out}/{name}.png", pnginfo=info)
