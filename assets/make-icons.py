#!/usr/bin/env python3
"""Draws the PNG app icons (icon-192.png, icon-512.png, icon-maskable-512.png) from the
shapes of icon.svg, with the standard library only (no image tools on the build
machine). Run once when icon.svg changes: `python3 assets/make-icons.py`.

The maskable icon fills the whole square (the platform cuts its own shape) and keeps
the bubble inside the central 80 % circle, the safe zone of the maskable-icon spec."""
import os
import struct
import zlib

BLUE = (0x3B, 0x5B, 0xDB)
WHITE = (0xFF, 0xFF, 0xFF)
SAMPLES = 4  # per axis, for smooth edges


def in_round_rect(x, y, x0, y0, x1, y1, r):
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def in_tail(x, y):
    # The triangle (30,44) (20,52) (20,44) under the bubble.
    return 20 <= x and 44 <= y <= 52 and x <= 30 - (y - 44) * 10 / 8


def in_bubble(x, y):
    return in_round_rect(x, y, 10, 18, 54, 44, 6) or in_tail(x, y)


def pixel(u, v, maskable):
    """Colour and coverage of the point (u, v) in the 64-unit square of icon.svg."""
    if maskable:
        # Full-bleed background; the bubble shrunk 0.8 about the centre.
        x, y = 32 + (u - 32) / 0.8, 32 + (v - 32) / 0.8
        return (WHITE if in_bubble(x, y) else BLUE), 1.0
    if not in_round_rect(u, v, 0, 0, 64, 64, 14):
        return BLUE, 0.0
    return (WHITE if in_bubble(u, v) else BLUE), 1.0


def draw(size, maskable):
    rows = []
    step = 64 / size
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            r = g = b = a = 0.0
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    u = (px + (sx + 0.5) / SAMPLES) * step
                    v = (py + (sy + 0.5) / SAMPLES) * step
                    colour, cover = pixel(u, v, maskable)
                    r += colour[0] * cover
                    g += colour[1] * cover
                    b += colour[2] * cover
                    a += cover
            n = SAMPLES * SAMPLES
            if a:
                row += bytes([round(r / a), round(g / a), round(b / a), round(255 * a / n)])
            else:
                row += bytes([0, 0, 0, 0])
        rows.append(bytes(row))
    return png(size, b"".join(rows))


def png(size, raw):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for name, size, maskable in [("icon-192.png", 192, False), ("icon-512.png", 512, False), ("icon-maskable-512.png", 512, True)]:
        with open(os.path.join(here, name), "wb") as f:
            f.write(draw(size, maskable))
