#!/usr/bin/env python3
"""Checks in SASS that no CUDA kernel touches an earlier kernel's data before griddepcontrol.wait.

Kernels launched with PDL (src/backends/cuda/launch.cuh) may start while the previous kernel on
the stream still runs. Before pdl_wait() they may only load weights (constant while the engine
runs), and those loads all skip L1: L1::no_allocate (weight_formats.cuh ldw16/ldw2/ldw4, SASS
LDG.E.NA) or cp.async.cg copies into shared memory (matvec_mma.cu, SASS LDGSTS.E.BYPASS). ptxas
may schedule a non-coherent load (__ldg) above the wait: session 8 found activation loads there.
So this looks at the machine code. For every kernel of a file that launches with PDL, on every
control-flow path from the kernel's entry, a global load other than those two, a global store
or atomic, or a bulk copy must come after a wait (ACQBULK), and a kernel that accesses global
memory must have a wait at all.

The paths are a must-analysis over the kernel's basic blocks. One pattern is read as the code
means it: a conditional branch that only jumps over a wait is the "already waited" branch of
`if (!waited) pdl_wait();` (matvec_quant.cu), so it is not taken as a way around the wait. Code
reached only through CALL (math-library slow paths) is not checked.

Usage: tools/check_pdl_order.py BUILD_DIR [--arch sm_90] [--nvdisasm PATH] [--fetch DIR]
BUILD_DIR is a Ninja build with the CUDA backend (build/release, build/cuda, build/gpu). Each .cu
file of src/backends/cuda is compiled again to a cubin for --arch (PDL needs sm_90+) with the
build's own flags. Exit status: 0 clean, 1 findings, 2 tools missing (nvdisasm, ninja, a CUDA
build), 3 the check itself failed (a compile or disassembly error).
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

# Files whose kernels are launched with <<<>>> (no PDL attribute), so they need no wait.
NO_PDL_FILES = {"attention_prefill.cu", "attention_prefill_mma.cu", "dequantize.cu", "matmul_tiled.cu"}

# Global memory accesses that must follow the wait; LDG with .NA (weights) may come before it.
ACCESS = re.compile(r"^(LDG|LD|LDGSTS|STG|ST|ATOMG|ATOM|RED|REDG|UBLKCP|UBLKRED|UTMALDG|UTMASTG|UTMAREDG)(\.|$)")
INSTR = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)(.*?);")
LABEL = re.compile(r"^(\.L_x_\d+):")
TARGET = re.compile(r"`\((\.L_x_\d+)\)")


class CheckError(Exception):
    pass


def fetch_nvdisasm(dest):
    """nvdisasm from NVIDIA's PyPI wheel (the CUDA toolkit packages here lack it), unpacked under dest."""
    exe = os.path.join(dest, "nvidia", "cu13", "bin", "nvdisasm")
    if not os.path.isfile(exe):
        os.makedirs(dest, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                            "-d", dest, "nvidia-cuda-nvdisasm>=13,<14"], capture_output=True, text=True)
        wheels = [f for f in os.listdir(dest) if f.startswith("nvidia_cuda_nvdisasm") and f.endswith(".whl")]
        if r.returncode != 0 or not wheels:
            print(f"check_pdl_order: could not fetch nvidia-cuda-nvdisasm: {r.stderr.strip()[-500:]}")
            return None
        with zipfile.ZipFile(os.path.join(dest, sorted(wheels)[-1])) as z:
            z.extractall(dest)
    if os.path.isfile(exe):
        os.chmod(exe, 0o755)
        return exe
    return None


def find_nvdisasm(given):
    if given:
        return given if os.path.isfile(given) and os.access(given, os.X_OK) else None
    cands = [shutil.which("nvdisasm") or ""]
    for root in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        if root:
            cands.append(os.path.join(root, "bin", "nvdisasm"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def functions(sass):
    """{kernel name: [(label or None, predicate, opcode, operands)]} in text order."""
    funcs, cur = {}, None
    for line in sass.splitlines():
        m = re.match(r"^\.text\.(\S+):", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is None:
            continue
        m = LABEL.match(line)
        if m:
            cur.append((m.group(1), None, None, None))
            continue
        m = INSTR.match(line)
        if m:
            cur.append((None, (m.group(1) or "").strip(), m.group(2), m.group(3)))
    return funcs


def early_accesses(body):
    """Accesses that some path from the entry reaches before any wait, and whether there is a wait."""
    ins, label_at = [], {}
    for lab, pred, op, args in body:
        if lab:
            label_at[lab] = len(ins)
        else:
            ins.append((pred, op, args))
    has_wait = any(op == "ACQBULK" for _, op, _ in ins)
    if not ins:
        return [], has_wait

    def target(i):
        m = TARGET.search(ins[i][2])
        return label_at.get(m.group(1)) if m else None

    def skips_only_a_wait(i, t):
        between = [op for _, op, _ in ins[i + 1:t]]
        return t > i and "ACQBULK" in between and not any(o.startswith(("BRA", "EXIT", "RET")) for o in between)

    # Basic blocks: leaders are the entry, branch targets and what follows a transfer.
    leaders = {0} | set(label_at.values())
    for i, (pred, op, _) in enumerate(ins):
        if op.startswith(("BRA", "EXIT", "RET", "BRX", "JMX", "JMP")) and i + 1 < len(ins):
            leaders.add(i + 1)
    starts = sorted(x for x in leaders if x < len(ins))
    block_of = {}
    for n, s in enumerate(starts):
        for i in range(s, starts[n + 1] if n + 1 < len(starts) else len(ins)):
            block_of[i] = n
    succ = [[] for _ in starts]
    for n, s in enumerate(starts):
        last = (starts[n + 1] if n + 1 < len(starts) else len(ins)) - 1
        pred, op, _ = ins[last]
        nxt = [block_of[last + 1]] if last + 1 < len(ins) else []
        if op.startswith("BRA"):
            t = target(last)
            taken = [block_of[t]] if t is not None and t < len(ins) else []
            if not pred:
                succ[n] = taken
            else:
                succ[n] = nxt + ([] if t is not None and skips_only_a_wait(last, t) else taken)
        elif op.startswith(("EXIT", "RET", "BRX", "JMX", "JMP")):
            succ[n] = nxt if pred and op.startswith("EXIT") else []
        else:
            succ[n] = nxt
    preds = [[] for _ in starts]
    for n, ss in enumerate(succ):
        for m in ss:
            preds[m].append(n)
    # Reachable blocks, then "waited on every path" to a fixpoint (start optimistic).
    reach, stack = {0}, [0]
    while stack:
        for m in succ[stack.pop()]:
            if m not in reach:
                reach.add(m)
                stack.append(m)

    def block_range(n):
        return range(starts[n], starts[n + 1] if n + 1 < len(starts) else len(ins))

    waits = [any(ins[i][1] == "ACQBULK" for i in block_range(n)) for n in range(len(starts))]
    w_in = {n: n != 0 for n in reach}
    changed = True
    while changed:
        changed = False
        for n in sorted(reach):
            v = n != 0 and all(w_in[p] or waits[p] for p in preds[n] if p in reach)
            if v != w_in[n]:
                w_in[n], changed = v, True
    found = []
    for n in sorted(reach):
        waited = w_in[n]
        for i in block_range(n):
            pred, op, args = ins[i]
            if op == "ACQBULK":
                waited = True
            elif not waited and ACCESS.match(op) and not weight_load(op):
                found.append(f"{pred + ' ' if pred else ''}{op}{args}".strip())
    return found, has_wait


def weight_load(op):
    """A load that may precede the wait: LDG with L1::no_allocate (.NA), or a cp.async.cg copy into
    shared memory that bypasses L1 (LDGSTS ... .BYPASS; matvec_mma.cu's staged weight planes)."""
    return (op.startswith("LDG.") and ".NA" in op) or (op.startswith("LDGSTS.") and ".BYPASS" in op)


def global_accesses(body):
    return any(op and ACCESS.match(op) for lab, _, op, _ in body if not lab)


def compile_commands(build_dir):
    try:
        out = subprocess.run(["ninja", "-C", build_dir, "-t", "commands"], capture_output=True, text=True)
    except FileNotFoundError:
        raise CheckError("ninja not found")
    if out.returncode != 0:
        raise CheckError(f"no Ninja build in {build_dir}: {out.stderr.strip()[-300:]}")
    cmds = []
    for line in out.stdout.splitlines():
        if "nvcc" not in line:
            continue
        tokens = shlex.split(line)
        srcs = [t for t in tokens if re.search(r"src/backends/cuda/\w+\.cu$", t)]
        if "-c" in tokens and len(srcs) == 1:
            cmds.append((srcs[0], tokens))
    return cmds


def cubin_args(tokens, cubin, arch):
    args, skip = [], False
    for t in tokens:
        if skip:
            skip = False
        elif t in ("-o", "-MT", "-MF", "-gencode", "-arch", "--generate-code", "-code"):
            skip = True  # the flag's value follows
            if t == "-o":
                args += ["-o", cubin]
        elif t == "-c":
            args += [f"-arch={arch}", "-cubin"]
        elif t != "-MD" and not t.startswith(("--generate-code=", "-gencode=", "-arch=", "-code=")):
            args.append(t)
    return args


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("--arch", default="sm_90", help="the architecture whose SASS is checked (PDL needs sm_90+)")
    ap.add_argument("--nvdisasm")
    ap.add_argument("--fetch", metavar="DIR", help="if nvdisasm is missing, fetch it from PyPI into DIR")
    a = ap.parse_args()
    nvdisasm = find_nvdisasm(a.nvdisasm)
    if not nvdisasm and a.fetch and not a.nvdisasm:
        nvdisasm = fetch_nvdisasm(a.fetch)
    if not nvdisasm:
        print("check_pdl_order: nvdisasm not found (CUDA toolkit, or pip wheel nvidia-cuda-nvdisasm; --fetch DIR)")
        return 2
    try:
        cmds = compile_commands(a.build_dir)
    except CheckError as e:
        print(f"check_pdl_order: {e}")
        return 2
    if not cmds:
        print(f"check_pdl_order: no CUDA compile commands in {a.build_dir}")
        return 2

    def check(i, src, tokens):
        cubin = os.path.join(tmp, f"k{i}.cubin")
        r = subprocess.run(cubin_args(tokens, cubin, a.arch), cwd=a.build_dir, capture_output=True, text=True)
        if r.returncode != 0:
            raise CheckError(f"compiling {src} for {a.arch} failed:\n{r.stderr[-2000:]}")
        d = subprocess.run([nvdisasm, cubin], capture_output=True, text=True)
        if d.returncode != 0:
            raise CheckError(f"disassembling {src} failed: {d.stderr.strip()[-500:]}")
        return src, functions(d.stdout)

    findings, kernels, waited = 0, 0, 0
    try:
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            results = list(pool.map(lambda c: check(c[0], *c[1]), enumerate(cmds)))
    except CheckError as e:
        print(f"check_pdl_order: {e}")
        return 3
    for src, funcs in results:
        base = os.path.basename(src)
        for name, body in funcs.items():
            kernels += 1
            if base in NO_PDL_FILES:
                continue
            early, has_wait = early_accesses(body)
            waited += has_wait
            if not has_wait:
                if global_accesses(body):
                    findings += 1
                    print(f"{base}: {name[:140]}: accesses global memory but never waits (PDL launch; or list the"
                          " file in NO_PDL_FILES if it launches with <<<>>>)")
            elif early:
                findings += 1
                print(f"{base}: {name[:140]}: {len(early)} access(es) before griddepcontrol.wait on some path, e.g. "
                      f"{' '.join(early[0].split())}")
    print(f"check_pdl_order: {kernels} kernels ({waited} with a wait) in {len(cmds)} files, {findings} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
