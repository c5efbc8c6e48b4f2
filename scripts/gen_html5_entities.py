#!/usr/bin/env python3
"""Regenerates src/clip/html5_entities.inc from Python's html.entities.html5.

Run by hand (never by the build): python3 scripts/gen_html5_entities.py > src/clip/html5_entities.inc
"""
import html.entities
import sys


def esc(s):
    out = ''
    for c in s.encode('utf-8'):
        out += chr(c) if 0x20 <= c < 0x7f and c not in (0x22, 0x5c, 0x3f) else '\\%03o' % c
    return out


items = sorted(html.entities.html5.items(), key=lambda kv: kv[0].encode())
w = sys.stdout.write
w('// HTML5 named character references: Python %d.%d html.entities.html5 (%d entries,\n'
  % (sys.version_info[0], sys.version_info[1], len(items)))
w('// names with and without the trailing ";"), sorted by the UTF-8 bytes of the name.\n')
w('// Generated (not by the build) by scripts/gen_html5_entities.py; values are UTF-8 bytes\n')
w('// (octal escapes for non-printable bytes). Used by src/clip/text_clean.cpp. Do not edit.\n')
for k, v in items:
    w('{"%s", "%s"},\n' % (esc(k), esc(v)))
