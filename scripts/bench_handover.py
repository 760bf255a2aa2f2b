#!/usr/bin/env python
"""Benchmark: the batch hand-over from the augmentation workers, by dtype of the packed field.

nnU-Net's augmentation workers hand each batch to the training process through shared memory
(torch's multiprocessing moves a tensor's storage there when it is sent). BATseg packs its field
target into the full-resolution segmentation target (`training/field_transform.py`: 1 + C
channels, float32 today), so its batch is larger than nnU-Net's (image float32 + int16 label).
This times that copy into shared memory (`Tensor.share_memory_()`) for:
  - nnU-Net: image float32 + label int16;
  - BATseg as it ships: image float32 + packed label and field, float32;
  - BATseg with the packed target in float16 (labels 0..4 are exact in float16; the field loses
    precision: its largest rounding error is printed).
It measures only; training's numerics are unchanged (the field stays float32 in training).

    python scripts/bench_handover.py                                  # paper setting: batch 2, 12 x 384 x 384
    python scripts/bench_handover.py --batch 1 --patch 8 32 32 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

FIELD_CHANNELS = 4  # classwise field of the four tumour classes (the shipped setting)


def handover_batch(kind: str, batch: int, patch: tuple[int, ...], channels: int = FIELD_CHANNELS,
                   seed: int = 0) -> list[torch.Tensor]:
    """The full-resolution tensors of one batch as the workers send it ("nnunet", "float32", "float16")."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn((batch, 1, *patch), generator=generator)
    label = torch.randint(0, 5, (batch, 1, *patch), generator=generator, dtype=torch.int16)
    if kind == "nnunet":
        return [image, label]
    field = torch.rand((batch, channels, *patch), generator=generator)
    dtype = {"float32": torch.float32, "float16": torch.float16}[kind]
    return [image, torch.cat((label.to(torch.float32), field), dim=1).to(dtype)]


def handover_ms(kind: str, batch: int, patch: tuple[int, ...], repeats: int = 5,
                channels: int = FIELD_CHANNELS) -> dict[str, float]:
    """MB of one batch and the median / minimum ms of moving it into shared memory."""
    times = []
    size = 0
    for repeat in range(repeats):
        tensors = handover_batch(kind, batch, patch, channels, seed=repeat)
        size = sum(t.numel() * t.element_size() for t in tensors)
        start = time.perf_counter()
        for tensor in tensors:
            tensor.share_memory_()
        times.append((time.perf_counter() - start) * 1000)
        del tensors
    return {"mb": size / 1e6, "median_ms": statistics.median(times), "min_ms": min(times)}


def float16_field_error(batch: int, patch: tuple[int, ...], channels: int = FIELD_CHANNELS) -> dict[str, float]:
    """Largest rounding error of the field (values in [0, 1]) and whether labels survive, in float16."""
    packed = handover_batch("float32", batch, patch, channels)[1]
    half = packed.to(torch.float16).to(torch.float32)
    return {"field_max_abs_error": float((half[:, 1:] - packed[:, 1:]).abs().max()),
            "labels_exact": bool(torch.equal(half[:, :1], packed[:, :1]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=(12, 384, 384))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    patch = tuple(args.patch)
    print(f"batch hand-over into shared memory: batch {args.batch}, patch {' x '.join(map(str, patch))}, "
          f"{FIELD_CHANNELS} field channels, {args.repeats} repeats")
    rows = {"nnU-Net (image float32 + label int16)": "nnunet",
            "BATseg, packed float32 (as shipped)": "float32",
            "BATseg, packed float16": "float16"}
    base = None
    for name, kind in rows.items():
        r = handover_ms(kind, args.batch, patch, args.repeats)
        base = base or r["median_ms"]
        print(f"  {name:40s} {r['mb']:7.1f} MB  median {r['median_ms']:7.1f} ms  min {r['min_ms']:7.1f} ms  "
              f"({r['median_ms'] / base:.2f}x nnU-Net)")
    error = float16_field_error(args.batch, patch)
    print(f"float16 packing: labels exact {error['labels_exact']}, field max abs error {error['field_max_abs_error']:.2e}")


if __name__ == "__main__":
    main()
