#!/usr/bin/env python3
"""Checks in SASS that no CUDA kernel reads an earlier kernel's output before griddepcontrol.wait.

Kernels launched with PDL (src/backends/cuda/launch.cuh) may start while the previous kernel on
the stream still runs; only loads of weights (constant while the engine runs) may come before
pdl_wait(), and those all carry L1::no_allocate (weight_formats.cuh ldw16/ldw2/ldw4). ptxas may
schedule a non-coherent load (__ldg) above the wait (session 8 found activation loads there), so
this looks at the machine code: for every kernel with a wait (ACQBULK), any global load before
the first wait in text order that is not an L1::no_allocate load (LDG.E.NA) is reported.

Usage: tools/check_pdl_order.py BUILD_DIR [--arch sm_90] [--nvdisasm PATH]
BUILD_DIR is a Ninja build with the CUDA backend (e.g. build/cuda or build/gpu). Each .cu file of
src/backends/cuda is compiled again to a cubin with the build's own flags. Exit status 1 if any
kernel loads before its wait, 2 if the tools are missing.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

LOAD = re.compile(r"\b(LDG\.E(?!\.NA)|LDGSTS|LD\.E|UTMALDG)")


def find_nvdisasm(given):
    cands = [given] if given else []
    cands += [shutil.which("nvdisasm") or ""]
    for root in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        if root:
            cands.append(os.path.join(root, "bin", "nvdisasm"))
    cands.append("/tmp/cuobj/x/nvidia/cu13/bin/nvdisasm")  # from the nvidia-cuda-nvdisasm wheel
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def kernels_loading_before_wait(sass):
    bad, cur, waited, has_wait = {}, None, False, set()
    for line in sass.splitlines():
        m = re.match(r"^\.text\.(\S+):", line)
        if m:
            cur, waited = m.group(1), False
            continue
        if cur is None:
            continue
        if "ACQBULK" in line:
            waited = True
            has_wait.add(cur)
        elif not waited and LOAD.search(line):
            bad.setdefault(cur, []).append(line.strip())
    return {k: v for k, v in bad.items() if k in has_wait}, len(has_wait)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--nvdisasm")
    a = ap.parse_args()
    nvdisasm = find_nvdisasm(a.nvdisasm)
    if not nvdisasm:
        print("check_pdl_order: nvdisasm not found (CUDA toolkit, or pip wheel nvidia-cuda-nvdisasm)")
        return 2
    cmds = subprocess.run(["ninja", "-C", a.build_dir, "-t", "commands"], capture_output=True, text=True, check=True)
    nvcc = [c for c in cmds.stdout.splitlines() if "nvcc" in c and re.search(r"src/backends/cuda/\w+\.cu\b", c)]
    if not nvcc:
        print(f"check_pdl_order: no CUDA compile commands in {a.build_dir}")
        return 2
    def check(i, cmd):
        src = re.search(r"(src/backends/cuda/\w+\.cu)\b", cmd).group(1)
        cubin = os.path.join(tmp, f"k{i}.cubin")
        args, skip = [], False
        for t in shlex.split(cmd):
            if skip:
                skip = False
            elif t == "-o":
                args += ["-o", cubin]
                skip = True
            elif t in ("-MT", "-MF"):  # the build's dependency file stays as it is
                skip = True
            elif t == "-MD":
                pass
            elif t == "-c":
                args += [f"-arch={a.arch}", "-cubin"]
            elif not t.startswith(("--generate-code", "-gencode", "-arch=")):
                args.append(t)
        r = subprocess.run(args, cwd=a.build_dir, capture_output=True, text=True)
        if r.returncode != 0:
            return src, None, f"compiling failed:\n{r.stderr[-2000:]}"
        sass = subprocess.run([nvdisasm, cubin], capture_output=True, text=True, check=True).stdout
        return (src, *kernels_loading_before_wait(sass))

    failures, kernels = 0, 0
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for src, bad, n in pool.map(lambda ic: check(*ic), enumerate(nvcc)):
            if bad is None:
                print(f"check_pdl_order: {src}: {n}")
                return 2
            kernels += n
            for k, lines in bad.items():
                failures += 1
                print(f"{src}: {k[:140]}: {len(lines)} load(s) before griddepcontrol.wait, e.g. {' '.join(lines[0].split())}")
    print(f"check_pdl_order: {kernels} kernels with a wait, {failures} load before it")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
