"""Writes N mutated copies of an engine file: truncations, flipped bytes (plan and
weights), changed header fields (magic, version, offsets, sizes, checksum), appended bytes.

    mutate_engine.py GOOD.engine OUTDIR N
"""
import os
import random
import struct
import sys


def main(src, out, n):
    data = open(src, "rb").read()
    os.makedirs(out, exist_ok=True)
    rng = random.Random(2024)
    for i in range(n):
        b = bytearray(data)
        kind = i % 6
        if kind == 0:
            b = b[:rng.randrange(0, len(b))]
        elif kind == 1:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(64, len(b))] ^= rng.randint(1, 255)
        elif kind == 2:  # one header field: magic, version, header size, offsets/sizes, checksum
            field = rng.choice([(0, 8), (8, 4), (12, 4), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8)])
            off, size = field
            val = rng.choice([0, 1, 2, 99, 0xFFFFFFFF, rng.getrandbits(size * 8)])
            b[off:off + size] = (val % (1 << (size * 8))).to_bytes(size, "little")
            if bytes(b) == data:
                b[off] ^= 1
        elif kind == 3:
            b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        elif kind == 4:  # a flip inside the plan section only
            plan_off, plan_len = struct.unpack_from("<QQ", data, 16)
            b[plan_off + rng.randrange(plan_len)] ^= rng.randint(1, 255)
        else:  # a flip in the last kilobyte (weights)
            b[len(b) - 1 - rng.randrange(min(1024, len(b) - 64))] ^= rng.randint(1, 255)
        open(os.path.join(out, f"m{i:03d}.engine"), "wb").write(bytes(b))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
