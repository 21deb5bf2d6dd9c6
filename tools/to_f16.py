#!/usr/bin/env python3
"""Rewrites a safetensors file's F32 tensors as F16 (round to nearest even),
keeping names, shapes, order and metadata: the shipped default model goes
from 3.75 MB of incompressible f32 to half that (attnscope loads F16 and
widens it to f32). Needs numpy.

    python3 tools/to_f16.py www/models/default/model.safetensors   # in place
    python3 tools/to_f16.py IN OUT
"""
import json
import struct
import sys

import numpy as np


def convert(src: str, dst: str) -> None:
    with open(src, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    meta = header.pop("__metadata__", None)
    out_header, chunks, offset = {}, [], 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype("<f2")
            if not np.all(np.isfinite(arr)):
                sys.exit(f"{name}: values overflow f16")
            raw, dtype = arr.tobytes(), "F16"
        out_header[name] = {"dtype": dtype, "shape": info["shape"], "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if meta is not None:
        out_header["__metadata__"] = meta
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    convert(sys.argv[1], sys.argv[-1])
