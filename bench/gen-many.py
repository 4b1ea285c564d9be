#!/usr/bin/env python3
"""Seeded data set of many small files, for index-scale benchmarks.

  gen-many.py generate DIR --files 1000000 [--seed 7]
  gen-many.py mutate   DIR --every 5 [--seed 7] [--gen 1]

`generate` writes FILES files of 64 to 1024 random bytes, 1000 per
directory, so every file is one blob in any of the tools. `mutate` rewrites
every EVERY-th file with new bytes, so the previous snapshot's copies of
them become unused once it is forgotten.
"""
import argparse
import os
import random

PER_DIR = 1000


def path_of(root, i):
    return os.path.join(root, f"d{i // PER_DIR:05d}", f"f{i % PER_DIR:03d}")


def generate(args):
    rng = random.Random(args.seed)
    for i in range(args.files):
        if i % PER_DIR == 0:
            os.makedirs(os.path.dirname(path_of(args.dir, i)), exist_ok=True)
        with open(path_of(args.dir, i), "wb") as f:
            f.write(rng.randbytes(rng.randint(64, 1024)))


def mutate(args):
    rng = random.Random(args.seed * 1000 + args.gen)
    count = 0
    i = 0
    while os.path.exists(path_of(args.dir, i)):
        if i % args.every == 0:
            with open(path_of(args.dir, i), "wb") as f:
                f.write(rng.randbytes(rng.randint(64, 1024)))
            count += 1
        i += 1
    print(f"rewrote {count} of {i} files")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--files", type=int, default=1_000_000)
    g.add_argument("--seed", type=int, default=7)
    m = sub.add_parser("mutate")
    m.add_argument("dir")
    m.add_argument("--every", type=int, default=5)
    m.add_argument("--seed", type=int, default=7)
    m.add_argument("--gen", type=int, default=1)
    args = p.parse_args()
    generate(args) if args.cmd == "generate" else mutate(args)


if __name__ == "__main__":
    main()
