#!/usr/bin/env python3
"""Makes the GIF / ICO fixtures of tests/unit/test_io_gif_ico.cpp and, for each, the RGB image
Pillow decodes from it (<name>.expected.png, Image.open(f).convert("RGB")).
Run with Debian's python3-pil (Pillow 9.4): /usr/bin/python3 make_fixtures.py"""
import io
import struct

from PIL import Image


def pattern(w, h, mode="RGB"):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 37 + y * 11) % 256, (x * 5 + y * 53) % 256, (x * y * 7 + 40) % 256)
                for y in range(h) for x in range(w)])
    return im if mode == "RGB" else im.convert(mode)


def save_expected(name):
    with Image.open(name) as im:
        im.convert("RGB").save(name + ".expected.png")


# GIF: global palette; interlaced; animated (first frame is read).
p = pattern(13, 7).quantize(colors=23)
p.save("global.gif")
pattern(9, 21).quantize(colors=200).save("interlaced.gif", interlace=True)
frames = [pattern(10, 6).quantize(colors=8), pattern(10, 6).rotate(180).quantize(colors=8)]
frames[0].save("animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


def gif_offset_frame():
    """GIF89a by hand: screen 8x6, no global palette, one 3x2 frame at (4, 3) with a local
    4-entry palette and transparent index 2 (Pillow fills the screen with that index)."""
    out = b"GIF89a" + struct.pack("<HHBBB", 8, 6, 0, 0, 0)
    out += b"\x21\xf9\x04\x01\x00\x00\x02\x00"  # GCE: transparent index 2
    out += b"\x2c" + struct.pack("<HHHHB", 4, 3, 3, 2, 0x81)  # local table of 4 entries
    out += bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 10])
    # The LZW data of indices 0 1 3 3 1 0, taken from a GIF Pillow writes of the same frame.
    tmp = io.BytesIO()
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 10])
    im.putdata([0, 1, 3, 3, 1, 0])
    im.save(tmp, "GIF")
    data = tmp.getvalue()
    desc = data.index(b"\x2c")  # image descriptor (no local table: Pillow writes a global one)
    flags = data[desc + 9]
    table = 3 << ((flags & 7) + 1) if flags & 0x80 else 0
    lzw = data[desc + 10 + table:-1]  # code size byte + sub-blocks, without the trailer
    return out + lzw + b"\x3b"


open("offset_transparent.gif", "wb").write(gif_offset_frame())


def dib(im, bpp):
    """BITMAPINFOHEADER + palette + XOR bitmap (bottom-up) + AND mask, as in ICO files."""
    w, h = im.size
    stride = ((w * bpp + 31) // 32) * 4
    pal = b""
    rows = []
    if bpp <= 8:
        q = im.quantize(colors=1 << bpp)
        pr = q.getpalette()[: 3 * (1 << bpp)]
        pr += [0] * (3 * (1 << bpp) - len(pr))
        pal = b"".join(bytes([pr[3 * i + 2], pr[3 * i + 1], pr[3 * i], 0]) for i in range(1 << bpp))
        px = q.load()
        for y in range(h):
            bits = ""
            for x in range(w):
                bits += format(px[x, y], "0%db" % bpp)
            bits += "0" * (stride * 8 - len(bits))
            rows.append(int(bits, 2).to_bytes(stride, "big"))
    else:
        src = im.convert("RGBA").load()
        for y in range(h):
            r = b""
            for x in range(w):
                R, G, B, A = src[x, y]
                r += bytes([B, G, R]) + (bytes([(x * 40 + y * 9) % 256]) if bpp == 32 else b"")
            rows.append(r + b"\0" * (stride - len(r)))
    mstride = ((w + 31) // 32) * 4
    mask = []
    for y in range(h):
        bits = "".join("1" if (x + y) % 3 == 0 else "0" for x in range(w))
        bits += "0" * (mstride * 8 - len(bits))
        mask.append(int(bits, 2).to_bytes(mstride, "big"))
    hdr = struct.pack("<IiiHHIIiiII", 40, w, 2 * h, 1, bpp, 0, 0, 0, 0, 0, 0)
    return hdr + pal + b"".join(reversed(rows)) + b"".join(reversed(mask))


def ico(entries):
    """entries: (width, height, bpp, payload bytes)."""
    out = struct.pack("<HHH", 0, 1, len(entries))
    off = 6 + 16 * len(entries)
    body = b""
    for w, h, bpp, data in entries:
        out += struct.pack("<BBBBHHII", w % 256, h % 256, 0, 0, 1, bpp, len(data), off + len(body))
        body += data
    return out + body


# Largest entry wins; equal sizes: the highest colour depth.
open("bmp_sizes.ico", "wb").write(ico([(8, 8, 24, dib(pattern(8, 8), 24)),
                                      (11, 9, 8, dib(pattern(11, 9), 8)),
                                      (11, 9, 24, dib(pattern(11, 9).rotate(180), 24)),
                                      (5, 5, 32, dib(pattern(5, 5), 32))]))
open("bmp_4bit.ico", "wb").write(ico([(7, 6, 4, dib(pattern(7, 6), 4))]))
open("bmp_1bit.ico", "wb").write(ico([(35, 3, 1, dib(pattern(35, 3), 1))]))
open("bmp_32bit.ico", "wb").write(ico([(6, 4, 32, dib(pattern(6, 4), 32))]))
buf = io.BytesIO()
pattern(20, 20).save(buf, "PNG")
small = io.BytesIO()
pattern(4, 4).save(small, "PNG")
open("png_payload.ico", "wb").write(ico([(4, 4, 32, small.getvalue()), (20, 20, 32, buf.getvalue())]))

for name in ["global.gif", "interlaced.gif", "animated.gif", "offset_transparent.gif", "bmp_sizes.ico",
             "bmp_4bit.ico", "bmp_1bit.ico", "bmp_32bit.ico", "png_payload.ico"]:
    save_expected(name)
    with Image.open(name) as im:
        print(name, im.format, im.mode, im.size)
